import Foundation

public protocol Optimizer: AnyObject {
    var learningRate: Float { get set }
    /// Applies one update from the parameters' gradients (L2 added here), then leaves the gradients as they are.
    func step(_ parameters: [Parameter])
}

/// Scales all gradients so that their global L2 norm is at most `maxNorm`; returns the norm before clipping.
@discardableResult
public func clipGradients(_ parameters: [Parameter], maxNorm: Float) -> Float {
    var sq = 0.0
    for p in parameters { for g in p.grad.data { sq += Double(g) * Double(g) } }
    let norm = Float(sq.squareRoot())
    if norm > maxNorm, norm > 0 {
        let s = maxNorm / norm
        for p in parameters { p.grad.data.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] *= s } } }
    }
    return norm
}

/// Adam (Kingma & Ba) with bias correction; L2 weight decay is added to the gradient (PyTorch's
/// `weight_decay`, Keras' kernel regularizer), per parameter via `Parameter.l2` plus `weightDecay` for all.
public final class Adam: Optimizer {
    public var learningRate: Float
    public let beta1: Float, beta2: Float, epsilon: Float
    public var weightDecay: Float
    private var moments: [ObjectIdentifier: (m: [Float], v: [Float])] = [:]
    public private(set) var steps = 0

    public init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Parameter]) {
        steps += 1
        let c1 = 1 - pow(beta1, Float(steps)), c2 = 1 - pow(beta2, Float(steps))
        let lr = learningRate, b1 = beta1, b2 = beta2, eps = epsilon
        for p in parameters {
            let id = ObjectIdentifier(p)
            var state = moments[id] ?? ([Float](repeating: 0, count: p.value.count), [Float](repeating: 0, count: p.value.count))
            let decay = p.l2 + weightDecay
            p.value.data.withUnsafeMutableBufferPointer { w in
                p.grad.data.withUnsafeBufferPointer { g in
                    state.m.withUnsafeMutableBufferPointer { m in
                        state.v.withUnsafeMutableBufferPointer { v in
                            for i in 0..<w.count {
                                let gi = g[i] + decay * w[i]
                                m[i] = b1 * m[i] + (1 - b1) * gi
                                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                                w[i] -= lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + eps)
                            }
                        }
                    }
                }
            }
            moments[id] = state
        }
    }
}

/// SGD with (optionally Nesterov) momentum, PyTorch's formulation: v = μv + g; w −= lr·v.
public final class SGD: Optimizer {
    public var learningRate: Float
    public let momentum: Float, nesterov: Bool
    public var weightDecay: Float
    private var velocity: [ObjectIdentifier: [Float]] = [:]

    public init(learningRate: Float, momentum: Float = 0.9, nesterov: Bool = false, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Parameter]) {
        for p in parameters {
            let id = ObjectIdentifier(p)
            var vel = velocity[id] ?? [Float](repeating: 0, count: p.value.count)
            let decay = p.l2 + weightDecay
            for i in 0..<vel.count {
                let g = p.grad.data[i] + decay * p.value.data[i]
                vel[i] = momentum * vel[i] + g
                p.value.data[i] -= learningRate * (nesterov ? g + momentum * vel[i] : vel[i])
            }
            velocity[id] = vel
        }
    }
}

/// Divides the learning rate by `1/factor` when the monitored loss has not improved by more than
/// `threshold` (relative) for `patience` epochs, never below `minLearningRate`.
public struct ReduceOnPlateau {
    public let factor: Float, patience: Int, minLearningRate: Float, threshold: Double
    public private(set) var best = Double.infinity
    public private(set) var badEpochs = 0

    public init(factor: Float = 0.1, patience: Int = 4, minLearningRate: Float = 1e-5, threshold: Double = 1e-4) {
        self.factor = factor
        self.patience = patience
        self.minLearningRate = minLearningRate
        self.threshold = threshold
    }

    /// Call once per epoch with the validation loss; returns true when the rate was reduced.
    @discardableResult
    public mutating func update(_ loss: Double, optimizer: Optimizer) -> Bool {
        let improved = loss < best * (1 - threshold) || best == .infinity
        if improved { best = loss }
        return update(progress: improved, optimizer: optimizer)
    }

    /// Call once per epoch with whether it made progress, when something else than one loss judges
    /// that (`TrainingSchedule.Monitor.eachPart`); returns true when the rate was reduced.
    @discardableResult
    public mutating func update(progress: Bool, optimizer: Optimizer) -> Bool {
        if progress {
            badEpochs = 0
            return false
        }
        badEpochs += 1
        guard badEpochs > patience, optimizer.learningRate > minLearningRate else { return false }
        optimizer.learningRate = max(minLearningRate, optimizer.learningRate * factor)
        badEpochs = 0
        return true
    }
}
