import NICBasics
import Flow
import Foundation
import Neural
import Slides

/// Unsupervised encoder training as a BiGAN (NIC's best unsupervised encoder): a generator G maps
/// z ~ N(0, I) to patches, the encoder E maps patches to codes, and a discriminator D tells real
/// pairs (x, E(x)) from generated pairs (G(z), z). D and (G, E) are updated in turn with binary
/// cross-entropy, (G, E) with the labels swapped. Adam lr 2e-4 (β₁ 0.5) by default, as the paper.
enum BiGANTraining {
    static func run(_ context: NodeContext, _ params: EncoderNode.Params, patchSet: PatchSet, encoder: Network, info startInfo: EncoderModel.Info,
                    out: URL, seed: UInt64, started: Stopwatch) throws {
        var info = startInfo
        let codeSize = encoder.outputShape.reduce(1, *)
        guard let generatorReference = params.generator, let discriminatorReference = params.discriminator else {
            throw NodeError("training 'bigan' needs params 'generator' and 'discriminator' (nodes/bigan/*.yaml)")
        }
        let generator = try Architecture(generatorReference).build(seed: seed &+ 41, inputShapes: [[codeSize]], prefix: "generator")
        let discriminator = try Architecture(discriminatorReference).build(seed: seed &+ 43, inputShapes: [info.input, [codeSize]], prefix: "discriminator")
        guard generator.outputShape == info.input else {
            throw NodeError("training 'bigan': the generator gives \(generator.outputShape), the encoder takes \(info.input)")
        }
        let inputs = try EncoderInputs(patchSet: patchSet, downsample: info.downsample, params: params, context: context, started: started)
        let learningRate = Float(params.learningRate)
        let dOptimizer = Adam(learningRate: learningRate, beta1: 0.5)
        let geOptimizer = Adam(learningRate: learningRate, beta1: 0.5)
        let geParameters = generator.parameters + encoder.parameters
        let smoothing = Float(params.labelSmoothing), generatorSteps = params.generatorSteps
        var noise = Xoshiro256StarStar(seed: seed &+ 47)

        // D and (G, E) each take their own step inside one training step, so the step applies them.
        var schedule = params.schedule
        schedule.plateau = nil  // adversarial losses do not measure progress
        // Not `Trainer.encoder`: the BiGAN keeps its last epoch, so a divergence has nothing to fall back on.
        let trainer = Trainer(schedule: schedule, update: .byStep([dOptimizer, geOptimizer]), context: context)
        let outcome = try trainer.fit(
            order: inputs.order(Array(0..<patchSet.count)),
            prefetch: { epoch, batches in inputs.prefetch(epoch: epoch, batches: batches) },
            step: { batch, _ in try inputs.step(batch) { x in
                let n = batch.count
                let z = Tensor(shape: [n, codeSize], data: (0..<(n * codeSize)).map { _ in noise.nextNormal() })

                // Discriminator step on (x, E(x)) → real and (G(z), z) → fake.
                for p in discriminator.parameters + geParameters { p.zeroGrad() }
                var code = try encoder.forward(x, training: true).reshaped([n, codeSize])
                var fake = try generator.forward(z, training: true)
                let realLogits = try discriminator.forward([x, code], training: true)
                // One-sided label smoothing: D aims at 1 − ε for real pairs, so it cannot grow certain
                // (and its gradients vanish for G and E) early in training.
                let realLoss = try Loss.binaryCrossEntropy(logits: realLogits, targets: [Float](repeating: 1 - smoothing, count: n))
                _ = try discriminator.backward(realLoss.gradient)
                let fakeLogits = try discriminator.forward([fake, z], training: true)
                let fakeLoss = try Loss.binaryCrossEntropy(logits: fakeLogits, targets: [Float](repeating: 0, count: n))
                _ = try discriminator.backward(fakeLoss.gradient)
                dOptimizer.step(discriminator.parameters)

                // Generator and encoder steps: fool D (labels swapped); D's gradients are discarded.
                // `generator_steps` > 1 gives (G, E) several updates per D update, for a D that wins early.
                var geLoss = 0.0
                for geStep in 0..<generatorSteps {
                    if geStep > 0 {
                        code = try encoder.forward(x, training: true).reshaped([n, codeSize])
                        fake = try generator.forward(z, training: true)
                    }
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
                    geLoss = geReal.value + geFake.value  // the last update's, as with one step
                }
                let dLoss = realLoss.value + fakeLoss.value
                // How often D is right on each side: both near 1 means D has won and G, E stall.
                let realRight = Double(realLogits.data.filter { $0 > 0 }.count) / Double(n)
                let fakeRight = Double(fakeLogits.data.filter { $0 < 0 }.count) / Double(n)
                return StepResult(loss: dLoss + geLoss, metrics: [("d_loss", dLoss), ("ge_loss", geLoss),
                                                                  ("d_real_accuracy", realRight), ("d_fake_accuracy", fakeRight)])
            } },
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
        for reference in [generatorReference, discriminatorReference] { try reference.write(to: out.appendingPathComponent(reference.url.lastPathComponent)) }
        try outcome.writeCurves(to: out.appendingPathComponent("curves.csv"))
        try EncoderNode.writeInfo(info, to: out)
    }
}
