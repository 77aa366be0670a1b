import NICBasics
import Foundation

/// Multiple-instance pooling: turns a bag of instance vectors into one vector per bag.
///
/// A batch of bags is one matrix of instances [N, D] with bag b owning rows `bags[b]`, so the
/// instance network runs once per step over every bag's instances (one GEMM per layer) and batch
/// statistics of a Cox risk set come from several bags at once. An optional `mask` removes
/// instances (background cells) from their bag: they get attention 0 and gradient 0.
///
/// - `mean`: the average of the bag's instances.
/// - `attention` (Ilse et al. 2018): αᵢ = softmax over the bag of wᵀ tanh(V hᵢ) + c.
/// - `gatedAttention` (Ilse et al. 2018; CLAM): αᵢ = softmax of wᵀ (tanh(V hᵢ) ⊙ σ(U hᵢ)) + c.
/// The pooled vector is Σ αᵢ hᵢ. Tensor names follow CLAM's `Attn_Net_Gated` so a PyTorch model
/// loads the weights: `attention_a.0` (V), `attention_b.0` (U), `attention_c` (w).
public final class BagPooling {
    public enum Kind: Equatable, Sendable {
        case mean
        case attention(hidden: Int)
        case gatedAttention(hidden: Int)
    }

    public let kind: Kind
    public let features: Int
    let v: Dense?, u: Dense?, w: Dense?
    /// Public so that the parity tools (NeuralTools) can switch it off: its masks cannot match PyTorch's.
    public let dropout: Dropout?
    private var state: (h: Tensor, a: [Float], g: [Float], alpha: [Float], bags: [Range<Int>])?

    public init(kind: Kind, features: Int, dropout rate: Float = 0, prefix: String = "pool", seed: UInt64) throws {
        guard features > 0 else { throw NeuralError.invalidArgument("attention pooling needs instance vectors with at least one feature") }
        self.kind = kind
        self.features = features
        var rng = Xoshiro256StarStar(seed: seed)
        switch kind {
        case .mean:
            (v, u, w) = (nil, nil, nil)
        case .attention(let hidden), .gatedAttention(let hidden):
            guard hidden > 0 else { throw NeuralError.invalidArgument("attention pooling: 'hidden' must be positive, got \(hidden)") }
            v = Dense(name: "\(prefix).attention_a.0", inFeatures: features, units: hidden, rng: &rng)
            if case .gatedAttention = kind {
                u = Dense(name: "\(prefix).attention_b.0", inFeatures: features, units: hidden, rng: &rng)
            } else {
                u = nil
            }
            w = Dense(name: "\(prefix).attention_c", inFeatures: hidden, units: 1, rng: &rng)
        }
        dropout = rate > 0 && w != nil ? try Dropout(name: "\(prefix).dropout", rate: rate, rng: Xoshiro256StarStar(seed: SeedStream(seed).derive(.bagPoolingDropout))) : nil
    }

    public var parameters: [Parameter] { [v, u, w].compactMap { $0 }.flatMap(\.parameters) }

    /// Attention logits of instances [N, D] (zeros for `mean`); inference only.
    public func scores(_ h: Tensor) throws -> [Float] {
        guard let v, let w else { return [Float](repeating: 0, count: h.batch) }
        let (_, _, m) = try gate(h, training: false)
        return try w.forward(m, training: false).data
    }

    /// tanh(V h), σ(U h) (ones when not gated) and their product.
    private func gate(_ h: Tensor, training: Bool) throws -> (a: [Float], g: [Float], m: Tensor) {
        guard let v else { return ([], [], h) }
        let a = try v.forward(h, training: training).data.map { tanhf($0) }
        var g = [Float](repeating: 1, count: a.count)
        if let u { g = try u.forward(h, training: training).data.map { 1 / (1 + expf(-$0)) } }
        var m = Tensor(shape: [h.batch, a.count / max(1, h.batch)], data: zip(a, g).map { $0 * $1 })
        if let dropout { m = try dropout.forward(m, training: training) }
        return (a, g, m)
    }

