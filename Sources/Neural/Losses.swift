import Foundation

/// A loss value and its gradient w.r.t. the prediction (same shape). Values are reduced in Double.
public struct LossResult {
    public let value: Double
    public let gradient: Tensor

    public init(value: Double, gradient: Tensor) {
        self.value = value
        self.gradient = gradient
    }
}

public enum CoxTies: String, Sendable {
    /// Every tied event sees the full risk set.
    case breslow
    /// Tied events progressively leave the risk set (Efron 1977), closer to the exact likelihood.
    case efron
}

/// Which patients a Cox step's partial likelihood compares.
public enum CoxRiskSet: String, Sendable {
    /// Only the step's own batch (a batch of 4 compares a patient with at most 3 others; steps
    /// without an event are skipped). The behaviour of heads that do not say.
    case batch
    /// Every training patient of the fold: the step's fresh risks beside the latest risks of the
    /// others (`Loss.coxRiskSet`), so every step sees the whole risk set and any batch trains.
    case fold
}

@inline(__always) func logAddExp(_ a: Double, _ b: Double) -> Double {
    if a == -.infinity { return b }
    if b == -.infinity { return a }
    let m = max(a, b)
    return m + log(exp(a - m) + exp(b - m))
}

@inline(__always) func softplus(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }
@inline(__always) func sigmoid(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }

public enum Loss {
    static func checkFinite(_ name: String, _ r: LossResult) throws -> LossResult {
        guard r.value.isFinite else { throw NeuralError.nonFinite(layer: "loss '\(name)'", what: "value") }
        guard r.gradient.isFinite else { throw NeuralError.nonFinite(layer: "loss '\(name)'", what: "gradient") }
        return r
    }

    static func sameCount(_ name: String, _ a: Tensor, _ n: Int) throws {
        guard a.count == n else { throw NeuralError.shapeMismatch(layer: "loss '\(name)'", expected: "\(n) predictions (one per target)", got: a.shape) }
    }

    /// Mean squared error over every element; NaN targets are missing and ignored.
    public static func meanSquaredError(_ prediction: Tensor, _ target: [Float]) throws -> LossResult {
        try sameCount("mse", prediction, target.count)
        let used = target.filter { !$0.isNaN }.count
        var sum = 0.0
        var g = [Float](repeating: 0, count: target.count)
        for i in 0..<target.count where !target[i].isNaN {
            let d = Double(prediction.data[i]) - Double(target[i])
            sum += d * d
            g[i] = Float(2 * d / Double(used))
        }
        return try checkFinite("mse", LossResult(value: used == 0 ? 0 : sum / Double(used), gradient: Tensor(shape: prediction.shape, data: g)))
    }

    /// Binary cross-entropy on logits (stable: softplus form), mean over labelled entries.
    /// Targets in [0, 1]; NaN marks a missing label (a patch labelled for another task).
    public static func binaryCrossEntropy(logits: Tensor, targets: [Float], positiveWeight: Float = 1) throws -> LossResult {
        try sameCount("binary_cross_entropy", logits, targets.count)
        let used = targets.filter { !$0.isNaN }.count
        var sum = 0.0
        var g = [Float](repeating: 0, count: targets.count)
        let pw = Double(positiveWeight)
        for i in 0..<targets.count where !targets[i].isNaN {
            let z = Double(logits.data[i]), y = Double(targets[i])
            // −[pw·y·log σ(z) + (1−y)·log(1−σ(z))] = pw·y·softplus(−z) + (1−y)·softplus(z)
            sum += pw * y * softplus(-z) + (1 - y) * softplus(z)
            g[i] = Float((-pw * y * (1 - sigmoid(z)) + (1 - y) * sigmoid(z)) / Double(used))
        }
        return try checkFinite("binary_cross_entropy", LossResult(value: used == 0 ? 0 : sum / Double(used), gradient: Tensor(shape: logits.shape, data: g)))
    }

