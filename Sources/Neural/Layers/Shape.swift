import NICBasics
import Foundation

/// [N, ...] → [N, product]. On NHWC data the order is H, W, C (Keras); `Dense` reorders its weights on
/// export so that PyTorch's C, H, W flatten gives the same result.
public final class Flatten: Layer {
    public let name: String
    private var inputShape: [Int]?
    public init(name: String) { self.name = name }
    public func outputShape(_ s: [Int]) throws -> [Int] { [s.reduce(1, *)] }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        if training { inputShape = x.shape }
        return x.reshaped([x.batch, x.itemCount])
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let s = try requireState(inputShape)
        guard dy.count == s.reduce(1, *) else { throw NeuralError.shapeMismatch(layer: name, expected: "output gradient of \(s.reduce(1, *)) values", got: dy.shape) }
        return dy.reshaped(s)
    }
}

/// [N, F] → [N] + target (target is an item shape such as [4, 4, 64], NHWC).
public final class Reshape: Layer {
    public let name: String
    public let target: [Int]
    private var inputShape: [Int]?
    public init(name: String, target: [Int]) {
        self.name = name
        self.target = target
    }

    public func outputShape(_ s: [Int]) throws -> [Int] {
        guard s.reduce(1, *) == target.reduce(1, *) else {
            throw NeuralError.shapeMismatch(layer: name, expected: "\(target.reduce(1, *)) values to reshape to \(target)", got: s)
        }
        return target
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        _ = try outputShape(Array(x.shape.dropFirst()))
        if training { inputShape = x.shape }
        return x.reshaped([x.batch] + target)
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        dy.reshaped(try requireState(inputShape))
    }
}

/// Nearest-neighbour upsampling by an integer factor.
public final class Upsample: Layer {
    public let name: String
    public let factor: Int
    private var inputShape: [Int]?
    public init(name: String, factor: Int) {
        self.name = name
        self.factor = factor
    }

