import Foundation

/// Per-channel work after a convolution in inference, done in the same pass as the bias:
/// `leakyFirst`: out = leaky(y + b)·s + t (conv → LeakyReLU → BatchNorm);
/// otherwise:    out = leaky(y·s + t')       (conv → BatchNorm → LeakyReLU), with t' = b·s + t.
/// α = 1 means no activation, s = 1 and t = 0 no batch norm.
struct Epilogue {
    var alpha: Float = 1
    var scale: [Float]? = nil
    var shift: [Float]? = nil
    var leakyFirst = true
    private var pre: [Float] = []

    mutating func absorb(bias: [Float]?, channels: Int) {
        let b = bias ?? [Float](repeating: 0, count: channels)
        let s = scale ?? [Float](repeating: 1, count: channels)
        let t = shift ?? [Float](repeating: 0, count: channels)
        scale = s
        if leakyFirst {
            pre = b
            shift = t
        } else {
            pre = []
            shift = (0..<channels).map { b[$0] * s[$0] + t[$0] }
        }
    }

    func apply(_ y: inout Tensor) {
        let C = scale!.count
        let rows = y.count / C
        y.data.withUnsafeMutableBufferPointer { yp in
            let out = yp.baseAddress!
            parallelRanges(rows, minimum: 256) { r in apply(out, rows: r) }
        }
    }

    /// The epilogue on rows `rows` (C values each) of `out`, in place.
    func apply(_ out: UnsafeMutablePointer<Float>, rows: Range<Int>) {
        let C = scale!.count
        let a = alpha, leakyFirst = self.leakyFirst
        scale!.withUnsafeBufferPointer { sp in
            shift!.withUnsafeBufferPointer { tp in
                pre.withUnsafeBufferPointer { bp in
                    let s = sp.baseAddress!, t = tp.baseAddress!, b = bp.baseAddress
                    for row in rows {
                        let p = out + row * C
                        if leakyFirst, let b {
                            for c in 0..<C {
                                let v = p[c] + b[c]
                                p[c] = Swift.max(v, a * v) * s[c] + t[c]
                            }
                        } else {
                            for c in 0..<C {
                                let v = p[c] * s[c] + t[c]
                                p[c] = Swift.max(v, a * v)
                            }
                        }
                    }
                }
            }
        }
    }
}

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
public final class Conv2D: Layer {
    public let name: String
    public let inChannels: Int, filters: Int, kernel: (h: Int, w: Int), stride: Int, padding: Padding, groups: Int
    public let weight: Parameter
    public let bias: Parameter?

    private var input: Tensor?
    /// im2col columns of the last training forward, [group][n·ho·wo][K], kept for the weight gradient.
    private var cachedCols: [Float]?
    /// Bytes of im2col buffer kept between forward and backward before recomputing is preferred.
    static let colsCacheLimit = 1 << 30
    /// im2col floats processed at once on the calling thread (GEMMs split over the workers), and per
    /// worker when each worker runs its own GEMMs: a chunk stays in cache (L3; a core's 1 MB L2)
    /// between being written and multiplied.
    static let colsChunkFloats = 1 << 21
    static let colsChunkFloatsPerWorker = 1 << 18

