import NICBasics
import Flow
import Foundation
import Neural
import Slides

/// Unsupervised encoder training as a BiGAN (NIC's best unsupervised encoder): a generator G maps
/// z ~ N(0, I) to patches, the encoder E maps patches to codes, and a discriminator D tells real
/// pairs (x, E(x)) from generated pairs (G(z), z). D and (G, E) are updated in turn with binary
/// cross-entropy, (G, E) with the labels swapped. Adam lr 2e-4 (β₁ 0.5) by default, as the paper.
final class BiGANTraining: EncoderTrainingMode {
    struct Params: NodeParams {
        @Param(doc: "the generator", schema: Architecture.self) var generator: Reference? = Reference("nodes/bigan/generator.yaml")
        @Param(doc: "the discriminator", schema: Architecture.self) var discriminator: Reference? = Reference("nodes/bigan/discriminator.yaml")
        @Param(doc: "one-sided label smoothing ε (the discriminator aims at 1 − ε for real pairs)", .within(0, 0.5))
        var labelSmoothing = 0.1
        @Param(doc: "generator and encoder updates per discriminator update (the D/G ratio; 2 or more slows a discriminator that wins early)", .within(1, 10))
        var generatorSteps = 1
        init() {}
    }

    /// Why the BiGAN ignores some of the node's shared params (`nic validate` refuses them with it).
    enum Ignored {
        static let weightDecay = "its Adam optimisers (β₁ 0.5, as the paper's) take no weight decay"
        static let plateau = "it has no learning-rate plateau (adversarial losses do not measure progress)"
        static let validation = "it holds no patches out (adversarial losses do not rank epochs; the last one is kept)"
        static let earlyStopping = "it trains every epoch and keeps the last (adversarial losses do not rank epochs)"
    }

    let setup: EncoderTrainingSetup
    let references: [Reference]
    let encoder: Network
    let generator: Network
    let discriminator: Network
    let codeSize: Int
    let smoothing: Float
    let generatorSteps: Int
    let dOptimizer: Adam
    let geOptimizer: Adam
    /// The generator's z, drawn batch after batch.
    var noise: Xoshiro256StarStar

    init(_ setup: EncoderTrainingSetup, _ params: Params) throws {
        self.setup = setup
        encoder = setup.encoder
        codeSize = encoder.outputShape.reduce(1, *)
        guard let generatorReference = params.generator, let discriminatorReference = params.discriminator else {
            throw NodeError("training 'bigan' needs params 'generator' and 'discriminator' (nodes/bigan/*.yaml)")
        }
        references = [generatorReference, discriminatorReference]
        generator = try Architecture(generatorReference).build(seed: SeedStream(setup.seed).derive(.biganGenerator), inputShapes: [[codeSize]], prefix: "generator")
        discriminator = try Architecture(discriminatorReference).build(seed: SeedStream(setup.seed).derive(.biganDiscriminator), inputShapes: [setup.info.input, [codeSize]], prefix: "discriminator")
        guard generator.outputShape == setup.info.input else {
            throw NodeError("training 'bigan': the generator gives \(generator.outputShape), the encoder takes \(setup.info.input)")
        }
        let learningRate = Float(setup.params.learningRate)
        dOptimizer = Adam(learningRate: learningRate, beta1: 0.5)
        geOptimizer = Adam(learningRate: learningRate, beta1: 0.5)
        smoothing = Float(params.labelSmoothing)
        generatorSteps = params.generatorSteps
        noise = Xoshiro256StarStar(seed: SeedStream(setup.seed).derive(.biganNoise))
    }

    var geParameters: [Parameter] { generator.parameters + encoder.parameters }

    /// What the discriminator's step saw, for the (G, E) steps and the curves.
    struct DiscriminatorStep {
        var code: Tensor
        var fake: Tensor
        var realLogits: Tensor
        var fakeLogits: Tensor
        var loss: Double
    }

    /// Discriminator step on (x, E(x)) → real and (G(z), z) → fake; updates D only.
    func discriminatorStep(_ x: Tensor, _ z: Tensor) throws -> DiscriminatorStep {
        let n = x.batch
        for p in discriminator.parameters + geParameters { p.zeroGrad() }
        let code = try encoder.forward(x, training: true).reshaped([n, codeSize])
        let fake = try generator.forward(z, training: true)
        let realLogits = try discriminator.forward([x, code], training: true)
        // One-sided label smoothing: D aims at 1 − ε for real pairs, so it cannot grow certain
        // (and its gradients vanish for G and E) early in training.
        let realLoss = try Loss.binaryCrossEntropy(logits: realLogits, targets: [Float](repeating: 1 - smoothing, count: n))
        _ = try discriminator.backward(realLoss.gradient)
        let fakeLogits = try discriminator.forward([fake, z], training: true)
        let fakeLoss = try Loss.binaryCrossEntropy(logits: fakeLogits, targets: [Float](repeating: 0, count: n))
        _ = try discriminator.backward(fakeLoss.gradient)
        dOptimizer.step(discriminator.parameters)
        return DiscriminatorStep(code: code, fake: fake, realLogits: realLogits, fakeLogits: fakeLogits, loss: realLoss.value + fakeLoss.value)
    }