    public func outputShape(_ s: [Int]) throws -> [Int] {
        guard s.count == 3 else { throw NeuralError.shapeMismatch(layer: name, expected: "[H, W, C]", got: s) }
        return [s[0] * factor, s[1] * factor, s[2]]
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        try checkRank(x, 4, "[N, H, W, C]")
        if training { inputShape = x.shape }
        let n = x.shape[0], h = x.shape[1], w = x.shape[2], C = x.shape[3], f = factor
        return Tensor(uninitialized: [n, h * f, w * f, C]) { out, _ in
            x.data.withUnsafeBufferPointer { xp in
                let xb = xp.baseAddress!
                parallelRanges(n * h * f, minimum: 4) { r in
                    for t in r {
                        let img = t / (h * f), oh = t % (h * f)
                        for ow in 0..<(w * f) {
                            (out + ((img * h * f + oh) * w * f + ow) * C).update(from: xb + ((img * h + oh / f) * w + ow / f) * C, count: C)
                        }
                    }
                }
            }
        }
    }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let s = try requireState(inputShape)
        let n = s[0], h = s[1], w = s[2], C = s[3], f = factor
        guard dy.shape == [n, h * f, w * f, C] else { throw NeuralError.shapeMismatch(layer: name, expected: "output gradient [\(n), \(h * f), \(w * f), \(C)]", got: dy.shape) }
        return Tensor(uninitialized: s) { out, _ in
            dy.data.withUnsafeBufferPointer { dp in
                let db = dp.baseAddress!
                parallelRanges(n * h, minimum: 4) { r in
                    for t in r {
                        let img = t / h, ih = t % h
                        for iw in 0..<w {
                            let d = out + ((img * h + ih) * w + iw) * C
                            d.update(repeating: 0, count: C)
                            for a in 0..<f {
                                for b in 0..<f {
                                    let src = db + ((img * h * f + ih * f + a) * w * f + iw * f + b) * C
                                    for c in 0..<C { d[c] += src[c] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Joins inputs along the last axis (channels or features). Not a `Layer`: it takes several inputs.
public struct Concat {
    public let name: String
    public init(name: String) { self.name = name }

    public func outputShape(_ shapes: [[Int]]) throws -> [Int] {
        guard let first = shapes.first else { throw NeuralError.invalidArgument("layer '\(name)': concat needs inputs") }
        for s in shapes where Array(s.dropLast()) != Array(first.dropLast()) || s.isEmpty {
            throw NeuralError.shapeMismatch(layer: name, expected: "all but the last axis equal to \(Array(first.dropLast()))", got: s)
        }
        return Array(first.dropLast()) + [shapes.map { $0.last! }.reduce(0, +)]
    }

    public func forward(_ xs: [Tensor]) throws -> Tensor {
        let shape = try outputShape(xs.map(\.shape))
        if xs.count == 1 { return xs[0] }
        let widths = xs.map { $0.shape.last! }
        let total = shape.last!
        let rows = xs[0].count / widths[0]
        var out = [Float](repeating: 0, count: rows * total)
        var offset = 0
        for (x, w) in zip(xs, widths) {
            for r in 0..<rows {
                for j in 0..<w { out[r * total + offset + j] = x.data[r * w + j] }
            }
            offset += w
        }
        return Tensor(shape: shape, data: out)
    }

    /// Splits the output gradient back into one gradient per input.
    public func backward(_ dy: Tensor, shapes: [[Int]]) -> [Tensor] {
        if shapes.count == 1 { return [dy] }
        let total = dy.shape.last!
        let rows = dy.count / total
        var offset = 0
        return shapes.map { s in
            let w = s.last!
            var d = [Float](repeating: 0, count: rows * w)
            for r in 0..<rows { for j in 0..<w { d[r * w + j] = dy.data[r * total + offset + j] } }
            offset += w
            return Tensor(shape: s, data: d)
        }
    }
}

/// Depthwise conv (`name.depthwise`, no bias) then pointwise 1×1 conv (`name.pointwise`), like Keras'
/// SeparableConv2D; in PyTorch two Conv2d modules of the same names.
public final class SeparableConv2D: Layer {
    public let name: String
    public let depthwise: Conv2D, pointwise: Conv2D

    public init(name: String, inChannels: Int, filters: Int, kernel: (Int, Int), stride: Int, padding: Padding,
                bias: Bool = true, l2: Float = 0, rng: inout Xoshiro256StarStar) throws {
        self.name = name
        depthwise = try Conv2D(name: name + ".depthwise", inChannels: inChannels, filters: inChannels, kernel: kernel,
                               stride: stride, padding: padding, groups: inChannels, bias: false, l2: l2, rng: &rng)
        pointwise = try Conv2D(name: name + ".pointwise", inChannels: inChannels, filters: filters, kernel: (1, 1),
                               bias: bias, l2: l2, rng: &rng)
    }

    public var parameters: [Parameter] { depthwise.parameters + pointwise.parameters }
    public func outputShape(_ s: [Int]) throws -> [Int] { try pointwise.outputShape(depthwise.outputShape(s)) }
    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        try pointwise.forward(depthwise.forward(x, training: training), training: training)
    }
    func forward(_ x: Tensor, epilogue: Epilogue) throws -> Tensor {
        try pointwise.forward(depthwise.forward(x, training: false), epilogue: epilogue)
    }
    public func backward(_ dy: Tensor) throws -> Tensor { try depthwise.backward(pointwise.backward(dy)) }
    public func backwardParameters(_ dy: Tensor) throws { try depthwise.backwardParameters(pointwise.backward(dy)) }
}

/// VAE sampling: input [N, 2D] holding (μ, log σ²); output z = μ + ε·exp(½ log σ²) in training, μ in inference.
public final class SampleGaussian: Layer {
    public let name: String
    private var rng: Xoshiro256StarStar
    private var state: (input: Tensor, eps: [Float])?
    /// Tests only: reuse the last noise, so that finite differences see one fixed function.
    var frozen = false

    public init(name: String, rng: Xoshiro256StarStar) {
        self.name = name
        self.rng = rng
    }

    public func outputShape(_ s: [Int]) throws -> [Int] {
        guard s.count == 1, s[0] % 2 == 0 else { throw NeuralError.shapeMismatch(layer: name, expected: "[2·D] (μ then log σ²)", got: s) }
        return [s[0] / 2]
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        try checkRank(x, 2, "[N, 2·D]")
        let d = try outputShape([x.shape[1]])[0]
        let n = x.shape[0]
        var z = [Float](repeating: 0, count: n * d)
        var eps = [Float](repeating: 0, count: training ? n * d : 0)
        let previous = frozen ? state?.eps : nil
        for i in 0..<n {
            for j in 0..<d {
                let mu = x.data[i * 2 * d + j]
                if training {
                    eps[i * d + j] = previous?[safe: i * d + j] ?? rng.nextNormal()
                    z[i * d + j] = mu + eps[i * d + j] * exp(0.5 * Self.clampedLogVariance(x.data[i * 2 * d + d + j]))
                } else {
                    z[i * d + j] = mu
                }
            }
        }
        if training { state = (x, eps) }
        return Tensor(shape: [n, d], data: z)
    }

    /// log σ² is clamped to [−30, 20] before exp, as common VAE implementations do: one runaway unit
    /// would otherwise overflow σ to infinity and end training in NaN.
    public static func clampedLogVariance(_ value: Float) -> Float { min(max(value, -30), 20) }

    public func backward(_ dy: Tensor) throws -> Tensor {
        let (x, eps) = try requireState(state)
        let n = x.shape[0], d = x.shape[1] / 2
        var dx = [Float](repeating: 0, count: x.count)
        for i in 0..<n {
            for j in 0..<d {
                let g = dy.data[i * d + j]
                dx[i * 2 * d + j] = g
                let logVariance = x.data[i * 2 * d + d + j]
                let clamped = Self.clampedLogVariance(logVariance)
                dx[i * 2 * d + d + j] = clamped == logVariance ? g * eps[i * d + j] * 0.5 * exp(0.5 * clamped) : 0
            }
        }
        return Tensor(shape: x.shape, data: dx)
    }
}
