import Foundation
import NICBasics

/// A network of blocks. Each block takes one or more named sources (network inputs or earlier blocks),
/// concatenates them along the last axis, and runs its layers in order. A plain sequential model is a
/// single block called `layers`, so its tensors are named `layers.0.weight`, ... as in a PyTorch
/// `nn.Sequential` attribute called `layers`.
public final class Network {
    public final class Block {
        public let name: String
        public let sources: [String]
        public let layers: [Layer]
        public let inputShapes: [[Int]]
        public let outputShape: [Int]
        let concat: Concat

        init(name: String, sources: [String], layers: [Layer], inputShapes: [[Int]], outputShape: [Int]) {
            self.name = name
            self.sources = sources
            self.layers = layers
            self.inputShapes = inputShapes
            self.outputShape = outputShape
            self.concat = Concat(name: name + ".concat")
        }
    }

    public let name: String
    public let inputs: [(name: String, shape: [Int])]
    public let blocks: [Block]
    /// In training, check for NaN/Inf and name the layer that made it. Checks cost a pass over the data,
    /// so they are placed where they are cheap: the network output (on failure the forward pass is run
    /// again layer by layer to find the culprit) and each layer's parameter gradients (small tensors).
    public var checksFinite = true
    /// The thread budget of this network's forward and backward passes; nil takes the budget current
    /// where a pass is called (a pipeline node's: the engine runs every node inside its own), else
    /// every core.
    public var compute: ComputeContext?

    public init(name: String, inputs: [(name: String, shape: [Int])], blocks: [Block], compute: ComputeContext? = nil) {
        Compute.configureProcess()
        self.name = name
        self.inputs = inputs
        self.blocks = blocks
        self.compute = compute
        replan()
    }

    /// Each block's layers as run in training and in inference: `layers` rewritten by `Fusion`.
    private var trainingSteps: [[Layer]] = []
    private var inferenceSteps: [[Layer]] = []

    private func replan() {
        trainingSteps = blocks.map { fusesTraining ? Fusion.training($0.layers) : $0.layers }
        inferenceSteps = blocks.map { fusesInference ? Fusion.inference($0.layers) : $0.layers }
    }

    public var outputShape: [Int] { blocks.last!.outputShape }
    public var layers: [Layer] { blocks.flatMap(\.layers) }
    public var parameters: [Parameter] { layers.flatMap(\.parameters) }
    public var buffers: [Parameter] { layers.flatMap(\.buffers) }
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    public func zeroGrad() { parameters.forEach { $0.zeroGrad() } }

    public func layer(named name: String) -> Layer? { layers.first { $0.name == name } }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor { try forward([x], training: training) }

    /// Fold LeakyReLU/BatchNorm into the preceding convolution in inference (off only to compare).
    public var fusesInference = true { didSet { replan() } }
    /// Training runs LeakyReLU → BatchNorm pairs as one layer (same values; off only to test that).
    public var fusesTraining = true { didSet { replan() } }

    /// Items per chunk in inference; 0 picks a size whose activations stay in cache.
    public var inferenceChunk = 0

    /// Inference runs the batch as chunks taken by the workers of `compute`: the activations of a
    /// chunk stay in cache between layers and no GEMM pays for thread hand-offs. Chunks are cut for
    /// the machine (`Compute.pieces`), not for the budget, so outputs do not depend on it.
    public func forward(_ xs: [Tensor], training: Bool) throws -> Tensor {
        let n = xs.first?.batch ?? 0
        let compute = self.compute ?? CurrentCompute.context
        let workers = Compute.pieces
        guard !training, workers > 1, n > 1, xs.allSatisfy({ $0.batch == n }) else {
            return try compute.run { try forwardWhole(xs, training: training) }
        }
        let chunk = inferenceChunk > 0 ? inferenceChunk : defaultChunk(batch: n, workers: workers)
        let starts = Array(Swift.stride(from: 0, to: n, by: chunk))
        if starts.count < 2 { return try compute.run { try forwardWhole(xs, training: false) } }
        let outputs = Locked([Tensor?](repeating: nil, count: starts.count))
        let failure = Locked<Error?>(nil)
        let next = Locked(0)
        compute.runWorkers(min(workers, starts.count)) { _ in
            while true {
                let i = next.fetchAndIncrement()
                if i >= starts.count { return }
                let range = starts[i]..<min(starts[i] + chunk, n)
                do {
                    let y = try forwardWhole(xs.map { $0.items(range) }, training: false)
                    outputs.withLock { $0[i] = y }
                } catch {
                    failure.withLock { $0 = $0 ?? error }
                    return
                }
            }
        }
        if let error = failure.current { throw error }
        let parts = outputs.current.map { $0! }
        var data = [Float]()
        data.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for p in parts { data.append(contentsOf: p.data) }
        return Tensor(shape: [n] + parts[0].shape.dropFirst(), data: data)
    }

