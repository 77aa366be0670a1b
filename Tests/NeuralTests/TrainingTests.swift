import NICBasics
import XCTest
@testable import Neural

final class TrainingTests: XCTestCase {
    /// Two Gaussian blobs of 8×8×1 "images" (bright centre vs bright border) plus noise.
    func dataset(_ n: Int, seed: UInt64) -> (Tensor, [Float]) {
        var rng = Xoshiro256StarStar(seed: seed)
        var x = [Float](), y = [Float]()
        for i in 0..<n {
            let label = Float(i % 2)
            for r in 0..<8 {
                for c in 0..<8 {
                    let centre = (2..<6).contains(r) && (2..<6).contains(c)
                    x.append((centre == (label == 1) ? 1 : -1) * 0.5 + rng.nextNormal() * 0.5)
                }
            }
            y.append(label)
        }
        return (Tensor(shape: [n, 8, 8, 1], data: x), y)
    }

    static let yaml = """
    input: [8, 8, 1]
    layers:
      - conv: {filters: 4, kernel: 3, stride: 1, padding: same}
      - leaky_relu: 0.2
      - batchnorm: {}
      - max_pool: 2
      - conv: {filters: 8, kernel: 3, stride: 2, padding: valid}
      - relu
      - flatten
      - dropout: 0.1
      - dense: 1
    """

    func train(seed: UInt64, steps: Int) throws -> (Network, [Double]) {
        let net = try Architecture.parse(yaml: Self.yaml, file: "tiny.yaml").build(seed: seed)
        let (x, y) = dataset(128, seed: 1)
        let opt = Adam(learningRate: 1e-2)
        var rng = Xoshiro256StarStar(seed: seed)
        var losses: [Double] = []
        for _ in 0..<steps {
            let batch = Array(rng.permutation(128).prefix(32))
            net.zeroGrad()
            let out = try net.forward(x.gather(batch), training: true)
            let loss = try Loss.binaryCrossEntropy(logits: out, targets: batch.map { y[$0] })
            try net.backward(loss.gradient)
            clipGradients(net.parameters, maxNorm: 5)
            opt.step(net.parameters)
            losses.append(loss.value)
        }
        return (net, losses)
    }

    func testSmallNetworkLearnsAndSameSeedGivesSameWeights() throws {
        let (net, losses) = try train(seed: 7, steps: 60)
        XCTAssertGreaterThan(losses[0], 0.5)
        // Held-out accuracy after 60 steps; chance is 0.5.
        let (xt, yt) = dataset(64, seed: 2)
        let logits = try net.forward(xt, training: false)
        let correct = (0..<64).filter { (logits.data[$0] > 0) == (yt[$0] == 1) }.count
        XCTAssertGreaterThanOrEqual(correct, 60, "held-out accuracy \(correct)/64")
        let test = try Loss.binaryCrossEntropy(logits: logits, targets: yt)
        XCTAssertLessThan(test.value, 0.15)

        let (again, _) = try train(seed: 7, steps: 60)
        for (p, q) in zip(net.parameters + net.buffers, again.parameters + again.buffers) { XCTAssertEqual(p.value, q.value, p.key) }
        let (other, _) = try train(seed: 8, steps: 1)
        XCTAssertNotEqual(other.parameters[0].value, net.parameters[0].value)
    }

    func testSameSeedSameInitialWeights() throws {
        let a = try Architecture.parse(yaml: Self.yaml, file: "t.yaml").build(seed: 3)
        let b = try Architecture.parse(yaml: Self.yaml, file: "t.yaml").build(seed: 3)
        let c = try Architecture.parse(yaml: Self.yaml, file: "t.yaml").build(seed: 4)
        XCTAssertEqual(a.parameters.map(\.value), b.parameters.map(\.value))
        XCTAssertNotEqual(a.parameters[0].value, c.parameters[0].value)
    }

