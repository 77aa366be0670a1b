import NICBasics
import Flow
import Foundation
import Neural
import Slides

/// Unsupervised encoder training as a variational autoencoder (NIC's VAE): the encoder outputs
/// [μ, log σ²], a reparameterised sample goes through the decoder, and the loss is the pixel MSE of
/// the reconstruction plus γ·KL(q(z|x) ‖ N(0, I)). The code used for compression is μ.
struct VAETraining: EncoderTrainingMode {
    struct Params: NodeParams {
        @Param(doc: "the decoder architecture", schema: Architecture.self) var decoder: Reference? = Reference("nodes/vae/decoder.yaml")
        @Param(doc: "weight γ of the KL term", .atLeast(0)) var klWeight = 5e-5
        init() {}
    }

    let setup: EncoderTrainingSetup
    let decoderReference: Reference
    let encoder: Network
    let decoder: Network
    let sampler: SampleGaussian
    /// The encoder's output: μ then log σ², each `codeSize` wide.
    let statsWidth: Int
    let codeSize: Int
    let klWeight: Float

    init(_ setup: EncoderTrainingSetup, _ params: Params) throws {
        self.setup = setup
        encoder = setup.encoder
        statsWidth = encoder.outputShape.reduce(1, *)
        guard encoder.outputShape.count == 1, statsWidth % 2 == 0 else {
            throw NodeError("training 'vae': the encoder must end in a dense layer of 2·D outputs (μ then log σ²), it gives \(encoder.outputShape)")
        }
        codeSize = statsWidth / 2
        guard let decoderReference = params.decoder else { throw NodeError("training 'vae' needs param 'decoder' (e.g. nodes/vae/decoder.yaml)") }
        self.decoderReference = decoderReference
        decoder = try Architecture(decoderReference).build(seed: SeedStream(setup.seed).derive(.vaeDecoder), inputShapes: [[codeSize]], prefix: "decoder")
        guard decoder.outputShape == setup.info.input else {
            throw NodeError("training 'vae': the decoder gives \(decoder.outputShape), the encoder takes \(setup.info.input)")
        }
        sampler = SampleGaussian(name: "sample", rng: Xoshiro256StarStar(seed: SeedStream(setup.seed).derive(.vaeSample)))
        klWeight = Float(params.klWeight)
    }

    /// What the forward pass keeps for the backward one.
    struct Forward {
        var reconstruction: LossResult
        var kl: LossResult
        /// [μ, log σ²] per patch.
        var stats: Tensor
        var loss: Double { reconstruction.value + kl.value }
    }

    /// x → encoder → [μ, log σ²] → z = μ + σ·ε → decoder → x̂; the losses ‖x̂ − x‖² and γ·KL.
    func forward(_ x: Tensor, training: Bool) throws -> Forward {
        let stats = try encoder.forward(x, training: training).reshaped([x.batch, statsWidth])
        let z = try sampler.forward(stats, training: training)
        let reconstruction = try decoder.forward(z, training: training)
        return Forward(reconstruction: try Loss.meanSquaredError(reconstruction, x.data),
                       kl: try Loss.gaussianKL(stats, weight: klWeight), stats: stats)
    }

    /// The reconstruction's gradient back through the decoder and the sample to [μ, log σ²], where
    /// the KL term's own gradient joins it, then through the encoder.
    func backward(_ forward: Forward, batch: Int) throws {
        let dz = try decoder.backward(forward.reconstruction.gradient)[0]
        let dStats = try sampler.backward(dz)
        let combined = Tensor(shape: forward.stats.shape, data: zip(dStats.data, forward.kl.gradient.data).map { $0 + $1 })
        try encoder.backward(combined.reshaped([batch] + encoder.outputShape))
    }

    func train() throws {
        let (context, params, patchSet) = (setup.context, setup.params, setup.patchSet)
        var info = setup.info
        let inputs = try setup.inputs()
        let (train, validation) = EncoderNode.holdOut(patchSet.count, fraction: params.validation, seed: SeedStream(setup.seed).derive(.vaeValidation))
        let optimizer = Adam(learningRate: Float(params.learningRate), weightDecay: Float(params.weightDecay))
        let trainer = Trainer.encoder(schedule: params.schedule, update: .optimizer(optimizer, parameters: encoder.parameters + decoder.parameters), context: context)
        let outcome = try trainer.fit(
            order: inputs.order(train),
            prefetch: { epoch, batches in inputs.prefetch(epoch: epoch, batches: batches) },
            step: { batch, _ in try inputs.step(batch) { x in
                let pass = try forward(x, training: true)
                try backward(pass, batch: batch.count)
                return StepResult(loss: pass.loss)
            } },
            validate: { _ in
                var valRecon = 0.0, valKL = 0.0, batches = 0
                return try inputs.validate(validation.isEmpty ? train : validation, { _, x in
                    try context.checkCancellation()
                    let pass = try forward(x, training: false)
                    valRecon += pass.reconstruction.value
                    valKL += pass.kl.value
                    batches += 1
                }, result: {
                    let n = Double(max(1, batches))
                    return ValidationResult(loss: (valRecon + valKL) / n, metrics: [("reconstruction", valRecon / n), ("kl", valKL / n)])
                })
            },
            snapshot: { (encoder: encoder.stateDict(), decoder: decoder.stateDict()) })
        info.training = "vae"
        info.codeSize = codeSize
        info.codeFrom = codeSize
        info.trainPatches = train.count
        info.validationPatches = validation.count
        try EncoderNode.writeTrained(outcome, info: info, time: inputs.time, context: context, weights: { [("encoder.safetensors", $0.encoder), ("decoder.safetensors", $0.decoder)] },
                                     definitions: [(try decoderReference.keyedText(), "decoder.yaml")], to: setup.out)
    }
}
