import Foundation

/// The direct kernel: for a convolution with few inputs per output (the encoder's first layer reads
/// 3×3×3 = 27 values), an sgemm with k = 27 spends its time writing the output and reaches a
/// fraction of peak, while a direct loop keeps a pixel's outputs in vector registers across its K
/// inputs and runs the epilogue while the row is in L1.
extension Conv2D {
    /// Inputs per output up to which inference uses the direct kernel (the first layer: 3×3×3 = 27).
    static let directMaxInputs = 64

    /// y[n, oh, ow, :] = epilogue(Σ_k patch[k] · W[k, :] + b), one pixel's F outputs at a time.
    func directForward(_ x: Tensor, _ g: Geometry, epilogue given: Epilogue?) -> Tensor {
        var epilogue = given ?? Epilogue()
        epilogue.absorb(bias: bias?.value.data, channels: filters)
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

    /// The columns of a direct convolution are small (K ≤ 64 values per output), so backward does
    /// not keep them: it is im2col's, re-creating them chunk by chunk for the weight gradient.
    func directBackward(_ x: Tensor, _ dy: Tensor, _ g: Geometry, inputGradient: Bool) -> Tensor {
        im2colBackward(x, dy, g, inputGradient: inputGradient)
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
}