    func testNonFiniteValuesNameTheLayer() throws {
        let net = try Architecture.parse(yaml: "input: [4]\nlayers: [{dense: 3}, tanh, {dense: 1}]", file: "n.yaml").build(seed: 1)
        let x = GradCheck.random([2, 4], seed: 1)
        net.parameters[2].value.data[0] = .infinity  // layers.2.weight
        XCTAssertThrowsError(try net.forward(x, training: true)) { error in
            XCTAssertEqual(error as? NeuralError, .nonFinite(layer: "layers.2", what: "output"))
        }
        net.parameters[2].value.data[0] = 1
        _ = try net.forward(x, training: true)
        XCTAssertThrowsError(try net.backward(Tensor(shape: [2, 1], data: [.nan, 0]))) { error in
            XCTAssertEqual(error as? NeuralError, .nonFinite(layer: "layers.2", what: "gradient of 'layers.2.weight'"))
            XCTAssertTrue("\(error)".contains("layer 'layers.2'"))
        }
        // A gradient that only a parameter-free layer turns non-finite is caught at the input gradient.
        let tanhOnly = try Architecture.parse(yaml: "input: [2]\nlayers: [tanh]", file: "t.yaml").build(seed: 1)
        _ = try tanhOnly.forward(Tensor(shape: [1, 2], data: [0, 1]), training: true)
        XCTAssertThrowsError(try tanhOnly.backward(Tensor(shape: [1, 2], data: [.infinity, 0]))) { error in
            XCTAssertEqual(error as? NeuralError, .nonFinite(layer: "t input 'input'", what: "gradient"))
        }
        XCTAssertThrowsError(try Loss.meanSquaredError(Tensor(shape: [1], data: [.nan]), [1])) { error in
            XCTAssertEqual(error as? NeuralError, .nonFinite(layer: "loss 'mse'", what: "value"))
        }
    }

    func testOptimisersAndSchedules() throws {
        // Minimise (w − 3)² with each optimiser; L2 pulls the optimum to 3/(1 + l2/2)... checked loosely.
        for make in [{ Adam(learningRate: 0.1) as Optimizer }, { SGD(learningRate: 0.05, momentum: 0.9) }, { SGD(learningRate: 0.05, momentum: 0.9, nesterov: true) }] {
            let p = Parameter(key: "w", value: Tensor(zeros: [1]))
            let opt = make()
            for _ in 0..<300 {
                p.grad = Tensor(shape: [1], data: [2 * (p.value.data[0] - 3)])
                opt.step([p])
            }
            XCTAssertEqual(p.value.data[0], 3, accuracy: 1e-2)
        }
        // L2 weight decay: gradient 2(w − 3) + λw → w* = 6/(2 + λ)
        let p = Parameter(key: "w", value: Tensor(zeros: [1]), l2: 1)
        let sgd = SGD(learningRate: 0.05, momentum: 0)
        for _ in 0..<500 { p.grad = Tensor(shape: [1], data: [2 * (p.value.data[0] - 3)]); sgd.step([p]) }
        XCTAssertEqual(p.value.data[0], 2, accuracy: 1e-4)
        // First Adam step moves every weight by lr (bias-corrected m/√v = ±1).
        let q = Parameter(key: "q", value: Tensor(shape: [2], data: [0, 0]))
        q.grad = Tensor(shape: [2], data: [0.001, -50])
        Adam(learningRate: 0.01, epsilon: 0).step([q])
        XCTAssertEqual(q.value.data[0], -0.01, accuracy: 1e-8)
        XCTAssertEqual(q.value.data[1], 0.01, accuracy: 1e-8)

        var plateau = ReduceOnPlateau(factor: 0.1, patience: 1, minLearningRate: 1e-5)
        let adam = Adam(learningRate: 1e-2)
        for loss in [1.0, 0.9, 0.95, 0.95] { plateau.update(loss, optimizer: adam) }
        XCTAssertEqual(adam.learningRate, 1e-3, accuracy: 1e-9)
        for _ in 0..<20 { plateau.update(2, optimizer: adam) }
        XCTAssertEqual(adam.learningRate, 1e-5, accuracy: 1e-12)

        let g = [Parameter(key: "a", value: Tensor(zeros: [2])), Parameter(key: "b", value: Tensor(zeros: [1]))]
        g[0].grad = Tensor(shape: [2], data: [3, 0]); g[1].grad = Tensor(shape: [1], data: [4])
        XCTAssertEqual(clipGradients(g, maxNorm: 1), 5)
        XCTAssertEqual(g[0].grad.data[0], 0.6, accuracy: 1e-6)
        XCTAssertEqual(g[1].grad.data[0], 0.8, accuracy: 1e-6)
    }

