import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A contiguous, row-major Float32 tensor. Images are NHWC: a 1×1 convolution is then a plain GEMM and
/// im2col rows are contiguous runs of channels.
public struct Tensor: Equatable, Sendable {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
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
        precondition(shape == other.shape)
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

/// Runs `body(chunk)` for `chunks` pieces of work across cores; with one chunk it runs inline.
@inline(__always)
func parallelFor(_ chunks: Int, _ body: (Int) -> Void) {
    if chunks <= 1 || Compute.isSerialThread {
        if chunks == 1 { body(0) }
        return
    }
    DispatchQueue.concurrentPerform(iterations: chunks, execute: body)
}

/// Splits `0..<count` into about one range per core, each at least `minimum` long.
func splitRange(_ count: Int, minimum: Int = 1) -> [Range<Int>] {
    let parts = Compute.isSerialThread ? 1 : max(1, min(Compute.workers, count / max(1, minimum)))
    var ranges: [Range<Int>] = []
    var start = 0
    for p in 0..<parts {
        let end = count * (p + 1) / parts
        if end > start { ranges.append(start..<end) }
        start = end
    }
    return ranges
}

/// Runs `body(range)` on disjoint pieces of `0..<count`, in parallel when worth it. Inlined so that
/// element-wise closures are specialised into the loop instead of called per element.
@inline(__always)
func parallelRanges(_ count: Int, minimum: Int = 1, _ body: (Range<Int>) -> Void) {
    let ranges = splitRange(count, minimum: minimum)
    parallelFor(ranges.count) { body(ranges[$0]) }
}

/// How many threads the element-wise loops (im2col, batch norm, activations) use. Matches the BLAS
/// threads so that the two never oversubscribe the cores.
public enum Compute {
    /// The instruction set nic's own loops were compiled for (Package.swift picks x86-64-v3 when the
    /// building machine has AVX2 and FMA; NIC_PORTABLE=1 keeps the baseline).
    public static var codegen: String {
        #if NIC_X86_64_V3
        return "x86-64-v3 (AVX2, FMA)"
        #else
        return "baseline (no AVX2/FMA codegen)"
        #endif
    }

    /// glibc serves every allocation above 32 MB with a fresh mmap and returns it on free, so each
    /// training step page-faults (and zero-fills in the kernel) every large activation again: most of
    /// a patient-CNN step was system time. Keeping large blocks in the heap lets steps reuse them.
    static let keepLargeAllocations: Void = {
        #if canImport(Glibc)
        // mallopt is in <malloc.h>, which the Glibc module does not export; values from that header.
        typealias MallOpt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: MallOpt.self)
        let M_TRIM_THRESHOLD: Int32 = -1, M_MMAP_MAX: Int32 = -4
        _ = mallopt(M_MMAP_MAX, 0)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
        #endif
    }()

    nonisolated(unsafe) public static var workers: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)

    private static let serialKey = "nic.neural.serial"

    /// True inside `runSerially`: this thread already is one of the parallel workers.
    static var isSerialThread: Bool { Thread.current.threadDictionary[serialKey] != nil }

    /// Runs `body` with element-wise loops kept on this thread (the caller parallelises at a coarser grain).
    static func runSerially<T>(_ body: () throws -> T) rethrows -> T {
        let dict = Thread.current.threadDictionary
        dict[serialKey] = true
        defer { dict.removeObject(forKey: serialKey) }
        return try body()
    }
}

extension Array where Element == Float {
    /// A buffer whose every value the caller writes before reading: skips the zero-fill pass that
    /// `repeating: 0` costs on the large im2col buffers.
    init(uninitializedCount count: Int) {
        self.init(unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
}