    public init(name: String, inChannels: Int, filters: Int, kernel: (Int, Int), stride: Int = 1,
                padding: Padding = .valid, groups: Int = 1, bias useBias: Bool = true, l2: Float = 0,
                rng: inout SeededGenerator) throws {
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
    func forwardInference(_ x: Tensor, epilogue: Epilogue) throws -> Tensor {
        try forward(x, training: false, epilogue: epilogue)
    }

    private func forward(_ x: Tensor, training: Bool, epilogue: Epilogue?) throws -> Tensor {
        let g = try geometry(x)
        // Inference leaves the layer untouched, so that chunks of a batch can run on several threads.
        if training { input = x; cachedCols = nil }
        var y: Tensor
        if isDepthwise {
            y = depthwiseForward(x, g)
            finish(&y, epilogue)
        } else if isPointwise {
            let biasInGEMM = epilogue == nil && bias != nil
            y = Tensor(uninitialized: [g.n, g.h, g.w, filters]) { out, _ in
                if biasInGEMM { fillWithBias(out, rows: g.n * g.h * g.w) }
                x.data.withUnsafeBufferPointer { xp in
                    weight.value.data.withUnsafeBufferPointer { wp in
                        BLAS.sgemm(transB: true, m: g.n * g.h * g.w, n: filters, k: inChannels, a: xp.baseAddress!, lda: inChannels,
                                   b: wp.baseAddress!, ldb: inChannels, beta: biasInGEMM ? 1 : 0, c: out, ldc: filters)
                    }
                }
            }
            if !biasInGEMM { finish(&y, epilogue) }
        } else if usesDirectKernel {
            // In training the weight gradient re-creates the (small) columns in backward.
            var e = epilogue ?? Epilogue()
            e.absorb(bias: bias?.value.data, channels: filters)
            y = directForward(x, g, epilogue: e)
        } else {
            let biasInGEMM = epilogue == nil && bias != nil
            y = im2colForward(x, g, keep: training, biasInGEMM: biasInGEMM)
            if !biasInGEMM { finish(&y, epilogue) }
        }
        return y
    }

    /// Inputs per output up to which inference uses the direct kernel (the first layer: 3×3×3 = 27).
    static let directMaxInputs = 64

    /// A convolution with few inputs per output: an sgemm with k = 27 spends its time writing the
    /// output and reaches a fraction of peak, while a direct loop keeps a pixel's outputs in vector
    /// registers across its K inputs and runs the epilogue while the row is in L1.
    var usesDirectKernel: Bool {
        groups == 1 && filters % 8 == 0 && kernel.h * kernel.w * inChannels <= Conv2D.directMaxInputs
    }

    private func directForward(_ x: Tensor, _ g: Geometry, epilogue: Epilogue) -> Tensor {
        let K = g.kh * g.kw * g.c, F = filters
        // Weights as [K][F] so that a tap's F weights are contiguous vectors.
        var wt = [Float](repeating: 0, count: K * F)
        for f in 0..<F { for k in 0..<K { wt[k * F + f] = weight.value.data[f * K + k] } }
        return Tensor(uninitialized: [g.n, g.ho, g.wo, F]) { out, _ in
            x.data.withUnsafeBufferPointer { xp in
                wt.withUnsafeBufferPointer { wp in
                    let xb = xp.baseAddress!, w = UnsafeRawPointer(wp.baseAddress!)
                    parallelRanges(g.n * g.ho, minimum: 2) { r in
                        var patch = [Float](repeating: 0, count: K)
                        patch.withUnsafeMutableBufferPointer { pp in
                            let inputs = pp.baseAddress!
                            for t in r {
                                let n = t / g.ho, oh = t % g.ho
                                for ow in 0..<g.wo {
                                    // The pixel's K inputs ([kh, kw, c] as the weights), zeros outside the image.
                                    var k = 0
                                    for i in 0..<g.kh {
                                        let ih = oh * g.s - g.pt + i
                                        for j in 0..<g.kw {
                                            let iw = ow * g.s - g.pl + j
                                            let inside = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w
                                            let src = xb + ((n * g.h + ih) * g.w + iw) * g.c
                                            for c in 0..<g.c { inputs[k + c] = inside ? src[c] : 0 }
                                            k += g.c
                                        }
                                    }
                                    let dst = UnsafeMutableRawPointer(out + (t * g.wo + ow) * F)
                                    // 8 independent accumulators (64 outputs) cover the FMA latency.
                                    var f0 = 0
                                    while f0 + 64 <= F {
                                        var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
                                        var row = w + f0 &* 4
                                        for k in 0..<K {
                                            let v = SIMD8<Float>(repeating: inputs[k])
                                            a0 = Conv2D.madd(a0, v, row.loadUnaligned(as: SIMD8<Float>.self))
                                            a1 = Conv2D.madd(a1, v, row.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
                                            a2 = Conv2D.madd(a2, v, row.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self))
                                            a3 = Conv2D.madd(a3, v, row.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
                                            a4 = Conv2D.madd(a4, v, row.loadUnaligned(fromByteOffset: 128, as: SIMD8<Float>.self))
                                            a5 = Conv2D.madd(a5, v, row.loadUnaligned(fromByteOffset: 160, as: SIMD8<Float>.self))
                                            a6 = Conv2D.madd(a6, v, row.loadUnaligned(fromByteOffset: 192, as: SIMD8<Float>.self))
                                            a7 = Conv2D.madd(a7, v, row.loadUnaligned(fromByteOffset: 224, as: SIMD8<Float>.self))
                                            row += F &* 4
                                        }
                                        let d = dst + f0 &* 4
                                        d.storeBytes(of: a0, as: SIMD8<Float>.self)
                                        d.storeBytes(of: a1, toByteOffset: 32, as: SIMD8<Float>.self)
                                        d.storeBytes(of: a2, toByteOffset: 64, as: SIMD8<Float>.self)
                                        d.storeBytes(of: a3, toByteOffset: 96, as: SIMD8<Float>.self)
                                        d.storeBytes(of: a4, toByteOffset: 128, as: SIMD8<Float>.self)
                                        d.storeBytes(of: a5, toByteOffset: 160, as: SIMD8<Float>.self)
                                        d.storeBytes(of: a6, toByteOffset: 192, as: SIMD8<Float>.self)
                                        d.storeBytes(of: a7, toByteOffset: 224, as: SIMD8<Float>.self)
                                        f0 += 64
                                    }
                                    while f0 < F {
                                        var a0 = SIMD8<Float>()
                                        var row = w + f0 &* 4
                                        for k in 0..<K {
                                            a0 = Conv2D.madd(a0, SIMD8<Float>(repeating: inputs[k]), row.loadUnaligned(as: SIMD8<Float>.self))
                                            row += F &* 4
                                        }
                                        dst.storeBytes(of: a0, toByteOffset: f0 &* 4, as: SIMD8<Float>.self)
                                        f0 += 8
                                    }
                                }
                                epilogue.apply(out + t * g.wo * F, rows: 0..<g.wo)
                            }
                        }
                    }
                }
            }
        }
    }

    /// a + v·w: one fused instruction where the build targets FMA (see Package.swift); a multiply and
    /// an add otherwise, since an FMA without hardware support is a slow library call per lane.
    @inline(__always)
    static func madd(_ a: SIMD8<Float>, _ v: SIMD8<Float>, _ w: SIMD8<Float>) -> SIMD8<Float> {
        #if NIC_X86_64_V3
        return a.addingProduct(v, w)
        #else
        return a + v * w
        #endif
    }

    /// Starts the output at the bias so that the GEMM adds onto it (β = 1): BLAS passes over C either
    /// way (β = 0 zeroes it first), so the bias costs no pass of its own.
    private func fillWithBias(_ out: UnsafeMutablePointer<Float>, rows: Int) {
        let f = filters
        bias!.value.data.withUnsafeBufferPointer { bp in
            let b = bp.baseAddress!
            parallelRanges(rows, minimum: 256) { r in
                for row in r { (out + row * f).update(from: b, count: f) }
            }
        }
    }

    private func finish(_ y: inout Tensor, _ epilogue: Epilogue?) {
        guard var e = epilogue else { return addBias(&y) }
        e.absorb(bias: bias?.value.data, channels: filters)
        e.apply(&y)
    }

    private func addBias(_ y: inout Tensor) {
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

    /// Contiguous image shares, one per worker of the current context, each running its own
    /// single-threaded GEMMs on chunks that stay in its core's cache (as inference does); one share on
    /// the calling thread inside a worker, with one thread, or for one image (its GEMMs then split
    /// their rows over the workers). Shares depend only on the batch size and the context's threads,
    /// and partial weight gradients are added in share order: results are deterministic.
    private func workerShares(_ n: Int) -> [Range<Int>] {
        guard !CurrentCompute.isWorker, CurrentCompute.context.threads > 1, n > 1 else { return [0..<n] }
        return splitRange(n)
    }

    private func chunkImages(_ g: Geometry, parallel: Bool) -> Int {
        let colsPerImage = g.ho * g.wo * g.kh * g.kw * (g.c / groups)
        // Inside a worker (this share, or an inference chunk) the columns should stay in one core's L2.
        let budget = parallel || CurrentCompute.isWorker ? Conv2D.colsChunkFloatsPerWorker : Conv2D.colsChunkFloats
        return max(1, budget / max(1, colsPerImage))
    }

    /// Runs `body(shareIndex, share)` for every share; several shares run as workers of the context.
    private func forEachShare(_ shares: [Range<Int>], _ body: (Int, Range<Int>) -> Void) {
        if shares.count == 1 { return body(0, shares[0]) }
        CurrentCompute.context.runWorkers(shares.count) { i in body(i, shares[i]) }
    }

    private func im2colForward(_ x: Tensor, _ g: Geometry, keep: Bool, biasInGEMM: Bool) -> Tensor {
        let cg = g.c / groups, fg = filters / groups
        let K = g.kh * g.kw * cg
        let rowsPerImage = g.ho * g.wo
        let groupStride = g.n * rowsPerImage * K
        let keepCols = keep && groupStride * groups * 4 <= Conv2D.colsCacheLimit
        // im2col writes every value, so no buffer needs a zero-fill.
        var kept = [Float](uninitializedCount: keepCols ? groupStride * groups : 0)
        let shares = workerShares(g.n)
        let chunk = chunkImages(g, parallel: shares.count > 1)
        let y = Tensor(uninitialized: [g.n, g.ho, g.wo, filters]) { out, _ in
            if biasInGEMM { fillWithBias(out, rows: g.n * rowsPerImage) }
            x.data.withUnsafeBufferPointer { xp in
                weight.value.data.withUnsafeBufferPointer { wp in
                    kept.withUnsafeMutableBufferPointer { kp in
                        let keptBase = kp.baseAddress
                        forEachShare(shares) { _, share in
                            var local = [Float](uninitializedCount: keepCols ? 0 : min(chunk, share.count) * rowsPerImage * K)
                            local.withUnsafeMutableBufferPointer { lp in
                                for start in Swift.stride(from: share.lowerBound, to: share.upperBound, by: chunk) {
                                    let images = min(chunk, share.upperBound - start)
                                    for group in 0..<groups {
                                        let cols = keepCols ? keptBase! + group * groupStride + start * rowsPerImage * K : lp.baseAddress!
                                        Conv2D.im2col(xp.baseAddress!, g, images: start..<(start + images), c0: group * cg, cg: cg, cols: cols)
                                        BLAS.sgemm(transB: true, m: images * rowsPerImage, n: fg, k: K, a: cols, lda: K,
                                                   b: wp.baseAddress! + group * fg * K, ldb: K, beta: biasInGEMM ? 1 : 0,
                                                   c: out + start * rowsPerImage * filters + group * fg, ldc: filters)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if keep { cachedCols = keepCols ? kept : nil }
        return y
    }

    /// Rows (n, oh, ow) of [kh, kw, cg] input values for channels c0..<c0+cg, zeros outside the image.
    static func im2col(_ x: UnsafePointer<Float>, _ g: Geometry, images: Range<Int>, c0: Int, cg: Int, cols: UnsafeMutablePointer<Float>) {
        let K = g.kh * g.kw * cg
        let rowsPerImage = g.ho * g.wo
        let total = images.count * g.ho
        parallelRanges(total, minimum: 4) { r in
            for t in r {
                let local = t / g.ho, oh = t % g.ho
                let n = images.lowerBound + local
                for ow in 0..<g.wo {
                    var dst = cols + (local * rowsPerImage + oh * g.wo + ow) * K
                    for i in 0..<g.kh {
                        let ih = oh * g.s - g.pt + i
                        if ih < 0 || ih >= g.h {
                            dst.update(repeating: 0, count: g.kw * cg)
                            dst += g.kw * cg
                            continue
                        }
                        let rowBase = x + ((n * g.h + ih) * g.w) * g.c + c0
                        for j in 0..<g.kw {
                            let iw = ow * g.s - g.pl + j
                            if iw < 0 || iw >= g.w {
                                dst.update(repeating: 0, count: cg)
                            } else {
                                dst.update(from: rowBase + iw * g.c, count: cg)
                            }
                            dst += cg
                        }
                    }
                }
            }
        }
    }

    /// Writes the input gradient of channels c0..<c0+cg of `images` from the column gradient: each
    /// input pixel gathers the taps that read it (zero when none does), so dx needs no zero-fill and
    /// rows are independent.
    static func col2im(_ cols: UnsafePointer<Float>, _ g: Geometry, images: Range<Int>, c0: Int, cg: Int, dx: UnsafeMutablePointer<Float>) {
        let K = g.kh * g.kw * cg
        let rowsPerImage = g.ho * g.wo
        parallelRanges(images.count * g.h, minimum: 4) { r in
            for t in r {
                let local = t / g.h, ih = t % g.h
                let n = images.lowerBound + local
                for iw in 0..<g.w {
                    let d = dx + ((n * g.h + ih) * g.w + iw) * g.c + c0
                    var written = false
                    g.forEachTap(readingRow: ih, column: iw) { i, j, oh, ow in
                        let src = cols + (local * rowsPerImage + oh * g.wo + ow) * K + (i * g.kw + j) * cg
                        if written {
                            for c in 0..<cg { d[c] += src[c] }
                        } else {
                            d.update(from: src, count: cg)
                            written = true
                        }
                    }
                    if !written { d.update(repeating: 0, count: cg) }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        try backward(dy, inputGradient: true)
    }

    /// The first layer of a network needs no input gradient: skipping it saves a GEMM and col2im
    /// (or, depthwise, a pass over the largest tensor of the patient model).
    public func backwardParameters(_ dy: Tensor) throws {
        _ = try backward(dy, inputGradient: false)
    }

    func backward(_ dy: Tensor, inputGradient: Bool) throws -> Tensor {
        let x = try requireState(input)
        let g = try geometry(x)
        guard dy.shape == [g.n, g.ho, g.wo, filters] else {
            throw NeuralError.shapeMismatch(layer: name, expected: "output gradient [\(g.n), \(g.ho), \(g.wo), \(filters)]", got: dy.shape)
        }
        if let bias { Conv2D.addColumnSums(dy, into: bias) }
        if isDepthwise { return depthwiseBackward(x, dy, g, inputGradient: inputGradient) }
        let cg = g.c / groups, fg = filters / groups
        let K = g.kh * g.kw * cg
        if isPointwise {
            var dx = inputGradient ? Tensor(uninitialized: x.shape) { _, _ in } : Tensor(zeros: [0])
            let m = g.n * g.h * g.w
            x.data.withUnsafeBufferPointer { xp in
                dy.data.withUnsafeBufferPointer { dyp in
                    weight.value.data.withUnsafeBufferPointer { wp in
                        weight.grad.data.withUnsafeMutableBufferPointer { gwp in
                            dx.data.withUnsafeMutableBufferPointer { dxp in
                                BLAS.sgemm(transA: true, m: filters, n: g.c, k: m, a: dyp.baseAddress!, lda: filters,
                                           b: xp.baseAddress!, ldb: g.c, beta: 1, c: gwp.baseAddress!, ldc: g.c)
                                if inputGradient {
                                    BLAS.sgemm(m: m, n: g.c, k: filters, a: dyp.baseAddress!, lda: filters,
                                               b: wp.baseAddress!, ldb: g.c, c: dxp.baseAddress!, ldc: g.c)
                                }
                            }
                        }
                    }
                }
            }
            return dx
        }
        // Every input pixel's gradient is written by col2im (gathering), so dx starts uninitialised.
        var dx = inputGradient ? Tensor(uninitialized: x.shape) { _, _ in } : Tensor(zeros: [0])
        let rowsPerImage = g.ho * g.wo
        let groupStride = g.n * rowsPerImage * K
        let kept = cachedCols
        let shares = workerShares(g.n)
        let chunk = chunkImages(g, parallel: shares.count > 1)
        let wCount = weight.value.count
        // With several shares each adds its weight gradient into its own buffer; added in share order.
        var partials = [Float](repeating: 0, count: shares.count > 1 ? shares.count * wCount : 0)
        x.data.withUnsafeBufferPointer { xp in
            dy.data.withUnsafeBufferPointer { dyp in
                weight.value.data.withUnsafeBufferPointer { wp in
                    weight.grad.data.withUnsafeMutableBufferPointer { gwp in
                        partials.withUnsafeMutableBufferPointer { pp in
                            dx.data.withUnsafeMutableBufferPointer { dxp in
                                let partialBase = pp.baseAddress, gradBase = gwp.baseAddress!
                                forEachShare(shares) { index, share in
                                    let gw = shares.count > 1 ? partialBase! + index * wCount : gradBase
                                    // dW for the whole share in one GEMM per group when the columns were kept.
                                    if let kept {
                                        kept.withUnsafeBufferPointer { kb in
                                            for group in 0..<groups {
                                                BLAS.sgemm(transA: true, m: fg, n: K, k: share.count * rowsPerImage,
                                                           a: dyp.baseAddress! + share.lowerBound * rowsPerImage * filters + group * fg, lda: filters,
                                                           b: kb.baseAddress! + group * groupStride + share.lowerBound * rowsPerImage * K, ldb: K,
                                                           beta: 1, c: gw + group * fg * K, ldc: K)
                                            }
                                        }
                                        if !inputGradient { return }
                                    }
                                    // Chunks keep the columns (or their gradient) in cache between GEMM and col2im.
                                    let bufferFloats = min(chunk, share.count) * rowsPerImage * K
                                    var cols = [Float](uninitializedCount: kept == nil ? bufferFloats : 0)
                                    var dcols = [Float](uninitializedCount: inputGradient ? bufferFloats : 0)
                                    cols.withUnsafeMutableBufferPointer { cp in
                                        dcols.withUnsafeMutableBufferPointer { dcp in
                                            for start in Swift.stride(from: share.lowerBound, to: share.upperBound, by: chunk) {
                                                let images = min(chunk, share.upperBound - start)
                                                let rows = images * rowsPerImage
                                                for group in 0..<groups {
                                                    let dyg = dyp.baseAddress! + start * rowsPerImage * filters + group * fg
                                                    if kept == nil {
                                                        Conv2D.im2col(xp.baseAddress!, g, images: start..<(start + images), c0: group * cg, cg: cg, cols: cp.baseAddress!)
                                                        BLAS.sgemm(transA: true, m: fg, n: K, k: rows, a: dyg, lda: filters,
                                                                   b: cp.baseAddress!, ldb: K, beta: 1, c: gw + group * fg * K, ldc: K)
                                                    }
                                                    if inputGradient {
                                                        BLAS.sgemm(m: rows, n: K, k: fg, a: dyg, lda: filters, b: wp.baseAddress! + group * fg * K, ldb: K,
                                                                   c: dcp.baseAddress!, ldc: K)
                                                        Conv2D.col2im(dcp.baseAddress!, g, images: start..<(start + images), c0: group * cg, cg: cg, dx: dxp.baseAddress!)
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                                if shares.count > 1 {
                                    for index in 0..<shares.count {
                                        let p = partialBase! + index * wCount
                                        for i in 0..<wCount { gradBase[i] += p[i] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return dx
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

    // MARK: depthwise (one filter per channel): direct loops vectorised over channels

    /// Weights as [kh·kw, C], so the inner loops run over contiguous channels.
    private func tapMajorWeights() -> [Float] {
        let c = inChannels, taps = kernel.h * kernel.w
        var t = [Float](repeating: 0, count: taps * c)
        for ch in 0..<c { for k in 0..<taps { t[k * c + ch] = weight.value.data[ch * taps + k] } }
        return t
    }

    private func depthwiseForward(_ x: Tensor, _ g: Geometry) -> Tensor {
        let wt = tapMajorWeights()
        let C = g.c
        return Tensor(uninitialized: [g.n, g.ho, g.wo, C]) { out, _ in
            x.data.withUnsafeBufferPointer { xp in
                wt.withUnsafeBufferPointer { wp in
                    let xb = xp.baseAddress!, wb = wp.baseAddress!
                    parallelRanges(g.n * g.ho, minimum: 2) { r in
                        for t in r {
                            let n = t / g.ho, oh = t % g.ho
                            for ow in 0..<g.wo {
                                let yrow = out + ((n * g.ho + oh) * g.wo + ow) * C
                                yrow.update(repeating: 0, count: C)
                                for i in 0..<g.kh {
                                    let ih = oh * g.s - g.pt + i
                                    if ih < 0 || ih >= g.h { continue }
                                    for j in 0..<g.kw {
                                        let iw = ow * g.s - g.pl + j
                                        if iw < 0 || iw >= g.w { continue }
                                        let xpix = xb + ((n * g.h + ih) * g.w + iw) * C
                                        let wtap = wb + (i * g.kw + j) * C
                                        for c in 0..<C { yrow[c] += xpix[c] * wtap[c] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    private func depthwiseBackward(_ x: Tensor, _ dy: Tensor, _ g: Geometry, inputGradient: Bool) -> Tensor {
        let wt = tapMajorWeights()
        let C = g.c, taps = g.kh * g.kw
        // dW: partial sums per worker over output rows, combined in a fixed order.
        let ranges = splitRange(g.n * g.ho, minimum: 2)
        var partial = [Float](repeating: 0, count: ranges.count * taps * C)
        // Without an input gradient, a one-value scratch tensor still runs the closure that computes dW.
        let dx = Tensor(uninitialized: inputGradient ? x.shape : [1]) { dxb, _ in
            x.data.withUnsafeBufferPointer { xp in
                dy.data.withUnsafeBufferPointer { dyp in
                    wt.withUnsafeBufferPointer { wp in
                        partial.withUnsafeMutableBufferPointer { pp in
                            let xb = xp.baseAddress!, db = dyp.baseAddress!, wb = wp.baseAddress!, pb = pp.baseAddress!
                            parallelFor(ranges.count) { part in
                                let acc = pb + part * taps * C
                                for t in ranges[part] {
                                    let n = t / g.ho, oh = t % g.ho
                                    for ow in 0..<g.wo {
                                        let drow = db + ((n * g.ho + oh) * g.wo + ow) * C
                                        for i in 0..<g.kh {
                                            let ih = oh * g.s - g.pt + i
                                            if ih < 0 || ih >= g.h { continue }
                                            for j in 0..<g.kw {
                                                let iw = ow * g.s - g.pl + j
                                                if iw < 0 || iw >= g.w { continue }
                                                let xpix = xb + ((n * g.h + ih) * g.w + iw) * C
                                                let a = acc + (i * g.kw + j) * C
                                                for c in 0..<C { a[c] += xpix[c] * drow[c] }
                                            }
                                        }
                                    }
                                }
                            }
                            // dX gathered per input row: each input pixel sums the taps that read it,
                            // so rows are independent and need no locks.
                            parallelRanges(inputGradient ? g.n * g.h : 0, minimum: 2) { r in
                                for t in r {
                                    let n = t / g.h, ih = t % g.h
                                    for iw in 0..<g.w {
                                        let d = dxb + ((n * g.h + ih) * g.w + iw) * C
                                        d.update(repeating: 0, count: C)
                                        g.forEachTap(readingRow: ih, column: iw) { i, j, oh, ow in
                                            let drow = db + ((n * g.ho + oh) * g.wo + ow) * C
                                            let wtap = wb + (i * g.kw + j) * C
                                            for c in 0..<C { d[c] += drow[c] * wtap[c] }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        for part in 0..<ranges.count {
            for k in 0..<taps {
                for ch in 0..<C { weight.grad.data[ch * taps + k] += partial[(part * taps + k) * C + ch] }
            }
        }
        return inputGradient ? dx : Tensor(zeros: [0])
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
