import Foundation

/// Batch normalisation over the last axis (channels of NHWC, or features of [N, F]).
/// `momentum` follows PyTorch: running = (1 − momentum)·running + momentum·batch (Keras 0.99 ≙ 0.01);
/// the running variance is the unbiased one, as PyTorch keeps it.
public final class BatchNorm: Layer {
    public let name: String
    public let channels: Int
    public let momentum: Float, eps: Float
    public let gamma: Parameter, beta: Parameter
    public let runningMean: Parameter, runningVar: Parameter
    /// PyTorch's `num_batches_tracked`, saved with the weights.
    public var batchesTracked: Int64 = 0
    private var xhat: Tensor?
    private var invStd: [Float] = []

    public init(name: String, channels: Int, momentum: Float = 0.01, eps: Float = 1e-3) {
        self.name = name
        self.channels = channels
        self.momentum = momentum
        self.eps = eps
        gamma = Parameter(key: name + ".weight", value: Tensor(repeating: 1, shape: [channels]))
        beta = Parameter(key: name + ".bias", value: Tensor(zeros: [channels]))
        runningMean = Parameter(key: name + ".running_mean", value: Tensor(zeros: [channels]))
        runningVar = Parameter(key: name + ".running_var", value: Tensor(repeating: 1, shape: [channels]))
    }

    public var parameters: [Parameter] { [gamma, beta] }
    public var buffers: [Parameter] { [runningMean, runningVar] }

    public func outputShape(_ s: [Int]) throws -> [Int] {
        guard s.last == channels else { throw NeuralError.shapeMismatch(layer: name, expected: "[..., \(channels)]", got: s) }
        return s
    }