    func testParameterOnlyBackwardGivesTheSameGradients() throws {
        for yaml in [Self.yaml, "input: [9, 9, 4]\nlayers: [{separable_conv: {filters: 3, kernel: 3, stride: 2}}, tanh, flatten, {dense: 2}]"] {
            let net = try Architecture.parse(yaml: yaml, file: "p.yaml").build(seed: 5)
            for case let d as Dropout in net.layers { d.enabled = false }
            let x = GradCheck.random([4] + net.inputs[0].shape, seed: 6)
            let dy = GradCheck.random([4] + net.outputShape, seed: 7)
            net.zeroGrad()
            _ = try net.forward(x, training: true)
            let full = try net.backward(dy)
            let reference = net.parameters.map(\.grad)
            net.zeroGrad()
            _ = try net.forward(x, training: true)
            XCTAssertEqual(try net.backward(dy, inputGradients: false).count, 0)
            XCTAssertEqual(full.count, 1)
            for (p, r) in zip(net.parameters, reference) { XCTAssertLessThanOrEqual(p.grad.maxAbsDifference(r), 1e-6, p.key) }
        }
    }

    func testSeededShuffling() {
        var a = Xoshiro256StarStar(seed: 11), b = Xoshiro256StarStar(seed: 11)
        XCTAssertEqual(a.permutation(50), b.permutation(50))
        XCTAssertEqual(Set(a.permutation(50)), Set(0..<50))
        var c = Xoshiro256StarStar(seed: 12)
        XCTAssertNotEqual(c.permutation(50), b.permutation(50))
    }
}

final class InferenceFusionTests: XCTestCase {
    /// Inference folds LeakyReLU and BatchNorm into the convolution's bias pass; it must equal the
    /// layers run one by one, in both orders (encoder: conv → leaky → BN; patient: sepconv → BN → leaky).
    func testFusedInferenceEqualsLayerByLayer() throws {
        let yamls = [
            "input: [9, 9, 3]\nlayers: [{conv: {filters: 4, kernel: 3, stride: 2}}, {leaky_relu: 0.2}, {batchnorm: {}}, {conv: {filters: 2, kernel: 1}}, {batchnorm: {}}, flatten, {dense: 2}]",
            "input: [9, 9, 3]\nlayers: [{separable_conv: {filters: 4, kernel: 3, stride: 2}}, {batchnorm: {}}, {leaky_relu: 0.1}, {depthwise_conv: {kernel: 3}}, relu, global_avg_pool]",
        ]
        for yaml in yamls {
            let net = try Architecture.parse(yaml: yaml, file: "f.yaml").build(seed: 3)
            _ = try net.forward(GradCheck.random([5, 9, 9, 3], seed: 1, scale: 2), training: true)  // BN statistics ≠ (0, 1)
            for p in net.parameters where p.key.hasSuffix("bias") { p.value = GradCheck.random(p.value.shape, seed: 2) }
            let x = GradCheck.random([3, 9, 9, 3], seed: 4)
            var y = x
            for layer in net.layers { y = try layer.forward(y, training: false) }
            net.compute = ComputeContext(threads: 1)
            let fused = try net.forward(x, training: false)
            XCTAssertLessThanOrEqual(fused.maxAbsDifference(y), 1e-5, yaml)
            XCTAssertGreaterThan(y.data.map(abs).max()!, 0.01)
        }
    }
}

final class TrainingFusionTests: XCTestCase {
    static let encoderLike = """
    input: [11, 11, 3]
    layers:
      - conv: {filters: 6, kernel: 3, stride: 2}
      - leaky_relu: 0.2
      - batchnorm: {momentum: 0.1}
      - conv: {filters: 5, kernel: 3, stride: 1, padding: same, groups: 1}
      - leaky_relu: 0.1
      - batchnorm: {}
      - flatten
      - dense: 3
    """

    /// Training runs LeakyReLU → BatchNorm as one layer (the activation's output is never stored): the
    /// output, every gradient and the running statistics must equal the layers run one by one.
    func testFusedLeakyBatchNormEqualsLayerByLayer() throws {
        let x = GradCheck.random([6, 11, 11, 3], seed: 1, scale: 2)
        let dy = GradCheck.random([6, 3], seed: 2)
        var results: [(y: Tensor, dx: Tensor, grads: [Tensor], buffers: [Tensor])] = []
        for fused in [true, false] {
            let net = try Architecture.parse(yaml: Self.encoderLike, file: "e.yaml").build(seed: 3)
            net.fusesTraining = fused
            for p in net.parameters where p.key.hasSuffix("bias") { p.value = GradCheck.random(p.value.shape, seed: 4) }
            net.zeroGrad()
            let y = try net.forward(x, training: true)
            let dx = try net.backward(dy)[0]
            results.append((y, dx, net.parameters.map(\.grad), net.buffers.map(\.value)))
        }
        let (a, b) = (results[0], results[1])
        XCTAssertLessThanOrEqual(a.y.maxAbsDifference(b.y), 1e-5)
        XCTAssertLessThanOrEqual(a.dx.maxAbsDifference(b.dx), 1e-5)
        XCTAssertGreaterThan(b.dx.data.map(abs).max()!, 1e-3)
        for (g, h) in zip(a.grads, b.grads) { XCTAssertLessThanOrEqual(g.maxAbsDifference(h), 1e-5 * max(1, h.data.map(abs).max()!)) }
        for (g, h) in zip(a.buffers, b.buffers) { XCTAssertLessThanOrEqual(g.maxAbsDifference(h), 1e-5) }
    }