    /// Softmax cross-entropy on logits [N, K] with integer labels; label −1 is missing. With class
    /// weights the mean is weighted as PyTorch does: Σ w_yᵢ·ℓᵢ / Σ w_yᵢ.
    public static func softmaxCrossEntropy(logits: Tensor, labels: [Int], classWeights: [Float]? = nil) throws -> LossResult {
        guard logits.rank == 2, logits.shape[0] == labels.count else {
            throw NeuralError.shapeMismatch(layer: "loss 'softmax_cross_entropy'", expected: "[\(labels.count), K]", got: logits.shape)
        }
        let n = labels.count, k = logits.shape[1]
        if let w = classWeights, w.count != k {
            throw NeuralError.invalidArgument("loss 'softmax_cross_entropy': \(w.count) class weights for \(k) classes")
        }
        for l in labels where l < -1 || l >= k {
            throw NeuralError.invalidArgument("loss 'softmax_cross_entropy': label \(l) outside 0..<\(k) (−1 = missing)")
        }
        var total = 0.0, weightSum = 0.0
        var g = [Float](repeating: 0, count: n * k)
        var probs = [Double](repeating: 0, count: k)
        for i in 0..<n where labels[i] >= 0 { weightSum += Double(classWeights?[labels[i]] ?? 1) }
        for i in 0..<n where labels[i] >= 0 {
            let row = (0..<k).map { Double(logits.data[i * k + $0]) }
            let m = row.max()!  // invariant: a label i ≥ 0 passed the check i < k above, so k ≥ 1 and the row is not empty
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            let w = Double(classWeights?[labels[i]] ?? 1)
            total += w * (lse - row[labels[i]])
            for j in 0..<k { probs[j] = exp(row[j] - lse) }
            for j in 0..<k { g[i * k + j] = Float(w * (probs[j] - (j == labels[i] ? 1 : 0)) / weightSum) }
        }
        return try checkFinite("softmax_cross_entropy", LossResult(value: weightSum == 0 ? 0 : total / weightSum, gradient: Tensor(shape: logits.shape, data: g)))
    }

