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
}