    /// Pooled vectors [bags.count, D] and every instance's weight in its bag (0 where masked).
    public func forward(_ h: Tensor, bags: [Range<Int>], mask: [Bool]? = nil, training: Bool) throws -> (pooled: Tensor, attention: [Float]) {
        guard h.rank == 2, h.shape[1] == features else {
            throw NeuralError.shapeMismatch(layer: "pool", expected: "instances [N, \(features)]", got: h.shape)
        }
        let n = h.shape[0]
        if let mask, mask.count != n { throw NeuralError.invalidArgument("pool: mask has \(mask.count) entries for \(n) instances") }
        let (a, g, m) = try gate(h, training: training)
        let logits = try w.map { try $0.forward(m, training: training).data } ?? [Float](repeating: 0, count: n)
        var alpha = [Float](repeating: 0, count: n)
        var pooled = [Float](repeating: 0, count: bags.count * features)
        for (b, bag) in bags.enumerated() {
            guard bag.lowerBound >= 0, bag.upperBound <= n else { throw NeuralError.invalidArgument("pool: bag \(b) rows \(bag) outside 0..<\(n)") }
            let members = bag.filter { mask?[$0] ?? true }
            guard !members.isEmpty else { throw NeuralError.invalidArgument("pool: bag \(b) has no unmasked instance") }
            let top = members.map { logits[$0] }.max() ?? 0
            var total: Float = 0
            for i in members { alpha[i] = expf(logits[i] - top); total += alpha[i] }
            for i in members { alpha[i] /= total }
            h.data.withUnsafeBufferPointer { hp in
                for i in members {
                    let weight = alpha[i], row = i * features, out = b * features
                    for j in 0..<features { pooled[out + j] += weight * hp[row + j] }
                }
            }
        }
        if training { state = (h, a, g, alpha, bags) }
        return (Tensor(shape: [bags.count, features], data: pooled), alpha)
    }

    /// Gradient w.r.t. the instances of the last training forward; adds the attention weights' gradients.
    public func backward(_ dPooled: Tensor) throws -> Tensor {
        guard let (h, a, g, alpha, bags) = state else { throw NeuralError.noForwardState(layer: "pool") }
        guard dPooled.shape == [bags.count, features] else {
            throw NeuralError.shapeMismatch(layer: "pool", expected: "gradient [\(bags.count), \(features)]", got: dPooled.shape)
        }
        let n = h.shape[0], d = features
        var dh = [Float](repeating: 0, count: n * d)
        var dLogits = [Float](repeating: 0, count: n)
        h.data.withUnsafeBufferPointer { hp in
            dPooled.data.withUnsafeBufferPointer { dz in
                for (b, bag) in bags.enumerated() {
                    // d pooled / d hᵢ = αᵢ; d pooled / d sᵢ = αᵢ (hᵢ − pooled) through the softmax.
                    var weighted: Float = 0
                    for i in bag where alpha[i] != 0 {
                        var dot: Float = 0
                        for j in 0..<d {
                            dh[i * d + j] = alpha[i] * dz[b * d + j]
                            dot += hp[i * d + j] * dz[b * d + j]
                        }
                        dLogits[i] = dot
                        weighted += alpha[i] * dot
                    }
                    for i in bag where alpha[i] != 0 { dLogits[i] = alpha[i] * (dLogits[i] - weighted) }
                }
            }
        }
        guard let v, let w else { return Tensor(shape: h.shape, data: dh) }
        var dm = try w.backward(Tensor(shape: [n, 1], data: dLogits))
        if let dropout { dm = try dropout.backward(dm) }
        var dPreV = [Float](repeating: 0, count: a.count)
        for k in a.indices { dPreV[k] = dm.data[k] * g[k] * (1 - a[k] * a[k]) }
        let hidden = a.count / max(1, n)
        let fromV = try v.backward(Tensor(shape: [n, hidden], data: dPreV))
        for i in dh.indices { dh[i] += fromV.data[i] }
        if let u {
            var dPreU = [Float](repeating: 0, count: a.count)
            for k in a.indices { dPreU[k] = dm.data[k] * a[k] * g[k] * (1 - g[k]) }
            let fromU = try u.backward(Tensor(shape: [n, hidden], data: dPreU))
            for i in dh.indices { dh[i] += fromU.data[i] }
        }
        return Tensor(shape: h.shape, data: dh)
    }

    /// Tests only: reuse the last dropout mask, so that finite differences see one fixed function.
    func freezeDropout() { dropout?.frozen = true }
}
