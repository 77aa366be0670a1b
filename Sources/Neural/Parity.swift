import NICBasics
import Foundation

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
