import NICBasics
import Foundation
import Neural

/// Timings of the NIC encoder and patient CNN (what `nic doctor --bench` prints and
/// bench/neural/run.sh compares with PyTorch).
public enum NeuralBench {
    public struct Result {
        public let name: String
        public let seconds: Double
        public let items: Int
        public let flop: Double
        public var itemsPerSecond: Double { Double(items) / seconds }
        public var gflops: Double { flop / seconds / 1e9 }
    }

    /// Multiply-add FLOPs of one forward pass per item (conv and dense layers; the rest is memory-bound).
    public static func forwardFLOP(_ net: Network) throws -> Double {
        var shape = net.inputs[0].shape
        var flop = 0.0
        func count(_ layer: Layer, _ input: [Int]) throws -> [Int] {
            let out = try layer.outputShape(input)
            if let c = layer as? Conv2D {
                flop += 2 * Double(out[0] * out[1] * c.filters) * Double(c.kernel.h * c.kernel.w * c.inChannels / c.groups)
            } else if let d = layer as? Dense {
                flop += 2 * Double(d.inFeatures * d.units)
            } else if let s = layer as? SeparableConv2D {
                _ = try count(s.pointwise, count(s.depthwise, input))
            }
            return out
        }
        for layer in net.layers { shape = try count(layer, shape) }
        return flop
    }

    static func time(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
        try body()  // warm-up: allocations, thread start-up, page faults
        var best = Double.infinity
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        return best
    }

    static func input(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = Xoshiro256StarStar(seed: seed)
        return Tensor(uninitialized: shape) { p, n in for i in 0..<n { p[i] = rng.nextUnitFloat() * 2 - 1 } }
    }

    public static func encoderInference(_ encoder: Network, batch: Int = 256, repeats: Int = 5) throws -> Result {
        let x = input([batch] + encoder.inputs[0].shape, seed: 1)
        let s = try time(repeats) { _ = try encoder.forward(x, training: false) }
        return Result(name: "encoder inference (batch \(batch))", seconds: s, items: batch, flop: try forwardFLOP(encoder) * Double(batch))
    }

    /// One optimiser step: forward in training mode, a loss, backward, Adam.
    public static func trainingStep(_ net: Network, batch: Int, repeats: Int, name: String) throws -> Result {
        let x = input([batch] + net.inputs[0].shape, seed: 2)
        let target = [Float](repeating: 0.5, count: batch * net.outputShape.reduce(1, *))
        let adam = Adam(learningRate: 1e-4)
        let s = try time(repeats) {
            net.zeroGrad()
            let y = try net.forward(x, training: true)
            let loss = try Loss.meanSquaredError(y, target)
            try net.backward(loss.gradient, inputGradients: false)
            adam.step(net.parameters)
        }
        return Result(name: name, seconds: s, items: batch, flop: 3 * (try forwardFLOP(net)) * Double(batch))
    }

    /// Runs the three benchmarks on the architectures under `nodes` (repository root's `nodes/`), each
    /// network within the thread budget `compute`.
    public static func run(nodes: String, patient: Bool = true, compute: ComputeContext = .allCores,
                           report: (String) -> Void) throws -> [Result] {
        let encoder = try Architecture.load(file: nodes + "/encoders/nic-encoder.yaml").build(seed: 1)
        encoder.compute = compute
        var results: [Result] = []
        let r1 = try encoderInference(encoder)
        report(format(r1)); results.append(r1)
        let r2 = try trainingStep(encoder, batch: 64, repeats: 5, name: "encoder training step (batch 64)")
        report(format(r2)); results.append(r2)
        if patient {
            let trunk = try Architecture.load(file: nodes + "/patient/nic-sepconv8.yaml")
            let head = try Architecture.load(file: nodes + "/heads/regression.yaml")
            let net = try Network.chain(trunk.build(seed: 1), head.build(seed: 2, inputShapes: [[128]], prefix: "head"))
            net.compute = compute
            let r3 = try trainingStep(net, batch: 16, repeats: 2, name: "patient CNN training step (16×400×400×128)")
            report(format(r3)); results.append(r3)
        }
        return results
    }

    public static func format(_ r: Result) -> String {
        String(format: "%-44@ %9.4f s  %9.1f items/s  %7.1f GFLOP/s", r.name as NSString, r.seconds, r.itemsPerSecond, r.gflops)
    }
}