    /// Negative Cox partial log-likelihood, mean over observed events:
    /// −(1/|D|) Σ_{i∈D} [f(xᵢ) − log Σ_{j: tⱼ ≥ tᵢ} exp f(xⱼ)], with Efron's correction for tied event times
    /// as an option. The batch is sorted by time here; risk-set sums are log-cumsum-exps accumulated from
    /// the longest time down, so no exp overflows whatever the scores' scale.
    public static func cox(risk: Tensor, time: [Double], event: [Bool], ties: CoxTies = .breslow) throws -> LossResult {
        let n = time.count
        try sameCount("cox", risk, n)
        guard event.count == n else { throw NeuralError.invalidArgument("loss 'cox': \(event.count) event flags for \(n) times") }
        let events = event.filter { $0 }.count
        guard events > 0 else {
            throw NeuralError.invalidArgument("loss 'cox': the batch has no observed event, so the partial likelihood is undefined (sample batches with events)")
        }
        let f = risk.data.map(Double.init)
        let order = (0..<n).sorted { time[$0] < time[$1] || (time[$0] == time[$1] && $0 < $1) }
        // Groups of equal time, ascending.
        var groups: [[Int]] = []
        for i in order {
            if let last = groups.last?.last, time[last] == time[i] { groups[groups.count - 1].append(i) } else { groups.append([i]) }
        }
        // log S_g = log Σ_{t_j ≥ t_g} exp f_j, from the longest time down.
        var logS = [Double](repeating: 0, count: groups.count)
        var acc = -Double.infinity
        for g in stride(from: groups.count - 1, through: 0, by: -1) {
            for j in groups[g] { acc = logAddExp(acc, f[j]) }
            logS[g] = acc
        }
        var loss = 0.0
        // log c_g: Σ over the group's likelihood terms of 1/denominator; log e_g: Efron's share removed from tied events.
        var logC = [Double](repeating: -.infinity, count: groups.count)
        var logE = [Double](repeating: -.infinity, count: groups.count)
        for (g, members) in groups.enumerated() {
            let dead = members.filter { event[$0] }
            guard !dead.isEmpty else { continue }
            let d = Double(dead.count)
            for i in dead { loss -= f[i] }
            switch ties {
            case .breslow:
                loss += d * logS[g]
                logC[g] = log(d) - logS[g]
            case .efron:
                let logH = dead.reduce(-Double.infinity) { logAddExp($0, f[$1]) }
                let r = exp(logH - logS[g])  // share of the risk set that dies now, in (0, 1]
                var c = 0.0, e = 0.0
                for l in 0..<dead.count {
                    let q = Double(l) / d
                    let denom = 1 - q * r  // ≥ 1/d > 0
                    loss += logS[g] + log(denom)
                    c += 1 / denom
                    e += q / denom
                }
                logC[g] = log(c) - logS[g]
                logE[g] = e > 0 ? log(e) - logS[g] : -.infinity
            }
        }
        // grad_k = (1/|D|)·[exp(f_k)·Σ_{t_g ≤ t_k} c_g − exp(f_k)·e_{g(k)}·[k died at t_g(k)] − δ_k]
        var grad = [Float](repeating: 0, count: n)
        var cumC = -Double.infinity
        for (g, members) in groups.enumerated() {
            cumC = logAddExp(cumC, logC[g])
            for k in members {
                var v = exp(f[k] + cumC)
                if event[k] {
                    v -= 1
                    if logE[g] > -.infinity { v -= exp(f[k] + logE[g]) }
                }
                grad[k] = Float(v / Double(events))
            }
        }
        return try checkFinite("cox", LossResult(value: loss / Double(events), gradient: Tensor(shape: risk.shape, data: grad)))
    }

    /// The Cox loss over a whole risk set of `time.count` items of which only `members` were just
    /// computed (`risk`, one per member; an item may appear more than once, e.g. two crops of a slide,
    /// and counts as the mean of its occurrences). The others take their entry of `memory`, the last
    /// risk the model gave them (a bank of cached scores, as memory-bank contrastive learning keeps
    /// embeddings). Returns the full-set loss (`cox` over every item) and its gradient w.r.t. the
    /// members, scaled by items/members: one epoch visits every item once, so the steps' gradients
    /// are an unbiased estimate of the full-set gradient whatever the batch size.
    public static func coxRiskSet(risk: Tensor, members: [Int], memory: [Float], time: [Double], event: [Bool],
                                  ties: CoxTies = .breslow) throws -> LossResult {
        let n = time.count
        try sameCount("cox", risk, members.count)
        guard memory.count == n else { throw NeuralError.invalidArgument("loss 'cox': \(memory.count) remembered risks for \(n) items") }
        var f = memory, multiplicity = [Int](repeating: 0, count: n)
        for m in members {
            guard m >= 0 && m < n else { throw NeuralError.invalidArgument("loss 'cox': member \(m) outside the risk set 0..<\(n)") }
            if multiplicity[m] == 0 { f[m] = 0 }
            multiplicity[m] += 1
        }
        for (p, m) in members.enumerated() { f[m] += risk.data[p] / Float(multiplicity[m]) }
        let full = try cox(risk: Tensor(shape: [n], data: f), time: time, event: event, ties: ties)
        let distinct = Double(multiplicity.filter { $0 > 0 }.count)
        let scale = Double(n) / max(1, distinct)
        let grad = members.map { Float(Double(full.gradient.data[$0]) * scale / Double(multiplicity[$0])) }
        return try checkFinite("cox", LossResult(value: full.value, gradient: Tensor(shape: risk.shape, data: grad)))
    }

