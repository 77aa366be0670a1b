import Foundation

/// The convolution as its definition, in plain nested loops with Double sums: the truth that tests
/// hold every fast algorithm to (groups, stride, padding), kept beside them as llm.c keeps
/// `matmul_forward_naive` beside its kernels. Slow; never on a hot path.
extension Conv2D {
    /// y[n, oh, ow, f] = b[f] + Σ_{i, j, c} x[n, oh·s − pt + i, ow·s − pl + j, g·cg + c] · W[f, i, j, c],
    /// g = f / (filters / groups) the group of filter f, zero outside the image.
    func referenceForward(_ x: Tensor) throws -> Tensor {
        let g = try geometry(x)
        let cg = inChannels / groups, fg = filters / groups
        var y = Tensor(zeros: [g.n, g.ho, g.wo, filters])
        for n in 0..<g.n {
            for oh in 0..<g.ho {
                for ow in 0..<g.wo {
                    for f in 0..<filters {
                        var sum = Double(bias?.value.data[f] ?? 0)
                        for i in 0..<g.kh {
                            for j in 0..<g.kw {
                                let ih = oh * g.s - g.pt + i, iw = ow * g.s - g.pl + j
                                guard ih >= 0, ih < g.h, iw >= 0, iw < g.w else { continue }
                                for c in 0..<cg {
                                    let xv = x.data[((n * g.h + ih) * g.w + iw) * g.c + (f / fg) * cg + c]
                                    let wv = weight.value.data[((f * g.kh + i) * g.kw + j) * cg + c]
                                    sum += Double(xv) * Double(wv)
                                }
                            }
                        }
                        y.data[((n * g.ho + oh) * g.wo + ow) * filters + f] = Float(sum)
                    }
                }
            }
        }
        return y
    }

    /// Recalling forward, y[n, oh, ow, f] = b[f] + Σ x[n, ih, iw, g·cg + c] · W[f, i, j, c]: each term
    /// sends dy[n, oh, ow, f] · W[f, i, j, c] to dx[n, ih, iw, g·cg + c] and dy · x to dW[f, i, j, c];
    /// db[f] = Σ dy[·, f]. Returned, not accumulated into the parameters.
    func referenceBackward(_ x: Tensor, _ dy: Tensor) throws -> (dx: Tensor, dWeight: Tensor, dBias: Tensor) {
        let g = try geometry(x)
        let cg = inChannels / groups, fg = filters / groups
        var dx = [Double](repeating: 0, count: x.count)
        var dw = [Double](repeating: 0, count: weight.value.count)
        var db = [Double](repeating: 0, count: filters)
        for n in 0..<g.n {
            for oh in 0..<g.ho {
                for ow in 0..<g.wo {
                    for f in 0..<filters {
                        let d = Double(dy.data[((n * g.ho + oh) * g.wo + ow) * filters + f])
                        db[f] += d
                        for i in 0..<g.kh {
                            for j in 0..<g.kw {
                                let ih = oh * g.s - g.pt + i, iw = ow * g.s - g.pl + j
                                guard ih >= 0, ih < g.h, iw >= 0, iw < g.w else { continue }
                                for c in 0..<cg {
                                    let xi = ((n * g.h + ih) * g.w + iw) * g.c + (f / fg) * cg + c
                                    let wi = ((f * g.kh + i) * g.kw + j) * cg + c
                                    dx[xi] += d * Double(weight.value.data[wi])
                                    dw[wi] += d * Double(x.data[xi])
                                }
                            }
                        }
                    }
                }
            }
        }
        func tensor(_ values: [Double], _ shape: [Int]) -> Tensor { Tensor(shape: shape, data: values.map { Float($0) }) }
        return (tensor(dx, x.shape), tensor(dw, weight.value.shape), tensor(db, [filters]))
    }
}