    /// About 4 MB of the largest activation (or im2col buffer) per chunk, inside a core's L3 share;
    /// convolutions split their im2col further into L2-sized pieces (Conv2D.chunkImages).
    func defaultChunk(batch: Int, workers: Int) -> Int {
        var largest = inputs.map { $0.shape.reduce(1, *) }.max() ?? 1
        for block in blocks {
            var shape = block.inputShapes.count == 1 ? block.inputShapes[0] : (try? Concat(name: "").outputShape(block.inputShapes)) ?? []
            for layer in block.layers {
                guard let out = try? layer.outputShape(shape) else { break }
                largest = max(largest, out.reduce(1, *))
                if let c = layer as? Conv2D, out.count == 3 {
                    largest = max(largest, out[0] * out[1] * c.kernel.h * c.kernel.w * c.inChannels / c.groups)
                }
                shape = out
            }
        }
        let perChunk = max(1, (1 << 20) / max(1, largest))
        return max(1, min(perChunk, (batch + workers - 1) / workers))
    }

    func forwardWhole(_ xs: [Tensor], training: Bool) throws -> Tensor {
        guard training, checksFinite else { return try forwardWhole(xs, training: training, checkEachLayer: false) }
        let y = try forwardWhole(xs, training: true, checkEachLayer: false)
        if y.firstNonFinite == nil { return y }
        // Rare path: repeat with a check after every layer to name the one that produced NaN/Inf.
        _ = try forwardWhole(xs, training: true, checkEachLayer: true)
        throw NeuralError.nonFinite(layer: blocks.last!.layers.last?.name ?? name, what: "output")
    }

    private func forwardWhole(_ xs: [Tensor], training: Bool, checkEachLayer: Bool) throws -> Tensor {
        guard xs.count == inputs.count else {
            throw NeuralError.invalidArgument("network '\(name)': expected \(inputs.count) inputs (\(inputs.map(\.name).joined(separator: ", "))), got \(xs.count)")
        }
        var values: [String: Tensor] = [:]
        for (spec, x) in zip(inputs, xs) {
            guard Array(x.shape.dropFirst()) == spec.shape, x.rank == spec.shape.count + 1 else {
                throw NeuralError.shapeMismatch(layer: "\(name) input '\(spec.name)'", expected: "[N] + \(spec.shape)", got: x.shape)
            }
            values[spec.name] = x
        }
        var x = Tensor(zeros: [0])
        for (block, steps) in zip(blocks, training ? trainingSteps : inferenceSteps) {
            x = try block.concat.forward(block.sources.map { values[$0]! })
            for layer in steps {
                x = try LayerProfile.measure(layer.name, backward: false) { try layer.forward(x, training: training) }
                if checkEachLayer, x.firstNonFinite != nil {
                    throw NeuralError.nonFinite(layer: layer.name, what: "output")
                }
            }
            values[block.name] = x
        }
        return x
    }

    /// Back-propagates the gradient of the output; returns the gradient for each network input and
    /// adds parameter gradients (call `zeroGrad` between steps). With `inputGradients: false` the
    /// layers that read the inputs compute parameter gradients only, and an empty list is returned.
    @discardableResult
    public func backward(_ dy: Tensor, inputGradients: Bool = true) throws -> [Tensor] {
        try (compute ?? CurrentCompute.context).run { try backwardWhole(dy, inputGradients: inputGradients) }
    }

    private func backwardWhole(_ dy: Tensor, inputGradients: Bool) throws -> [Tensor] {
        var grads: [String: Tensor] = [blocks.last!.name: dy]
        let inputNames = Set(inputs.map(\.name))
        for (block, steps) in zip(blocks, trainingSteps).reversed() {
            guard var g = grads.removeValue(forKey: block.name) else { continue }
            let readsOnlyInputs = block.sources.allSatisfy { inputNames.contains($0) }
            for (index, layer) in steps.enumerated().reversed() {
                if index == 0, readsOnlyInputs, !inputGradients {
                    try LayerProfile.measure(layer.name, backward: true) { try layer.backwardParameters(g) }
                    try checkGradients(of: layer)
                    g = Tensor(zeros: [0])
                    break
                }
                g = try LayerProfile.measure(layer.name, backward: true) { try layer.backward(g) }
                try checkGradients(of: layer)
            }
            if g.count == 0, !inputGradients, readsOnlyInputs { continue }
            let parts = block.concat.backward(g, shapes: block.inputShapes.map { [g.batch] + $0 })
            for (source, part) in zip(block.sources, parts) {
                if let existing = grads[source] {
                    grads[source] = Elementwise.zip(existing, part) { $0 + $1 }
                } else {
                    grads[source] = part
                }
            }
        }
        if !inputGradients { return [] }
        if checksFinite {
            for (k, g) in grads where g.firstNonFinite != nil { throw NeuralError.nonFinite(layer: "\(name) input '\(k)'", what: "gradient") }
        }
        return inputs.map { grads[$0.name] ?? Tensor(zeros: [dy.batch] + $0.shape) }
    }

    private func checkGradients(of layer: Layer) throws {
        guard checksFinite else { return }
        for p in layer.parameters where p.grad.firstNonFinite != nil {
            throw NeuralError.nonFinite(layer: layer.name, what: "gradient of '\(p.key)'")
        }
    }
}
