import NICBasics
import Foundation

public enum Padding: String, Sendable {
    /// No padding: output = floor((in − kernel) / stride) + 1.
    case valid
    /// Output = ceil(in / stride), padding split as TensorFlow does (the extra pixel goes bottom/right).
    case same
}

/// Output size and leading padding along one axis.
func convGeometry(input: Int, kernel: Int, stride: Int, padding: Padding) -> (out: Int, padBefore: Int) {
    switch padding {
    case .valid:
        return (input >= kernel ? (input - kernel) / stride + 1 : 0, 0)
    case .same:
        let out = (input + stride - 1) / stride
        let total = max((out - 1) * stride + kernel - input, 0)
        return (out, total / 2)
    }
}

/// 2-D convolution on NHWC, with groups (depthwise when groups == channels). Weights are kept as
/// [out, kh, kw, in/groups] so that im2col rows ([kh, kw, in] runs) multiply them with one sgemm;
/// safetensors get PyTorch's [out, in/groups, kh, kw].
public final class Conv2D: SkipsInputGradient {
    public let name: String
    public let inChannels: Int, filters: Int, kernel: (h: Int, w: Int), stride: Int, padding: Padding, groups: Int
    public let weight: Parameter
    public let bias: Parameter?

    var input: Tensor?
    /// im2col columns of the last training forward, [group][n·ho·wo][K], kept for the weight gradient.
    var cachedCols: [Float]?
    /// Bytes of im2col buffer kept between forward and backward before recomputing is preferred.
    static let colsCacheLimit = 1 << 30
    /// im2col floats processed at once on the calling thread (GEMMs split over the workers), and per
    /// worker when each worker runs its own GEMMs: a chunk stays in cache (L3; a core's 1 MB L2)
    /// between being written and multiplied.
    static let colsChunkFloats = 1 << 21
    static let colsChunkFloatsPerWorker = 1 << 18