    /// Per-channel Σ f(row, c) over all rows, as Double, from per-worker Float blocks.
    private func channelSums(_ rows: Int, _ body: (Int, UnsafeMutablePointer<Float>) -> Void) -> [Double] {
        let C = channels
        let ranges = splitRange(rows, minimum: 256)
        var partial = [Double](repeating: 0, count: ranges.count * C)
        partial.withUnsafeMutableBufferPointer { pp in
            let pb = pp.baseAddress!
            parallelFor(ranges.count) { t in
                var block = [Float](repeating: 0, count: C)
                block.withUnsafeMutableBufferPointer { bp in
                    let b = bp.baseAddress!
                    var inBlock = 0
                    for row in ranges[t] {
                        body(row, b)
                        inBlock += 1
                        // Float sums of a few hundred rows, then Double: accurate and still vectorised.
                        if inBlock == 256 || row == ranges[t].upperBound - 1 {
                            for c in 0..<C { pb[t * C + c] += Double(b[c]); b[c] = 0 }
                            inBlock = 0
                        }
                    }
                }
            }
        }
        var total = [Double](repeating: 0, count: C)
        for t in 0..<ranges.count { for c in 0..<C { total[c] += partial[t * C + c] } }
        return total
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard x.rank >= 2, x.shape.last == channels else {
            throw NeuralError.shapeMismatch(layer: name, expected: "[N, ..., \(channels)]", got: x.shape)
        }
        let C = channels
        let rows = x.count / C
        if !training {
            let (scale, shift) = inferenceAffine()
            return affine(x, scale, shift)
        }
        guard rows > 1 else { throw NeuralError.shapeMismatch(layer: name, expected: "more than one value per channel in training", got: x.shape) }
        var meanF = [Float](repeating: 0, count: C)
        var varF = meanF
        let mean: [Double] = x.data.withUnsafeBufferPointer { xp in
            let xb = xp.baseAddress!
            return channelSums(rows) { row, acc in
                let r = xb + row * C
                for c in 0..<C { acc[c] += r[c] }
            }.map { $0 / Double(rows) }
        }
        for c in 0..<C { meanF[c] = Float(mean[c]) }
        let variance: [Double] = x.data.withUnsafeBufferPointer { xp in
            meanF.withUnsafeBufferPointer { mp in
                let xb = xp.baseAddress!, m = mp.baseAddress!
                return channelSums(rows) { row, acc in
                    let r = xb + row * C
                    for c in 0..<C { let d = r[c] - m[c]; acc[c] += d * d }
                }.map { $0 / Double(rows) }
            }
        }
        invStd = variance.map { Float(1 / ($0 + Double(eps)).squareRoot()) }
        for c in 0..<C {
            varF[c] = Float(variance[c])
            runningMean.value.data[c] = (1 - momentum) * runningMean.value.data[c] + momentum * meanF[c]
            runningVar.value.data[c] = (1 - momentum) * runningVar.value.data[c] + momentum * Float(variance[c] * Double(rows) / Double(rows - 1))
        }
        batchesTracked += 1
        // One pass writes both x̂ (kept for backward) and γx̂ + β.
        var normalised = [Float]()
        let y = Tensor(uninitialized: x.shape) { out, n in
            normalised = [Float](unsafeUninitializedCapacity: n) { hb, count in
                x.data.withUnsafeBufferPointer { xp in
                    meanF.withUnsafeBufferPointer { mp in
                        invStd.withUnsafeBufferPointer { sp in
                            gamma.value.data.withUnsafeBufferPointer { gp in
                                beta.value.data.withUnsafeBufferPointer { bp in
                                    let xb = xp.baseAddress!, h = hb.baseAddress!, m = mp.baseAddress!, s = sp.baseAddress!
                                    let g = gp.baseAddress!, b = bp.baseAddress!
                                    parallelRanges(n / C, minimum: 512) { r in
                                        for row in r {
                                            let o = row * C
                                            for c in 0..<C {
                                                let v = (xb[o + c] - m[c]) * s[c]
                                                h[o + c] = v
                                                out[o + c] = v * g[c] + b[c]
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                count = n
            }
        }
        xhat = Tensor(shape: x.shape, data: normalised)
        return y
    }

    /// Batch norm in inference is y = x·scale + shift per channel.
    func inferenceAffine() -> (scale: [Float], shift: [Float]) {
        var scale = [Float](repeating: 0, count: channels), shift = scale
        for c in 0..<channels {
            let s = gamma.value.data[c] / (runningVar.value.data[c] + eps).squareRoot()
            scale[c] = s
            shift[c] = beta.value.data[c] - runningMean.value.data[c] * s
        }
        return (scale, shift)
    }

    private func affine(_ x: Tensor, _ scale: [Float], _ shift: [Float]) -> Tensor {
        let C = channels
        return Tensor(uninitialized: x.shape) { out, n in
            x.data.withUnsafeBufferPointer { xp in
                scale.withUnsafeBufferPointer { sp in
                    shift.withUnsafeBufferPointer { hp in
                        let xb = xp.baseAddress!, s = sp.baseAddress!, h = hp.baseAddress!
                        parallelRanges(n / C, minimum: 512) { r in
                            for row in r {
                                let src = xb + row * C, dst = out + row * C
                                for c in 0..<C { dst[c] = src[c] * s[c] + h[c] }
                            }
                        }
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let xh = try requireState(xhat)
        guard dy.shape == xh.shape else { throw NeuralError.shapeMismatch(layer: name, expected: "output gradient \(xh.shape)", got: dy.shape) }
        let C = channels
        let rows = dy.count / C
        let sums: (dBeta: [Double], dGamma: [Double]) = dy.data.withUnsafeBufferPointer { dp in
            xh.data.withUnsafeBufferPointer { hp in
                let d = dp.baseAddress!, h = hp.baseAddress!
                let db = channelSums(rows) { row, acc in
                    let r = d + row * C
                    for c in 0..<C { acc[c] += r[c] }
                }
                let dg = channelSums(rows) { row, acc in
                    let r = d + row * C, q = h + row * C
                    for c in 0..<C { acc[c] += r[c] * q[c] }
                }
                return (db, dg)
            }
        }
        for c in 0..<C {
            beta.grad.data[c] += Float(sums.dBeta[c])
            gamma.grad.data[c] += Float(sums.dGamma[c])
        }
        // dx = γ·σ⁻¹·(dy − mean(dy) − x̂·mean(dy·x̂))
        var k = [Float](repeating: 0, count: C), meanDy = k, meanDyX = k
        for c in 0..<C {
            k[c] = gamma.value.data[c] * invStd[c]
            meanDy[c] = Float(sums.dBeta[c] / Double(rows))
            meanDyX[c] = Float(sums.dGamma[c] / Double(rows))
        }
        return Tensor(uninitialized: dy.shape) { out, n in
            dy.data.withUnsafeBufferPointer { dp in
                xh.data.withUnsafeBufferPointer { hp in
                    k.withUnsafeBufferPointer { kp in
                        meanDy.withUnsafeBufferPointer { mp in
                            meanDyX.withUnsafeBufferPointer { qp in
                                let d = dp.baseAddress!, h = hp.baseAddress!, kk = kp.baseAddress!, m = mp.baseAddress!, q = qp.baseAddress!
                                parallelRanges(n / C, minimum: 512) { r in
                                    for row in r {
                                        let o = row * C
                                        for c in 0..<C { out[o + c] = kk[c] * (d[o + c] - m[c] - h[o + c] * q[c]) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
