import Foundation

/// A contiguous, row-major Float32 tensor. Images are NHWC: a 1×1 convolution is then a plain GEMM and
/// im2col rows are contiguous runs of channels.
public struct Tensor: Equatable, Sendable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        // Every caller builds data for the shape it names; weights from files are checked against their shape by
        // Safetensors.read (byte count = product of the shape) before they become tensors.
        // invariant: callers build data for the shape they name; files are checked by Safetensors.read first
        precondition(shape.reduce(1, *) == data.count, "shape \(shape) holds \(shape.reduce(1, *)) values, got \(data.count)")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    public init(repeating value: Float, shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// Storage that the caller fully overwrites: skips the zero fill, which costs a pass over memory.
    public init(uninitialized shape: [Int], _ fill: (UnsafeMutablePointer<Float>, Int) -> Void) {
        let count = shape.reduce(1, *)
        self.shape = shape
        self.data = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 { fill(buffer.baseAddress!, count) }
            initialized = count
        }
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }
    /// Size of the first axis (the batch).
    public var batch: Int { shape.first ?? 1 }
    /// Values per batch item.
    public var itemCount: Int { shape.isEmpty ? 1 : shape.dropFirst().reduce(1, *) }

    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, data: data)
    }

    public subscript(_ index: Int) -> Float {
        get { data[index] }
        set { data[index] = newValue }
    }

    /// Batch items `range` along the first axis.
    public func items(_ range: Range<Int>) -> Tensor {
        let n = itemCount
        return Tensor(shape: [range.count] + shape.dropFirst(), data: Array(data[range.lowerBound * n ..< range.upperBound * n]))
    }

    /// Batch items at `indices`, in that order (a shuffled mini-batch).
    public func gather(_ indices: [Int]) -> Tensor {
        let n = itemCount
        var out = [Float]()
        out.reserveCapacity(indices.count * n)
        data.withUnsafeBufferPointer { src in
            for i in indices { out.append(contentsOf: src[i * n ..< (i + 1) * n]) }
        }
        return Tensor(shape: [indices.count] + shape.dropFirst(), data: out)
    }

    public var isFinite: Bool { firstNonFinite == nil }

    /// Index of the first NaN or infinity, if any.
    public var firstNonFinite: Int? {
        data.withUnsafeBufferPointer { p -> Int? in
            guard let base = p.baseAddress else { return nil }
            // Σ x·0 is NaN iff some x is NaN or infinite: one vectorised pass in the common, clean case.
            let ranges = splitRange(p.count, minimum: 1 << 16)
            var probes = [Float](repeating: 0, count: ranges.count)
            probes.withUnsafeMutableBufferPointer { pr in
                let out = pr.baseAddress!
                parallelFor(ranges.count) { t in
                    var probe: Float = 0
                    for i in ranges[t] { probe += base[i] * 0 }
                    out[t] = probe
                }
            }
            if probes.allSatisfy({ $0 == 0 }) { return nil }
            return p.firstIndex { !$0.isFinite }
        }
    }

    public var sum: Double { data.reduce(0.0) { $0 + Double($1) } }

    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape)  // invariant: parity checks compare a layer's output with its reference of the same shape
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(data[i] - other.data[i])) }
        return m
    }

    /// Float16 copy for storage (grids are stored as float16, as in the original NIC code).
    public var float16: [Float16] { data.map { Float16($0) } }

    public init(shape: [Int], float16: [Float16]) {
        self.init(shape: shape, data: float16.map { Float($0) })
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = data.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor\(shape)[\(head)\(count > 8 ? ", …" : "")]"
    }
}

extension Array where Element == Float {
    /// A buffer whose every value the caller writes before reading: skips the zero-fill pass that
    /// `repeating: 0` costs on the large im2col buffers.
    init(uninitializedCount count: Int) {
        self.init(unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
}