    /// Fusion rewrites the layer list at build time; what optimisers and safetensors see stays the same.
    func testFusionRewritesLayersAndKeepsParameters() throws {
        let net = try Architecture.parse(yaml: Self.encoderLike, file: "e.yaml").build(seed: 3)
        let training = Fusion.training(net.layers), inference = Fusion.inference(net.layers)
        XCTAssertEqual(training.map { "\(type(of: $0))" }, ["Conv2D", "LeakyBatchNorm", "Conv2D", "LeakyBatchNorm", "Flatten", "Dense"])
        XCTAssertEqual(inference.map { "\(type(of: $0))" }, ["ConvWithEpilogue", "ConvWithEpilogue", "Flatten", "Dense"])
        XCTAssertEqual(net.layers.count, 8)
        for steps in [training, inference] {
            XCTAssertEqual(steps.flatMap(\.parameters).map(\.key), net.parameters.map(\.key))
            XCTAssertEqual(steps.flatMap(\.buffers).map(\.key), net.buffers.map(\.key))
        }
        var shape = net.inputs[0].shape
        for layer in inference { shape = try layer.outputShape(shape) }
        XCTAssertEqual(shape, net.outputShape)
    }

    /// The fused backward against finite differences (leaky kinks kept away from ±h by the input scale).
    func testFusedLeakyBatchNormGradients() throws {
        let net = try Architecture.parse(yaml: "input: [5, 5, 2]\nlayers: [{conv: {filters: 3, kernel: 3}}, {leaky_relu: 0.2}, {batchnorm: {}}, flatten, {dense: 2}]",
                                         file: "f.yaml").build(seed: 5)
        try GradCheck.check(net, inputs: [GradCheck.random([4, 5, 5, 2], seed: 6)], h: 1e-3, tol: 2e-2)
    }

    /// With several workers a convolution splits the batch into fixed shares, each with its own
    /// single-threaded GEMMs and weight-gradient buffer; results must equal one share on one thread.
    func testConvolutionWorkerSharesEqualOneThread() throws {
        let three = ComputeContext(threads: 3), one = ComputeContext(threads: 1)
        for (cin, f, k, s, pad, groups) in [(3, 8, 3, 2, Padding.valid, 1), (4, 6, 3, 1, .same, 2), (2, 5, 2, 2, .same, 1)] {
            var rng = Xoshiro256StarStar(seed: 7)
            let conv = try Conv2D(name: "c", inChannels: cin, filters: f, kernel: (k, k), stride: s, padding: pad, groups: groups, rng: &rng)
            let x = GradCheck.random([7, 9, 8, cin], seed: 8)
            let outShape = try conv.outputShape([9, 8, cin])
            let dy = GradCheck.random([7] + outShape, seed: 9)
            func run() throws -> (Tensor, Tensor, Tensor, Tensor) {
                conv.parameters.forEach { $0.zeroGrad() }
                let y = try conv.forward(x, training: true)
                let dx = try conv.backward(dy)
                return (y, dx, conv.weight.grad, conv.bias!.grad)
            }
            let shared = try three.run { try run() }
            let serial = try one.run { try run() }
            let what = "groups \(groups) stride \(s) \(pad)"
            XCTAssertLessThanOrEqual(shared.0.maxAbsDifference(serial.0), 1e-5, what)
            XCTAssertLessThanOrEqual(shared.1.maxAbsDifference(serial.1), 1e-5, what)
            XCTAssertLessThanOrEqual(shared.2.maxAbsDifference(serial.2), 1e-4, what)
            XCTAssertLessThanOrEqual(shared.3.maxAbsDifference(serial.3), 1e-4, what)
            XCTAssertGreaterThan(serial.1.data.map(abs).max()!, 1e-3, what)
        }
    }
}