    /// Generator and encoder step: fool D (labels swapped), D's gradients discarded; updates G and E.
    /// `code` and `fake` are this step's E(x) and G(z), whose forward state the networks still hold.
    func generatorEncoderStep(_ x: Tensor, _ z: Tensor, code: Tensor, fake: Tensor) throws -> Double {
        let n = x.batch
        for p in discriminator.parameters + geParameters { p.zeroGrad() }
        let realAgain = try discriminator.forward([x, code], training: true)
        let geReal = try Loss.binaryCrossEntropy(logits: realAgain, targets: [Float](repeating: 0, count: n))
        let dCode = try discriminator.backward(geReal.gradient)[1]
        let fakeAgain = try discriminator.forward([fake, z], training: true)
        let geFake = try Loss.binaryCrossEntropy(logits: fakeAgain, targets: [Float](repeating: 1, count: n))
        let dFake = try discriminator.backward(geFake.gradient)[0]
        try encoder.backward(dCode.reshaped([n] + encoder.outputShape))
        // The encoder's forward state was overwritten by no one; the generator's is from this step.
        try generator.backward(dFake)
        geOptimizer.step(geParameters)
        return geReal.value + geFake.value
    }

    /// One training step: a D update, then `generator_steps` (G, E) updates on the same x and z.
    func step(_ x: Tensor) throws -> StepResult {
        let n = x.batch
        let z = Tensor(shape: [n, codeSize], data: (0..<(n * codeSize)).map { _ in noise.nextNormal() })
        let d = try discriminatorStep(x, z)
        // `generator_steps` > 1 gives (G, E) several updates per D update, for a D that wins early.
        var geLoss = 0.0
        for geStep in 0..<generatorSteps {
            let again = geStep > 0
            let code = try again ? encoder.forward(x, training: true).reshaped([n, codeSize]) : d.code
            let fake = try again ? generator.forward(z, training: true) : d.fake
            geLoss = try generatorEncoderStep(x, z, code: code, fake: fake)  // the last update's, as with one step
        }
        // How often D is right on each side: both near 1 means D has won and G, E stall.
        let realRight = Double(d.realLogits.data.filter { $0 > 0 }.count) / Double(n)
        let fakeRight = Double(d.fakeLogits.data.filter { $0 < 0 }.count) / Double(n)
        return StepResult(loss: d.loss + geLoss, metrics: [("d_loss", d.loss), ("ge_loss", geLoss),
                                                           ("d_real_accuracy", realRight), ("d_fake_accuracy", fakeRight)])
    }

    func train() throws {
        let (context, patchSet, out) = (setup.context, setup.patchSet, setup.out)
        var info = setup.info
        let inputs = try setup.inputs()
        // D and (G, E) each take their own step inside one training step, so the step applies them.
        var schedule = setup.params.schedule
        schedule.plateau = nil  // adversarial losses do not measure progress
        schedule.earlyStopping = nil
        // Not `Trainer.encoder`: the BiGAN keeps its last epoch, so a divergence has nothing to fall back on.
        let trainer = Trainer(schedule: schedule, update: .byStep([dOptimizer, geOptimizer]), context: context)
        let outcome = try trainer.fit(
            order: inputs.order(Array(0..<patchSet.count)),
            prefetch: { epoch, batches in inputs.prefetch(epoch: epoch, batches: batches) },
            step: { batch, _ in try inputs.step(batch) { x in try self.step(x) } },
            snapshot: { () })
        info.training = "bigan"
        info.epochs = outcome.epochs.count
        info.bestEpoch = outcome.epochs.count  // adversarial losses do not rank epochs; the last one is kept
        info.trainPatches = patchSet.count
        let time = inputs.time
        info.time = time
        EncoderNode.report(time, lastEpoch: outcome.epochs.last, context: context)
        try encoder.save(to: out.appendingPathComponent("encoder.safetensors"))
        try generator.save(to: out.appendingPathComponent("generator.safetensors"))
        try discriminator.save(to: out.appendingPathComponent("discriminator.safetensors"))
        for reference in references { try reference.write(to: out.appendingPathComponent(reference.url.lastPathComponent)) }
        try outcome.writeCurves(to: out.appendingPathComponent("curves.csv"))
        try EncoderNode.writeInfo(info, to: out)
    }
}
