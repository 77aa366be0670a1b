import NICBasics
import Foundation

/// im2col + GEMM: each output pixel's [kh, kw, in/groups] inputs are copied into a row of a column
/// matrix, which one sgemm per group multiplies by the weights ([out, kh, kw, in/groups]); a 1×1
/// stride-1 convolution needs no copy, the input already is that matrix. Batch shares run on the
/// context's workers, each on chunks of images whose columns stay in its core's cache.
extension Conv2D {
    // MARK: 1×1, stride 1: the input is the column matrix

    /// y = x · Wᵀ + b over all n·h·w pixels; the bias is pre-filled so the GEMM adds onto it.
    func pointwiseForward(_ x: Tensor, _ g: Geometry, epilogue: Epilogue?) -> Tensor {
        let biasInGEMM = epilogue == nil && bias != nil
        var y = Tensor(uninitialized: [g.n, g.h, g.w, filters]) { out, _ in
            if biasInGEMM { fillWithBias(out, rows: g.n * g.h * g.w) }
            x.data.withUnsafeBufferPointer { xp in
                weight.value.data.withUnsafeBufferPointer { wp in
                    BLAS.sgemm(transB: true, m: g.n * g.h * g.w, n: filters, k: inChannels, a: xp.baseAddress!, lda: inChannels,
                               b: wp.baseAddress!, ldb: inChannels, beta: biasInGEMM ? 1 : 0, c: out, ldc: filters)
                }
            }
        }
        if !biasInGEMM { finish(&y, epilogue) }
        return y
    }

