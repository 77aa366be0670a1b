import Foundation

/// Depthwise convolution (one filter per channel, groups == channels): direct loops vectorised over
/// the contiguous channels of NHWC; an im2col would copy kh·kw values to multiply each by one weight.
extension Conv2D {
    /// Weights as [kh·kw, C], so the inner loops run over contiguous channels.
    func tapMajorWeights() -> [Float] {
        let c = inChannels, taps = kernel.h * kernel.w
        var t = [Float](repeating: 0, count: taps * c)
        for ch in 0..<c { for k in 0..<taps { t[k * c + ch] = weight.value.data[ch * taps + k] } }
        return t
    }

    /// y[n, oh, ow, c] = Σ_{i, j} x[n, oh·s − pt + i, ow·s − pl + j, c] · W[c, i, j], then the bias or
    /// the epilogue in a second pass.
    func depthwiseForward(_ x: Tensor, _ g: Geometry, epilogue: Epilogue?) -> Tensor {
        let wt = tapMajorWeights()
        let C = g.c
        var y = Tensor(uninitialized: [g.n, g.ho, g.wo, C]) { out, _ in
            x.data.withUnsafeBufferPointer { xp in
                wt.withUnsafeBufferPointer { wp in
                    let xb = xp.baseAddress!, wb = wp.baseAddress!
                    parallelRanges(g.n * g.ho, minimum: 2) { r in
                        for t in r {
                            let n = t / g.ho, oh = t % g.ho
                            for ow in 0..<g.wo {
                                let yrow = out + ((n * g.ho + oh) * g.wo + ow) * C
                                yrow.update(repeating: 0, count: C)
                                g.forEachTap(ofOutputRow: oh, column: ow) { tap, ih, iw in
                                    let xpix = xb + ((n * g.h + ih) * g.w + iw) * C
                                    let wtap = wb + tap * C
                                    for c in 0..<C { yrow[c] += xpix[c] * wtap[c] }
                                }
                            }
                        }
                    }
                }
            }
        }
        finish(&y, epilogue)
        return y
    }

    /// Recalling forward: y[n, oh, ow, c] = Σ_{i, j} x[n, ih, iw, c] · W[c, i, j]. So
    /// dW[c, i, j] = Σ_{n, oh, ow} x[n, ih, iw, c] · dy[n, oh, ow, c] and dx[n, ih, iw, c] sums
    /// dy[n, oh, ow, c] · W[c, i, j] over the taps (i, j) whose output (oh, ow) reads (ih, iw).
    func depthwiseBackward(_ x: Tensor, _ dy: Tensor, _ g: Geometry, inputGradient: Bool) -> Tensor {
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
                                        g.forEachTap(ofOutputRow: oh, column: ow) { tap, ih, iw in
                                            let xpix = xb + ((n * g.h + ih) * g.w + iw) * C
                                            let a = acc + tap * C
                                            for c in 0..<C { a[c] += xpix[c] * drow[c] }
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
}
