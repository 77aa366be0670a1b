import NICBasics
import Foundation
import Neural

/// Writes what scripts/parity_neural.py compares with PyTorch: the weights (PyTorch layout), a seeded
/// input (NHWC), the inference output, and one training step's loss (MSE to a seeded target),
/// output and parameter gradients (PyTorch layout). Dropout is switched off: its masks cannot match.
public enum NeuralParity {
    public static func run(architecture: String, head: String?, seed: UInt64, batch: Int, inputShape: [Int]?, out: URL) throws {
        let arch = try Architecture.load(file: architecture)
        var net = try arch.build(seed: seed, inputShapes: inputShape.map { [$0] })
        if let head {
            net = try Network.chain(net, Architecture.load(file: head).build(seed: seed + 1, inputShapes: [net.outputShape], prefix: "head"))
        }
        for case let d as Dropout in net.layers { d.enabled = false }
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        // Move BN running statistics away from (0, 1) so that eval mode is a real test.
        let warm = NeuralBench.input([batch] + net.inputs[0].shape, seed: seed + 7)
        _ = try net.forward(warm, training: true)
        try net.save(to: out.appendingPathComponent("weights.safetensors"))

        var rng = Xoshiro256StarStar(seed: seed + 2)
        let x = NeuralBench.input([batch] + net.inputs[0].shape, seed: seed + 3)
        let evalOut = try net.forward(x, training: false)
        let target = (0..<evalOut.count).map { _ in rng.nextNormal() }
        net.zeroGrad()
        let trainOut = try net.forward(x, training: true)
        let loss = try Loss.meanSquaredError(trainOut, target)
        try net.backward(loss.gradient)
        var tensors: [(String, Safetensors.Value)] = [
            ("input", .f32(x.data, shape: x.shape)),
            ("target", .f32(target, shape: evalOut.shape)),
            ("eval_output", .f32(evalOut.data, shape: evalOut.shape)),
            ("train_output", .f32(trainOut.data, shape: trainOut.shape)),
            ("loss", .f32([Float(loss.value)], shape: [])),
        ]
        for p in net.parameters { tensors.append(("grad." + p.key, .f32(p.torchGrad.data, shape: p.torchShape))) }
        try Safetensors.write(tensors, to: out.appendingPathComponent("outputs.safetensors"))
    }

    /// The same for a bag model (an architecture with `pool`): instances [N, features] in `bags` bags
    /// of different sizes; writes the eval outputs, the attention weights and one MSE step's gradients.
    public static func runBag(architecture: String, head: String, features: Int, seed: UInt64, bags: Int, out: URL) throws {
        let model = try BagModel(architecture: Architecture.load(file: architecture), features: features,
                                 head: Architecture.load(file: head), seed: seed)
        for case let d as Dropout in (model.instance?.layers ?? []) + (model.after?.layers ?? []) + model.head.layers { d.enabled = false }
        model.pooling.dropout?.enabled = false
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try model.save(to: out.appendingPathComponent("weights.safetensors"))
        var ranges: [Range<Int>] = [], start = 0
        for b in 0..<bags { ranges.append(start..<(start + 5 + 7 * b)); start += 5 + 7 * b }
        let x = NeuralBench.input([start, features], seed: seed + 3)
        let (evalOut, attention) = try model.forward(x, bags: ranges, training: false)
        var rng = Xoshiro256StarStar(seed: seed + 2)
        let target = (0..<evalOut.count).map { _ in rng.nextNormal() }
        model.parameters.forEach { $0.zeroGrad() }
        let (trainOut, _) = try model.forward(x, bags: ranges, training: true)
        let loss = try Loss.meanSquaredError(trainOut, target)
        try model.backward(loss.gradient)
        var tensors: [(String, Safetensors.Value)] = [
            ("input", .f32(x.data, shape: x.shape)),
            ("bag_sizes", .i64(ranges.map { Int64($0.count) }, shape: [ranges.count])),
            ("target", .f32(target, shape: evalOut.shape)),
            ("eval_output", .f32(evalOut.data, shape: evalOut.shape)),
            ("attention", .f32(attention, shape: [start])),
            ("loss", .f32([Float(loss.value)], shape: [])),
        ]
        for p in model.parameters { tensors.append(("grad." + p.key, .f32(p.torchGrad.data, shape: p.torchShape))) }
        try Safetensors.write(tensors, to: out.appendingPathComponent("outputs.safetensors"))
    }
}

