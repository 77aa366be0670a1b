import NICBasics
import Foundation

/// max(x, αx); α = 0 is ReLU.
public final class LeakyReLU: Layer {
    public let name: String
    public let alpha: Float
    private var input: Tensor?

    public init(name: String, alpha: Float) {
        self.name = name
        self.alpha = alpha
    }

    public func outputShape(_ s: [Int]) throws -> [Int] { s }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        if training { input = x }
        let a = alpha
        // Written out (no closure) so that the loop vectorises; on a hot path of every encoder layer.
        return Tensor(uninitialized: x.shape) { out, n in
            x.data.withUnsafeBufferPointer { xp in
                let src = xp.baseAddress!
                parallelRanges(n, minimum: 1 << 15) { r in
                    if a <= 1 {
                        for i in r { out[i] = Swift.max(src[i], a * src[i]) }
                    } else {
                        for i in r { out[i] = src[i] > 0 ? src[i] : a * src[i] }
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let x = try requireState(input)
        guard dy.shape == x.shape else { throw NeuralError.shapeMismatch(layer: name, expected: "output gradient \(x.shape)", got: dy.shape) }
        let a = alpha
        return Tensor(uninitialized: x.shape) { out, n in
            dy.data.withUnsafeBufferPointer { dp in
                x.data.withUnsafeBufferPointer { xp in
                    let g = dp.baseAddress!, v = xp.baseAddress!
                    parallelRanges(n, minimum: 1 << 15) { r in
                        for i in r { out[i] = v[i] > 0 ? g[i] : a * g[i] }
                    }
                }
            }
        }
    }
}

public final class Sigmoid: Layer {
    public let name: String
    private var output: Tensor?
    public init(name: String) { self.name = name }
    public func outputShape(_ s: [Int]) throws -> [Int] { s }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        let y = Elementwise.map(x) { v in v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v)) }
        if training { output = y }
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let y = try requireState(output)
        guard dy.shape == y.shape else { throw NeuralError.shapeMismatch(layer: name, expected: "output gradient \(y.shape)", got: dy.shape) }
        return Elementwise.zip(dy, y) { g, s in g * s * (1 - s) }
    }
}

public final class Tanh: Layer {
    public let name: String
    private var output: Tensor?
    public init(name: String) { self.name = name }
    public func outputShape(_ s: [Int]) throws -> [Int] { s }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        let y = Elementwise.map(x) { tanh($0) }
        if training { output = y }
        return y
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let y = try requireState(output)
        guard dy.shape == y.shape else { throw NeuralError.shapeMismatch(layer: name, expected: "output gradient \(y.shape)", got: dy.shape) }
        return Elementwise.zip(dy, y) { g, t in g * (1 - t * t) }
    }
}

/// Inverted dropout: kept values are scaled by 1/(1 − rate) in training, so inference is the identity.
/// `spatial`: one decision per (image, channel) over all pixels, as Keras' SpatialDropout2D.
public final class Dropout: Layer {
    public let name: String
    public let rate: Float
    public let spatial: Bool
    private var rng: Xoshiro256StarStar
    private var mask: [Float]?
    /// Off: identity in training too (parity checks against another framework's random masks).
    public var enabled = true
    /// Tests only: reuse the last mask, so that finite differences see one fixed function.
    var frozen = false

    public init(name: String, rate: Float, spatial: Bool = false, rng: Xoshiro256StarStar) throws {
        guard rate >= 0, rate < 1 else { throw NeuralError.invalidArgument("layer '\(name)': dropout rate must be in [0, 1), got \(rate)") }
        self.name = name
        self.rate = rate
        self.spatial = spatial
        self.rng = rng
    }

    public func outputShape(_ s: [Int]) throws -> [Int] {
        if spatial, s.count != 3 { throw NeuralError.shapeMismatch(layer: name, expected: "[H, W, C] for spatial dropout", got: s) }
        return s
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard training, enabled, rate > 0 else { if training { mask = nil }; return x }
        if spatial, x.rank != 4 { throw NeuralError.shapeMismatch(layer: name, expected: "[N, H, W, C]", got: x.shape) }
        let keep = 1 - rate, scale = 1 / (1 - rate)
        let units = spatial ? x.shape[0] * x.shape[3] : x.count
        if frozen, let m = mask, m.count == units { return apply(x, m) }
        var m = [Float](repeating: 0, count: units)
        for i in 0..<units { m[i] = rng.nextUnitFloat() < keep ? scale : 0 }
        mask = m
        return apply(x, m)
    }

    private func apply(_ t: Tensor, _ m: [Float]) -> Tensor {
        if !spatial { return Elementwise.zip(t, Tensor(shape: t.shape, data: m)) { $0 * $1 } }
        let n = t.shape[0], pixels = t.shape[1] * t.shape[2], C = t.shape[3]
        // One read and one write (a copy-then-scale would pass over the tensor twice).
        return Tensor(uninitialized: t.shape) { o, _ in
            t.data.withUnsafeBufferPointer { tp in
                m.withUnsafeBufferPointer { mp in
                    let src = tp.baseAddress!, mb = mp.baseAddress!
                    parallelRanges(n * pixels, minimum: 1024) { r in
                        for p in r {
                            let mm = mb + (p / pixels) * C, row = p * C
                            for c in 0..<C { o[row + c] = src[row + c] * mm[c] }
                        }
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        if rate == 0 || !enabled { return dy }
        let m = try requireState(mask)
        return apply(dy, m)
    }
}