    /// VAE KL term for encoder output [N, 2D] = (μ, log σ²): weight · mean over the batch of
    /// −½ Σ_j (1 + log σ² − μ² − σ²).
    public static func gaussianKL(_ stats: Tensor, weight: Float = 1) throws -> LossResult {
        guard stats.rank == 2, stats.shape[1] % 2 == 0 else {
            throw NeuralError.shapeMismatch(layer: "loss 'kl'", expected: "[N, 2·D] (μ then log σ²)", got: stats.shape)
        }
        let n = stats.shape[0], d = stats.shape[1] / 2, w = Double(weight)
        var total = 0.0
        var g = [Float](repeating: 0, count: stats.count)
        for i in 0..<n {
            for j in 0..<d {
                // The sampler's clamp of log σ²; the gradient stays that of the clamped value, which
                // still pulls a runaway unit back into range.
                let mu = Double(stats.data[i * 2 * d + j]), lv = Double(SampleGaussian.clampedLogVariance(stats.data[i * 2 * d + d + j]))
                total += -0.5 * (1 + lv - mu * mu - exp(lv))
                g[i * 2 * d + j] = Float(w * mu / Double(n))
                g[i * 2 * d + d + j] = Float(w * 0.5 * (exp(lv) - 1) / Double(n))
            }
        }
        return try checkFinite("kl", LossResult(value: w * total / Double(n), gradient: Tensor(shape: stats.shape, data: g)))
    }

    /// Discriminator loss: BCE(real → 1) + BCE(fake → 0), each averaged over its batch.
    public static func ganDiscriminator(realLogits: Tensor, fakeLogits: Tensor) throws -> (value: Double, real: Tensor, fake: Tensor) {
        let r = try binaryCrossEntropy(logits: realLogits, targets: [Float](repeating: 1, count: realLogits.count))
        let f = try binaryCrossEntropy(logits: fakeLogits, targets: [Float](repeating: 0, count: fakeLogits.count))
        return (r.value + f.value, r.gradient, f.gradient)
    }

    /// Non-saturating generator (or BiGAN encoder) loss: BCE(fake → 1).
    public static func ganGenerator(fakeLogits: Tensor) throws -> LossResult {
        try binaryCrossEntropy(logits: fakeLogits, targets: [Float](repeating: 1, count: fakeLogits.count))
    }

    /// Contrastive pair loss on embeddings [N, D] (Hadsell et al. 2006): ½d² for pairs from the same
    /// place, ½·max(0, margin − d)² otherwise, d the Euclidean distance; mean over pairs. (NIC's own
    /// contrastive encoder uses `binaryCrossEntropy` on a same/different logit instead.)
    public static func contrastive(_ a: Tensor, _ b: Tensor, same: [Bool], margin: Float = 1) throws -> (value: Double, a: Tensor, b: Tensor) {
        guard a.shape == b.shape, a.rank == 2, a.shape[0] == same.count else {
            throw NeuralError.shapeMismatch(layer: "loss 'contrastive'", expected: "two [\(same.count), D] embeddings", got: b.shape)
        }
        let n = same.count, d = a.shape[1], m = Double(margin)
        var total = 0.0
        var ga = [Float](repeating: 0, count: a.count), gb = ga
        for i in 0..<n {
            var sq = 0.0
            for j in 0..<d { let diff = Double(a.data[i * d + j] - b.data[i * d + j]); sq += diff * diff }
            let dist = sq.squareRoot()
            let scale: Double
            if same[i] {
                total += 0.5 * sq
                scale = 1
            } else if dist < m {
                total += 0.5 * (m - dist) * (m - dist)
                scale = dist > 0 ? -(m - dist) / dist : 0
            } else {
                scale = 0
            }
            for j in 0..<d {
                let g = Float(scale * Double(a.data[i * d + j] - b.data[i * d + j]) / Double(n))
                ga[i * d + j] = g
                gb[i * d + j] = -g
            }
        }
        return (total / Double(n), Tensor(shape: a.shape, data: ga), Tensor(shape: b.shape, data: gb))
    }
}