/// nic against PyTorch outputs stored as a fixture, so the check needs no PyTorch: `make
/// parity-fixtures` (scripts/parity_neural.py and scripts/parity_mil.py with `--write-fixtures`) stores
/// nic's weights, input and target beside PyTorch's outputs, loss and gradients computed from them;
/// here nic computes the same from the stored weights and compares with the tolerances of those scripts.
public enum ParityFixture {
    /// What the fixture's JSON card says; the tensors are in the `.safetensors` file of the same name.
    public struct Card: Decodable, Sendable {
        public var kind: String                 // "network" or "bag"
        public var architecture: String         // path in the repository, for messages and staleness
        public var architectureYAML: String
        public var head: String?
        public var headYAML: String?
        public var inputShape: [Int]?           // network: the item shape, when not the architecture's
        public var features: Int?               // bag: the instance width
        public var torch: String                // the PyTorch version that computed the reference
        /// A large input is not stored but drawn again (NeuralBench.input) and checked on `input_head`.
        public var inputGenerator: InputGenerator?

        public struct InputGenerator: Decodable, Sendable {
            public var seed: UInt64
            public var shape: [Int]
        }

        enum CodingKeys: String, CodingKey {
            case kind, architecture, head, torch, features
            case architectureYAML = "architecture_yaml", headYAML = "head_yaml", inputShape = "input_shape", inputGenerator = "input_generator"
        }
    }

    public struct Comparison: Sendable, CustomStringConvertible {
        public var name: String
        public var measured: Double
        public var tolerance: Double
        public var detail: String
        public var passed: Bool { measured <= tolerance }
        public var description: String {
            "\(passed ? "ok  " : "FAIL") \(name): \(detail) \(String(format: "%.2e", measured)) (tolerance \(String(format: "%.0e", tolerance)))"
        }
    }

    public static func card(_ json: URL) throws -> Card {
        do { return try JSONDecoder().decode(Card.self, from: Data(contentsOf: json)) }
        catch { throw NeuralError.invalidArgument("\(json.path): not a parity fixture card (\(error))") }
    }

    /// Recomputes the fixture `json` (+ its `.safetensors`) with nic and compares with PyTorch's values.
    public static func check(_ json: URL) throws -> [Comparison] {
        let card = try card(json)
        let file = json.deletingPathExtension().appendingPathExtension("safetensors").path
        let tensors = try Safetensors.read(URL(fileURLWithPath: file))
        func tensor(_ name: String) throws -> Safetensors.Value {
            guard let v = tensors[name] else { throw NeuralError.weights(file: file, message: "the fixture has no tensor '\(name)'") }
            return v
        }
        let weights = Dictionary(uniqueKeysWithValues: tensors.compactMap { key, value in
            key.hasPrefix("weights.") ? (String(key.dropFirst("weights.".count)), value) : nil
        })
        let architecture = try Architecture.parse(yaml: card.architectureYAML, file: card.architecture)
        let head = try card.headYAML.map { try Architecture.parse(yaml: $0, file: card.head ?? "head") }
        let x: Tensor
        if let generator = card.inputGenerator {
            let count = generator.shape.reduce(1.0) { $0 * Double($1) }  // in Double: a hostile shape cannot overflow
            guard !generator.shape.isEmpty, generator.shape.allSatisfy({ $0 > 0 }), count <= Double(1 << 28) else {
                throw NeuralError.invalidArgument("\(json.path): input_generator.shape \(generator.shape) is not a shape of at most 2^28 values")
            }
            x = NeuralBench.input(generator.shape, seed: generator.seed)
            let head = try tensor("input_head").floats
            guard head.count <= x.count, zip(head, x.data).allSatisfy({ $0.bitPattern == $1.bitPattern }) else {
                throw NeuralError.invalidArgument("\(json.path): the seeded input differs from the one PyTorch saw (NeuralBench.input changed?); run `make parity-fixtures`")
            }
        } else {
            let input = try tensor("input")
            x = Tensor(shape: input.shape, data: input.floats)
        }
        let target = try tensor("target").floats
        switch card.kind {
        case "network": return try checkNetwork(architecture, head: head, card: card, weights: weights, file: file, x: x, target: target, tensor: tensor)
        case "bag": return try checkBag(architecture, head: head, card: card, weights: weights, file: file, x: x, target: target, tensor: tensor)
        default: throw NeuralError.invalidArgument("\(json.path): kind '\(card.kind)' (expected network or bag)")
        }
    }

