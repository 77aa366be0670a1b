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
    /// Training state for backward: the input (the LeakyReLU's input when one is fused), μ and 1/σ.
    private var savedInput: Tensor?
    private var savedMean: [Float] = []
    private var invStd: [Float] = []
    /// α of the LeakyReLU the last training forward normalised through (LeakyBatchNorm), nil when none:
    /// backward recomputes z from the saved input with it.
    private(set) var fusedLeakyAlpha: Float?

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

    /// Two per-channel sums over all rows ([Σ₁ of C, Σ₂ of C]) as Double, from per-worker Float blocks
    /// of at most 256 rows: accurate, vectorised, and deterministic for a given number of workers.
    private func channelSums(_ rows: Int, _ body: (Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> [Double] {
        let C = channels
        let ranges = splitRange(rows, minimum: 256)
        var partial = [Double](repeating: 0, count: ranges.count * 2 * C)
        partial.withUnsafeMutableBufferPointer { pp in
            let pb = pp.baseAddress!
            parallelFor(ranges.count) { t in
                var block = [Float](repeating: 0, count: 2 * C)
                block.withUnsafeMutableBufferPointer { bp in
                    let b = bp.baseAddress!
                    var inBlock = 0
                    for row in ranges[t] {
                        body(row, b, b + C)
                        inBlock += 1
                        if inBlock == 256 || row == ranges[t].upperBound - 1 {
                            for c in 0..<(2 * C) { pb[t * 2 * C + c] += Double(b[c]); b[c] = 0 }
                            inBlock = 0
                        }
                    }
                }
            }
        }
        var total = [Double](repeating: 0, count: 2 * C)
        for t in 0..<ranges.count { for c in 0..<(2 * C) { total[c] += partial[t * 2 * C + c] } }
        return total
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        try forward(x, training: training, leakyAlpha: nil)
    }

    /// Training-mode batch norm of z = x, or of z = LeakyReLU_α(x) when `leakyAlpha` is given: a
    /// LeakyBatchNorm hands its LeakyReLU's input here, so the activation's output is never stored
    /// (one tensor fewer to write, read and keep) and `backward` returns the gradient for x.
    /// Two passes over x: per-channel shifted sums and sums of squares, then the output.
    func forward(_ x: Tensor, training: Bool, leakyAlpha: Float?) throws -> Tensor {
        guard x.rank >= 2, x.shape.last == channels else {
            throw NeuralError.shapeMismatch(layer: name, expected: "[N, ..., \(channels)]", got: x.shape)
        }
        let C = channels
        let rows = x.count / C
        if !training {
            // invariant: only LeakyBatchNorm passes leakyAlpha, and always with training: true
            precondition(leakyAlpha == nil, "a LeakyReLU is fused into batch norm only in training")
            let (scale, shift) = inferenceAffine()
            return affine(x, scale, shift)
        }
        guard rows > 1 else { throw NeuralError.shapeMismatch(layer: name, expected: "more than one value per channel in training", got: x.shape) }
        let alpha = leakyAlpha ?? 1
        // Sums of (z − k) and (z − k)² with k = the first row: shifting by a value near the mean keeps
        // the one-pass variance from cancelling; Float blocks of 256 rows, accumulated in Double.
        let shift: [Float] = x.data.withUnsafeBufferPointer { xp in
            (0..<C).map { c in let v = xp[c]; return Swift.max(v, alpha * v) }
        }
        var mean = [Double](repeating: 0, count: C), variance = mean
        x.data.withUnsafeBufferPointer { xp in
            shift.withUnsafeBufferPointer { kp in
                let xb = xp.baseAddress!, k = kp.baseAddress!
                let sums = channelSums(rows) { row, s1, s2 in
                    let r = xb + row * C
                    for c in 0..<C {
                        let z = Swift.max(r[c], alpha * r[c]) - k[c]
                        s1[c] += z
                        s2[c] += z * z
                    }
                }
                for c in 0..<C {
                    let m = sums[c] / Double(rows)
                    mean[c] = m + Double(k[c])
                    variance[c] = Swift.max(0, sums[C + c] / Double(rows) - m * m)
                }
            }
        }
        savedMean = mean.map { Float($0) }
        invStd = variance.map { Float(1 / ($0 + Double(eps)).squareRoot()) }
        for c in 0..<C {
            runningMean.value.data[c] = (1 - momentum) * runningMean.value.data[c] + momentum * savedMean[c]
            runningVar.value.data[c] = (1 - momentum) * runningVar.value.data[c] + momentum * Float(variance[c] * Double(rows) / Double(rows - 1))
        }
        batchesTracked += 1
        savedInput = x
        fusedLeakyAlpha = leakyAlpha
        // γ(z − μ)/σ + β = z·a + b per channel.
        var a = [Float](repeating: 0, count: C), b = a
        for c in 0..<C {
            a[c] = gamma.value.data[c] * invStd[c]
            b[c] = beta.value.data[c] - savedMean[c] * a[c]
        }
        return affine(x, a, b, leakyAlpha: alpha)
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

    /// y = LeakyReLU_α(x)·scale + shift per channel; α = 1 is the plain affine map of inference.
    private func affine(_ x: Tensor, _ scale: [Float], _ shift: [Float], leakyAlpha alpha: Float = 1) -> Tensor {
        let C = channels
        return Tensor(uninitialized: x.shape) { out, n in
            x.data.withUnsafeBufferPointer { xp in
                scale.withUnsafeBufferPointer { sp in
                    shift.withUnsafeBufferPointer { hp in
                        let xb = xp.baseAddress!, s = sp.baseAddress!, h = hp.baseAddress!
                        parallelRanges(n / C, minimum: 512) { r in
                            for row in r {
                                let src = xb + row * C, dst = out + row * C
                                for c in 0..<C { dst[c] = Swift.max(src[c], alpha * src[c]) * s[c] + h[c] }
                            }
                        }
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let x = try requireState(savedInput)
        guard dy.shape == x.shape else { throw NeuralError.shapeMismatch(layer: name, expected: "output gradient \(x.shape)", got: dy.shape) }
        let C = channels
        let rows = dy.count / C
        let alpha = fusedLeakyAlpha ?? 1
        // x̂ = (z − μ)/σ is recomputed from the saved input instead of stored: one pass for Σdy and
        // Σdy·x̂, one for the input gradient.
        let sums: [Double] = dy.data.withUnsafeBufferPointer { dp in
            x.data.withUnsafeBufferPointer { xp in
                savedMean.withUnsafeBufferPointer { mp in
                    invStd.withUnsafeBufferPointer { sp in
                        let d = dp.baseAddress!, xb = xp.baseAddress!, m = mp.baseAddress!, s = sp.baseAddress!
                        return channelSums(rows) { row, s1, s2 in
                            let g = d + row * C, r = xb + row * C
                            for c in 0..<C {
                                let h = (Swift.max(r[c], alpha * r[c]) - m[c]) * s[c]
                                s1[c] += g[c]
                                s2[c] += g[c] * h
                            }
                        }
                    }
                }
            }
        }
        for c in 0..<C {
            beta.grad.data[c] += Float(sums[c])
            gamma.grad.data[c] += Float(sums[C + c])
        }
        // dz = γ·σ⁻¹·(dy − mean(dy) − x̂·mean(dy·x̂)); through a fused LeakyReLU, dx = dz·(x > 0 ? 1 : α).
        var k = [Float](repeating: 0, count: C), meanDy = k, meanDyX = k
        for c in 0..<C {
            k[c] = gamma.value.data[c] * invStd[c]
            meanDy[c] = Float(sums[c] / Double(rows))
            meanDyX[c] = Float(sums[C + c] / Double(rows))
        }
        let fused = fusedLeakyAlpha != nil
        return Tensor(uninitialized: dy.shape) { out, n in
            dy.data.withUnsafeBufferPointer { dp in
                x.data.withUnsafeBufferPointer { xp in
                    k.withUnsafeBufferPointer { kp in
                        meanDy.withUnsafeBufferPointer { mp in
                            meanDyX.withUnsafeBufferPointer { qp in
                                savedMean.withUnsafeBufferPointer { mup in
                                    invStd.withUnsafeBufferPointer { sp in
                                        let d = dp.baseAddress!, xb = xp.baseAddress!, kk = kp.baseAddress!, m = mp.baseAddress!, q = qp.baseAddress!
                                        let mu = mup.baseAddress!, s = sp.baseAddress!
                                        parallelRanges(n / C, minimum: 512) { r in
                                            for row in r {
                                                let o = row * C
                                                if fused {
                                                    for c in 0..<C {
                                                        let v = xb[o + c]
                                                        let h = (Swift.max(v, alpha * v) - mu[c]) * s[c]
                                                        let dz = kk[c] * (d[o + c] - m[c] - h * q[c])
                                                        out[o + c] = v > 0 ? dz : alpha * dz
                                                    }
                                                } else {
                                                    for c in 0..<C {
                                                        let h = (xb[o + c] - mu[c]) * s[c]
                                                        out[o + c] = kk[c] * (d[o + c] - m[c] - h * q[c])
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
            }
        }
    }
}