    public init(name: String, inChannels: Int, filters: Int, kernel: (Int, Int), stride: Int = 1,
                padding: Padding = .valid, groups: Int = 1, bias useBias: Bool = true, l2: Float = 0,
                rng: inout Xoshiro256StarStar) throws {
        guard groups >= 1, inChannels % groups == 0, filters % groups == 0 else {
            throw NeuralError.invalidArgument("layer '\(name)': in channels \(inChannels) and filters \(filters) must both divide by groups \(groups)")
        }
        guard kernel.0 >= 1, kernel.1 >= 1, stride >= 1 else {
            throw NeuralError.invalidArgument("layer '\(name)': kernel and stride must be ≥ 1")
        }
        self.name = name
        self.inChannels = inChannels
        self.filters = filters
        self.kernel = (kernel.0, kernel.1)
        self.stride = stride
        self.padding = padding
        self.groups = groups
        let cg = inChannels / groups
        let kh = kernel.0, kw = kernel.1
        // Glorot uniform, as Keras (the original NIC code) initialises convolutions.
        let fanIn = cg * kh * kw, fanOut = filters / groups * kh * kw
        let limit = Float((6.0 / Double(fanIn + fanOut)).squareRoot())
        let w = Tensor(shape: [filters, kh, kw, cg], data: (0..<(filters * kh * kw * cg)).map { _ in (rng.nextUnitFloat() * 2 - 1) * limit })
        weight = Parameter(
            key: name + ".weight", value: w, l2: l2, torchShape: [filters, cg, kh, kw],
            toTorch: { Conv2D.permute($0, [filters, kh, kw, cg], [0, 3, 1, 2]) },
            fromTorch: { Conv2D.permute($0, [filters, cg, kh, kw], [0, 2, 3, 1]) })
        bias = useBias ? Parameter(key: name + ".bias", value: Tensor(zeros: [filters])) : nil
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    var isDepthwise: Bool { groups > 1 && groups == inChannels && filters == inChannels }
    var isPointwise: Bool { kernel.h == 1 && kernel.w == 1 && stride == 1 && groups == 1 }
    /// The convolution with few inputs per output (the first layer: 3×3×3 = 27) that a direct kernel
    /// computes faster than an sgemm; see Conv2D+Direct.
    var usesDirectKernel: Bool {
        groups == 1 && filters % 8 == 0 && kernel.h * kernel.w * inChannels <= Conv2D.directMaxInputs
    }

    /// How this convolution is computed; every algorithm gives the values of `referenceForward`.
    enum Algorithm {
        /// One filter per channel: loops vectorised over channels (Conv2D+Depthwise).
        case depthwise
        /// 1×1, stride 1: the input already is the column matrix, one GEMM (Conv2D+Im2Col).
        case pointwise
        /// Few inputs per output: outputs kept in vector registers (Conv2D+Direct).
        case direct
        /// Columns of kernel taps, then a GEMM per group (Conv2D+Im2Col).
        case im2col
    }

    var algorithm: Algorithm {
        if isDepthwise { return .depthwise }
        if isPointwise { return .pointwise }
        return usesDirectKernel ? .direct : .im2col
    }

    public func outputShape(_ s: [Int]) throws -> [Int] {
        guard s.count == 3, s[2] == inChannels else {
            throw NeuralError.shapeMismatch(layer: name, expected: "[H, W, \(inChannels)]", got: s)
        }
        let gh = convGeometry(input: s[0], kernel: kernel.h, stride: stride, padding: padding)
        let gw = convGeometry(input: s[1], kernel: kernel.w, stride: stride, padding: padding)
        guard gh.out > 0, gw.out > 0 else {
            throw NeuralError.shapeMismatch(layer: name, expected: "at least \(kernel.h)×\(kernel.w) pixels for a '\(padding)' \(kernel.h)×\(kernel.w) kernel", got: s)
        }
        return [gh.out, gw.out, filters]
    }

    struct Geometry {
        let n, h, w, c, ho, wo, pt, pl, kh, kw, s: Int

        /// Calls `body(tap, ih, iw)` for every kernel tap (tap = i·kw + j) of output (oh, ow) whose input
        /// pixel (ih, iw) lies inside the image: taps on the zero padding add nothing and are skipped.
        @inline(__always)
        func forEachTap(ofOutputRow oh: Int, column ow: Int, _ body: (_ tap: Int, _ ih: Int, _ iw: Int) -> Void) {
            for i in 0..<kh {
                let ih = oh * s - pt + i
                if ih < 0 || ih >= h { continue }
                for j in 0..<kw {
                    let iw = ow * s - pl + j
                    if iw < 0 || iw >= w { continue }
                    body(i * kw + j, ih, iw)
                }
            }
        }

        /// Calls `body(i, j, oh, ow)` for every kernel tap (i, j) whose output (oh, ow) reads input
        /// pixel (ih, iw): im2col's gather turned around, for gradients written once per input pixel.
        @inline(__always)
        func forEachTap(readingRow ih: Int, column iw: Int, _ body: (_ i: Int, _ j: Int, _ oh: Int, _ ow: Int) -> Void) {
            for i in 0..<kh {
                let th = ih + pt - i
                if th < 0 || th % s != 0 { continue }
                let oh = th / s
                if oh >= ho { continue }
                for j in 0..<kw {
                    let tw = iw + pl - j
                    if tw < 0 || tw % s != 0 { continue }
                    let ow = tw / s
                    if ow >= wo { continue }
                    body(i, j, oh, ow)
                }
            }
        }
    }

    func geometry(_ x: Tensor) throws -> Geometry {
        guard x.rank == 4 else { throw NeuralError.shapeMismatch(layer: name, expected: "[N, H, W, \(inChannels)]", got: x.shape) }
        let out = try outputShape(Array(x.shape.dropFirst()))
        let gh = convGeometry(input: x.shape[1], kernel: kernel.h, stride: stride, padding: padding)
        let gw = convGeometry(input: x.shape[2], kernel: kernel.w, stride: stride, padding: padding)
        return Geometry(n: x.shape[0], h: x.shape[1], w: x.shape[2], c: inChannels, ho: out[0], wo: out[1],
                        pt: gh.padBefore, pl: gw.padBefore, kh: kernel.h, kw: kernel.w, s: stride)
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        try forward(x, training: training, epilogue: nil)
    }

    /// Inference with the following LeakyReLU / BatchNorm folded into the pass that adds the bias.
    func forward(_ x: Tensor, epilogue: Epilogue) throws -> Tensor {
        try forward(x, training: false, epilogue: epilogue)
    }

    private func forward(_ x: Tensor, training: Bool, epilogue: Epilogue?) throws -> Tensor {
        let g = try geometry(x)
        // Inference leaves the layer untouched, so that chunks of a batch can run on several threads.
        if training { input = x; cachedCols = nil }
        switch algorithm {
        case .depthwise: return depthwiseForward(x, g, epilogue: epilogue)
        case .pointwise: return pointwiseForward(x, g, epilogue: epilogue)
        case .direct: return directForward(x, g, epilogue: epilogue)
        case .im2col: return im2colForward(x, g, keep: training, epilogue: epilogue)
        }
    }

    func backward(_ dy: Tensor, inputGradient: Bool) throws -> Tensor {
        let x = try requireState(input)
        let g = try geometry(x)
        guard dy.shape == [g.n, g.ho, g.wo, filters] else {
            throw NeuralError.shapeMismatch(layer: name, expected: "output gradient [\(g.n), \(g.ho), \(g.wo), \(filters)]", got: dy.shape)
        }
        if let bias { Conv2D.addColumnSums(dy, into: bias) }
        switch algorithm {
        case .depthwise: return depthwiseBackward(x, dy, g, inputGradient: inputGradient)
        case .pointwise: return pointwiseBackward(x, dy, g, inputGradient: inputGradient)
        case .direct: return directBackward(x, dy, g, inputGradient: inputGradient)
        case .im2col: return im2colBackward(x, dy, g, inputGradient: inputGradient)
        }
    }

    // MARK: the bias, in the output pass that needs it least

    /// Starts the output at the bias so that the GEMM adds onto it (β = 1): BLAS passes over C either
    /// way (β = 0 zeroes it first), so the bias costs no pass of its own.
    func fillWithBias(_ out: UnsafeMutablePointer<Float>, rows: Int) {
        let f = filters
        bias!.value.data.withUnsafeBufferPointer { bp in
            let b = bp.baseAddress!
            parallelRanges(rows, minimum: 256) { r in
                for row in r { (out + row * f).update(from: b, count: f) }
            }
        }
    }

    func finish(_ y: inout Tensor, _ epilogue: Epilogue?) {
        guard var e = epilogue else { return addBias(&y) }
        e.absorb(bias: bias?.value.data, channels: filters)
        e.apply(&y)
    }

    func addBias(_ y: inout Tensor) {
        guard let bias else { return }
        let f = filters
        let rows = y.count / f
        bias.value.data.withUnsafeBufferPointer { bp in
            let b = bp.baseAddress!
            y.data.withUnsafeMutableBufferPointer { yp in
                let out = yp.baseAddress!
                parallelRanges(rows, minimum: 256) { r in
                    for row in r {
                        let p = out + row * f
                        for j in 0..<f { p[j] += b[j] }
                    }
                }
            }
        }
    }

    /// bias.grad[j] += Σ_rows dy[row, j], partial sums per worker then combined in order (deterministic).
    static func addColumnSums(_ dy: Tensor, into p: Parameter) {
        let f = p.value.count
        let rows = dy.count / f
        let ranges = splitRange(rows, minimum: 512)
        var partial = [Float](repeating: 0, count: ranges.count * f)
        dy.data.withUnsafeBufferPointer { dp in
            partial.withUnsafeMutableBufferPointer { pp in
                let src = dp.baseAddress!, acc = pp.baseAddress!
                parallelFor(ranges.count) { t in
                    let a = acc + t * f
                    for row in ranges[t] {
                        let s = src + row * f
                        for j in 0..<f { a[j] += s[j] }
                    }
                }
            }
        }
        for t in 0..<ranges.count { for j in 0..<f { p.grad.data[j] += partial[t * f + j] } }
    }

    /// Transposes a row-major tensor of shape `shape` by `order` (out axis i = in axis order[i]).
    static func permute(_ t: Tensor, _ shape: [Int], _ order: [Int]) -> Tensor {
        let outShape = order.map { shape[$0] }
        var inStrides = [Int](repeating: 1, count: shape.count)
        for i in Swift.stride(from: shape.count - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
        let strides = order.map { inStrides[$0] }
        var out = [Float](repeating: 0, count: t.count)
        var index = [Int](repeating: 0, count: shape.count)
        for o in 0..<t.count {
            var src = 0
            for a in 0..<index.count { src += index[a] * strides[a] }
            out[o] = t.data[src]
            var a = index.count - 1
            while a >= 0 {
                index[a] += 1
                if index[a] < outShape[a] { break }
                index[a] = 0
                a -= 1
            }
        }
        return Tensor(shape: outShape, data: out)
    }
}