    /// As scripts/parity_neural.py: outputs within 1e-4 of their scale; each gradient within 1e-3 of its
    /// own largest value, except those exactly zero in PyTorch (a bias before batch norm), whose float32
    /// rounding noise is compared with the network's largest gradient (1e-4).
    static func checkNetwork(_ architecture: Architecture, head: Architecture?, card: Card, weights: [String: Safetensors.Value], file: String,
                             x: Tensor, target: [Float], tensor: (String) throws -> Safetensors.Value) throws -> [Comparison] {
        var net = try architecture.build(seed: 0, inputShapes: card.inputShape.map { [$0] })
        if let head { net = try Network.chain(net, head.build(seed: 1, inputShapes: [net.outputShape], prefix: "head")) }
        for case let d as Dropout in net.layers { d.enabled = false }
        let unexpected = Set(weights.keys).subtracting(try net.load(weights, file: file))
        guard unexpected.isEmpty else { throw NeuralError.weights(file: file, message: "tensors this network does not have: \(unexpected.sorted())") }
        var out: [Comparison] = []
        func relative(_ name: String, _ ours: [Float], _ theirs: [Float]) {
            let scale = max(theirs.map { abs(Double($0)) }.max() ?? 0, 1e-12)
            out.append(Comparison(name: name, measured: maxDifference(ours, theirs) / scale, tolerance: 1e-4, detail: "max|Δ| / scale"))
        }
        relative("inference output", try net.forward(x, training: false).data, try tensor("torch.eval_output").floats)
        net.zeroGrad()
        let trainOut = try net.forward(x, training: true)
        let loss = try Loss.meanSquaredError(trainOut, target)
        try net.backward(loss.gradient)
        relative("training-mode output", trainOut.data, try tensor("torch.train_output").floats)
        relative("loss", [Float(loss.value)], try tensor("torch.loss").floats)
        let references = try net.parameters.map { ($0, try tensor("torch.grad." + $0.key).floats) }
        let top = references.map { $0.1.map { abs(Double($0)) }.max() ?? 0 }.max() ?? 0
        var worst = (0.0, ""), zeros = 0
        for (p, theirs) in references {
            let ours = p.torchGrad.data
            let largest = theirs.map { abs(Double($0)) }.max() ?? 0
            if largest <= 1e-10 * top {
                zeros += 1
                let noise = (ours.map { abs(Double($0)) }.max() ?? 0) / top
                if noise > 1e-4 { out.append(Comparison(name: "gradient \(p.key)", measured: noise, tolerance: 1e-4, detail: "zero in PyTorch; nic's largest / network's largest")) }
                continue
            }
            let rel = maxDifference(ours, theirs) / largest
            if rel > worst.0 { worst = (rel, p.key) }
        }
        out.append(Comparison(name: "\(references.count - zeros) parameter gradients (+\(zeros) zero in PyTorch)", measured: worst.0, tolerance: 1e-3,
                              detail: "worst max|Δ| / largest (\(worst.1))"))
        return out
    }

    /// As scripts/parity_mil.py: outputs, attention and loss within 1e-5; gradients within 1e-4 of the
    /// model's largest gradient (a softmax ignores a shift, so attention_c's bias has rounding noise only).
    static func checkBag(_ architecture: Architecture, head: Architecture?, card: Card, weights: [String: Safetensors.Value], file: String,
                         x: Tensor, target: [Float], tensor: (String) throws -> Safetensors.Value) throws -> [Comparison] {
        guard let head, let features = card.features else { throw NeuralError.invalidArgument("\(file): a bag fixture needs a head and features") }
        let model = try BagModel(architecture: architecture, features: features, head: head, seed: 0)
        for case let d as Dropout in (model.instance?.layers ?? []) + (model.after?.layers ?? []) + model.head.layers { d.enabled = false }
        model.pooling.dropout?.enabled = false
        try model.load(tensors: weights, file: file)
        var ranges: [Range<Int>] = [], start = 0
        for size in try tensor("bag_sizes").floats.map({ Int($0) }) { ranges.append(start..<(start + size)); start += size }
        var out: [Comparison] = []
        let (evalOut, attention) = try model.forward(x, bags: ranges, training: false)
        out.append(Comparison(name: "inference output", measured: maxDifference(evalOut.data, try tensor("torch.eval_output").floats), tolerance: 1e-5, detail: "max|Δ|"))
        out.append(Comparison(name: "attention", measured: maxDifference(attention, try tensor("torch.attention").floats), tolerance: 1e-5, detail: "max|Δ|"))
        model.parameters.forEach { $0.zeroGrad() }
        let (trainOut, _) = try model.forward(x, bags: ranges, training: true)
        let loss = try Loss.meanSquaredError(trainOut, target)
        try model.backward(loss.gradient)
        out.append(Comparison(name: "loss", measured: maxDifference([Float(loss.value)], try tensor("torch.loss").floats), tolerance: 1e-5, detail: "|Δ|"))
        let pairs = try model.parameters.map { ($0.torchGrad.data, try tensor("torch.grad." + $0.key).floats) }
        let scale = max(pairs.map { $0.0.map { abs(Double($0)) }.max() ?? 0 }.max() ?? 0, 1e-12)
        let worst = pairs.map { maxDifference($0.0, $0.1) }.max() ?? 0
        out.append(Comparison(name: "\(pairs.count) parameter gradients", measured: worst / scale, tolerance: 1e-4, detail: "worst max|Δ| / largest"))
        return out
    }

    /// The largest absolute difference; a length mismatch is infinite (never within tolerance).
    static func maxDifference(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count else { return .infinity }
        var worst = 0.0
        for (x, y) in zip(a, b) {
            let d = abs(Double(x) - Double(y))
            if d.isNaN { return .infinity }
            worst = max(worst, d)
        }
        return worst
    }
}
