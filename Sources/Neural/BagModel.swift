import NICBasics
import Foundation

/// A multiple-instance model: an instance network applied to every instance of a bag, a pooling
/// (`BagPooling`) to one vector per bag, and a head. Described in YAML as an architecture whose
/// `layers` are the instance network (input: the instance vector) plus a `pool` entry:
///
/// ```yaml
/// name: abmil-gated
/// # no input: the instances' size comes from the data (a grid's code size)
/// layers:                      # per instance; may be empty ([]) for pooling the raw vectors
///   - dense: 128
///   - relu
///   - dropout: 0.25
/// pool: {type: gated_attention, hidden: 64, dropout: 0.25}   # or attention, mean
/// after: [{dense: 16}, relu]   # optional: layers on the pooled vector before the head
/// ```
/// Tensor names: `instance.*`, `pool.attention_{a,b,c}…` (CLAM's layout), `after.*`, `head.*`.
public final class BagModel {
    public struct PoolSpec: Equatable, Sendable, Decodable {
        public var kind: BagPooling.Kind
        public var dropout: Float

        enum Key: String, CodingKey { case type, hidden, dropout }
        static let types = ["mean", "attention", "gated_attention"]

        /// `pool: mean`, or `pool: {type: gated_attention, hidden: 64, dropout: 0.25}`.
        public init(from decoder: Decoder) throws {
            let entry = try TypedEntry(from: decoder, typeKey: Key.type, expected: "'pool' is a mapping like {type: gated_attention, hidden: 64, dropout: 0.25}")
            let type = entry.type, c = entry.options
            let hidden = try c?.decodeIfPresent(Int.self, forKey: .hidden) ?? 64
            guard hidden > 0 else { throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [Key.hidden], debugDescription: "must be a positive integer, got \(hidden)")) }
            let dropout = try c?.decodeIfPresent(Double.self, forKey: .dropout) ?? 0
            guard dropout >= 0, dropout < 1 else { throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [Key.dropout], debugDescription: "must be a number in [0, 1), got \(dropout)")) }
            switch type {
            case "mean": kind = .mean
            case "attention": kind = .attention(hidden: hidden)
            case "gated_attention": kind = .gatedAttention(hidden: hidden)
            default:
                throw entry.unknownType("must be mean, attention or gated_attention, got '\(type)'\(Suggest.hint(for: type, among: Self.types))")
            }
            self.dropout = Float(dropout)
        }
    }

    public let instance: Network?
    public let pooling: BagPooling
    /// Layers on the pooled vector (a ratio of two averages, e.g. mitoses per tumour cell, needs a
    /// non-linearity after a mean); nil when the architecture has no `after`.
    public let after: Network?
    public let head: Network
    public let inputFeatures: Int

    /// Builds the instance network for `features`-long instances, the pooling and `headArchitecture`.
    public init(architecture: Architecture, features: Int, head headArchitecture: Architecture, seed: UInt64) throws {
        guard let spec = architecture.pool else {
            throw NeuralError.architecture(location: architecture.file, message: "a bag model needs a 'pool' entry")
        }
        if let declared = architecture.inputs.first?.shape, declared != [features] {
            throw NeuralError.architecture(location: architecture.file, message: "input \(declared) does not match the instances' \(features) features")
        }
        let hasLayers = architecture.blocks.contains { !$0.layers.isEmpty }
        instance = hasLayers ? try architecture.build(seed: seed, inputShapes: [[features]], prefix: "instance") : nil
        let pooled = instance?.outputShape ?? [features]
        guard pooled.count == 1 else {
            throw NeuralError.architecture(location: architecture.file, message: "the instance layers must give a vector per instance, not \(pooled)")
        }
        pooling = try BagPooling(kind: spec.kind, features: pooled[0], dropout: spec.dropout, seed: SeedStream(seed).derive(.bagPooling))
        if let written = architecture.after {
            let afterArchitecture = Architecture.sequential(written.layers, file: architecture.file, location: written.location)
            let built = try afterArchitecture.build(seed: SeedStream(seed).derive(.bagAfterPooling), inputShapes: [pooled], prefix: "after")
            guard built.outputShape.count == 1 else {
                throw NeuralError.architecture(location: written.location, message: "'after' must give a vector, not \(built.outputShape)")
            }
            after = built
        } else {
            after = nil
        }
        head = try headArchitecture.build(seed: SeedStream(seed).derive(.bagHead), inputShapes: [after?.outputShape ?? pooled], prefix: "head")
        inputFeatures = features
    }

    public var parameters: [Parameter] { (instance?.parameters ?? []) + pooling.parameters + (after?.parameters ?? []) + head.parameters }

    /// Outputs [bags.count, head outputs] for instances [N, features] grouped into `bags`.
    public func forward(_ x: Tensor, bags: [Range<Int>], mask: [Bool]? = nil, training: Bool) throws -> (output: Tensor, attention: [Float]) {
        let h = try instance?.forward(x, training: training) ?? x
        let (pooled, attention) = try pooling.forward(h, bags: bags, mask: mask, training: training)
        let z = try after?.forward(pooled, training: training) ?? pooled
        return (try head.forward(z, training: training), attention)
    }

    /// Back-propagates the output gradient of the last training forward into every parameter.
    public func backward(_ dOutput: Tensor) throws {
        var dPooled = try head.backward(dOutput)[0]
        if let after { dPooled = try after.backward(dPooled)[0] }
        let dh = try pooling.backward(dPooled)
        if let instance { _ = try instance.backward(dh, inputGradients: false) }
    }

    /// One bag of any size in bounded memory: instances come `chunk` at a time from `instances(range)`,
    /// the softmax is accumulated online (running maximum, rescaled sums), so memory is one chunk plus
    /// one logit per instance. Returns the head's outputs and every instance's attention weight.
    public func predict(count: Int, chunk: Int = 8192, instances: (Range<Int>) throws -> Tensor) throws -> (output: [Float], attention: [Float]) {
        guard count > 0 else { throw NeuralError.invalidArgument("a bag needs at least one instance") }
        let d = pooling.features
        var logits = [Float](repeating: 0, count: count)
        var top = -Float.infinity, total: Float = 0
        var sum = [Float](repeating: 0, count: d)
        for start in stride(from: 0, to: count, by: max(1, chunk)) {
            let range = start..<min(count, start + max(1, chunk))
            let x = try instances(range)
            guard x.shape == [range.count, inputFeatures] else {
                throw NeuralError.shapeMismatch(layer: "instance", expected: "[\(range.count), \(inputFeatures)]", got: x.shape)
            }
            let h = try instance?.forward(x, training: false) ?? x
            let s = try pooling.scores(h)
            let chunkTop = s.max() ?? top
            if chunkTop > top {
                let rescale = top == -.infinity ? 0 : expf(top - chunkTop)
                total *= rescale
                for j in 0..<d { sum[j] *= rescale }
                top = chunkTop
            }
            for (k, i) in range.enumerated() {
                logits[i] = s[k]
                let e = expf(s[k] - top)
                total += e
                for j in 0..<d { sum[j] += e * h.data[k * d + j] }
            }
        }
        let pooled = Tensor(shape: [1, d], data: sum.map { $0 / total })
        let output = try head.forward(try after?.forward(pooled, training: false) ?? pooled, training: false)
        return (output.data, logits.map { expf($0 - top) / total })
    }

    /// Every tensor in PyTorch layout and naming.
    public func stateDict() -> [(String, Safetensors.Value)] {
        (instance?.stateDict() ?? []) + pooling.parameters.map { ($0.key, .f32($0.torchValue.data, shape: $0.torchShape)) }
            + (after?.stateDict() ?? []) + head.stateDict()
    }

    /// Loads every tensor `stateDict` names from a safetensors file; a missing, misshapen or unexpected
    /// tensor is an error naming it.
    public func load(from url: URL) throws {
        try load(tensors: try Safetensors.read(url), file: url.path)
    }

    /// The same from tensors already read (strict: a missing, extra or misshapen tensor is an error
    /// naming it); `file` names their source in errors.
    public func load(tensors: [String: Safetensors.Value], file: String) throws {
        var expected = Set<String>()
        for network in [instance, after, head].compactMap({ $0 }) { expected.formUnion(try network.load(tensors, file: file)) }
        for p in pooling.parameters {
            expected.insert(p.key)
            guard let v = tensors[p.key] else { throw NeuralError.weights(file: file, message: "missing tensor '\(p.key)' (attention pooling)") }
            guard v.shape == p.torchShape else { throw NeuralError.weights(file: file, message: "'\(p.key)' has shape \(v.shape), the pooling expects \(p.torchShape)") }
            p.setTorchValue(Tensor(shape: v.shape, data: v.floats))
        }
        let unexpected = Set(tensors.keys).subtracting(expected)
        if !unexpected.isEmpty {
            throw NeuralError.weights(file: file, message: "tensors this bag model does not have: \(unexpected.sorted().joined(separator: ", "))")
        }
    }

    public func save(to url: URL, metadata: [String: String] = [:]) throws {
        try Safetensors.write(stateDict(), metadata: metadata.merging(["format": "pt", "layout": "pytorch"]) { a, _ in a }, to: url)
    }

}