    /// dW += dyᵀ · x and dx = dy · W.
    func pointwiseBackward(_ x: Tensor, _ dy: Tensor, _ g: Geometry, inputGradient: Bool) -> Tensor {
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

    // MARK: columns, then a GEMM per group

    /// Contiguous image shares, one per core (`Compute.pieces`), run by the workers of the current
    /// context, each share with its own single-threaded GEMMs on chunks that stay in a core's cache (as
    /// inference does); one share inside a worker, on one core, or for one image (its GEMMs then split
    /// their rows over the workers). Shares depend only on the batch size and the machine, never on
    /// the budget, and partial weight gradients are added in share order: the same bits on any budget.
    func workerShares(_ n: Int) -> [Range<Int>] {
        guard !CurrentCompute.isWorker, Compute.pieces > 1, n > 1 else { return [0..<n] }
        return splitRange(n)
    }

    func chunkImages(_ g: Geometry, parallel: Bool) -> Int {
        let colsPerImage = g.ho * g.wo * g.kh * g.kw * (g.c / groups)
        // Inside a worker (this share, or an inference chunk) the columns should stay in one core's L2.
        let budget = parallel || CurrentCompute.isWorker ? Conv2D.colsChunkFloatsPerWorker : Conv2D.colsChunkFloats
        return max(1, budget / max(1, colsPerImage))
    }

    /// Runs `body(shareIndex, share)` for every share; several shares run as workers of the context.
    func forEachShare(_ shares: [Range<Int>], _ body: (Int, Range<Int>) -> Void) {
        if shares.count == 1 { return body(0, shares[0]) }
        CurrentCompute.context.runWorkers(shares.count) { i in body(i, shares[i]) }
    }

    /// y[rows of a group] = cols · W_groupᵀ (+ b); with `keep` (training) the columns stay for the
    /// weight gradient when they fit in `colsCacheLimit`.
    func im2colForward(_ x: Tensor, _ g: Geometry, keep: Bool, epilogue: Epilogue?) -> Tensor {
        let biasInGEMM = epilogue == nil && bias != nil
        let cg = g.c / groups, fg = filters / groups
        let K = g.kh * g.kw * cg
        let rowsPerImage = g.ho * g.wo
        let groupStride = g.n * rowsPerImage * K
        let keepCols = keep && groupStride * groups * 4 <= Conv2D.colsCacheLimit
        // im2col writes every value, so no buffer needs a zero-fill.
        var kept = [Float](uninitializedCount: keepCols ? groupStride * groups : 0)
        let shares = workerShares(g.n)
        let chunk = chunkImages(g, parallel: shares.count > 1)
        var y = Tensor(uninitialized: [g.n, g.ho, g.wo, filters]) { out, _ in
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
        if !biasInGEMM { finish(&y, epilogue) }
        return y
    }

    /// Recalling forward: y = cols · Wᵀ per group. So dW += dyᵀ · cols (from the kept columns, or
    /// columns re-created chunk by chunk) and dcols = dy · W, which col2im gathers back into dx.
    func im2colBackward(_ x: Tensor, _ dy: Tensor, _ g: Geometry, inputGradient: Bool) -> Tensor {
        // Every input pixel's gradient is written by col2im (gathering), so dx starts uninitialised.
        var dx = inputGradient ? Tensor(uninitialized: x.shape) { _, _ in } : Tensor(zeros: [0])
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
                                    im2colBackward(share, g, chunk: chunk, x: xp.baseAddress!, dy: dyp.baseAddress!, w: wp.baseAddress!,
                                                   kept: kept, gw: gw, dx: inputGradient ? dxp.baseAddress! : nil)
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

    /// Backward over the images of one share: adds its weight gradient into `gw` and, unless `dx` is
    /// nil, writes the input gradient of its images.
    private func im2colBackward(_ share: Range<Int>, _ g: Geometry, chunk: Int, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                                w: UnsafePointer<Float>, kept: [Float]?, gw: UnsafeMutablePointer<Float>, dx: UnsafeMutablePointer<Float>?) {
        let cg = g.c / groups, fg = filters / groups
        let K = g.kh * g.kw * cg
        let rowsPerImage = g.ho * g.wo
        // dW for the whole share in one GEMM per group when the columns were kept.
        if let kept {
            let groupStride = g.n * rowsPerImage * K
            kept.withUnsafeBufferPointer { kb in
                for group in 0..<groups {
                    BLAS.sgemm(transA: true, m: fg, n: K, k: share.count * rowsPerImage,
                               a: dy + share.lowerBound * rowsPerImage * filters + group * fg, lda: filters,
                               b: kb.baseAddress! + group * groupStride + share.lowerBound * rowsPerImage * K, ldb: K,
                               beta: 1, c: gw + group * fg * K, ldc: K)
                }
            }
            if dx == nil { return }
        }
        // Chunks keep the columns (or their gradient) in cache between GEMM and col2im.
        let bufferFloats = min(chunk, share.count) * rowsPerImage * K
        var cols = [Float](uninitializedCount: kept == nil ? bufferFloats : 0)
        var dcols = [Float](uninitializedCount: dx != nil ? bufferFloats : 0)
        cols.withUnsafeMutableBufferPointer { cp in
            dcols.withUnsafeMutableBufferPointer { dcp in
                for start in Swift.stride(from: share.lowerBound, to: share.upperBound, by: chunk) {
                    let images = start..<min(start + chunk, share.upperBound)
                    let rows = images.count * rowsPerImage
                    for group in 0..<groups {
                        let dyg = dy + start * rowsPerImage * filters + group * fg
                        if kept == nil {
                            Conv2D.im2col(x, g, images: images, c0: group * cg, cg: cg, cols: cp.baseAddress!)
                            BLAS.sgemm(transA: true, m: fg, n: K, k: rows, a: dyg, lda: filters,
                                       b: cp.baseAddress!, ldb: K, beta: 1, c: gw + group * fg * K, ldc: K)
                        }
                        if let dx {
                            BLAS.sgemm(m: rows, n: K, k: fg, a: dyg, lda: filters, b: w + group * fg * K, ldb: K,
                                       c: dcp.baseAddress!, ldc: K)
                            Conv2D.col2im(dcp.baseAddress!, g, images: images, c0: group * cg, cg: cg, dx: dx)
                        }
                    }
                }
            }
        }
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
}
