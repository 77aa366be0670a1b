import NICBasics
import Flow
import Foundation
import Neural
import Slides

/// Unsupervised encoder training as a variational autoencoder (NIC's VAE): the encoder outputs
/// [μ, log σ²], a reparameterised sample goes through the decoder, and the loss is the pixel MSE of
/// the reconstruction plus γ·KL(q(z|x) ‖ N(0, I)). The code used for compression is μ.
enum VAETraining {
    static func run(_ context: NodeContext, _ params: EncoderNode.Params, patchSet: PatchSet, encoder: Network, info startInfo: EncoderModel.Info,
                    out: URL, seed: UInt64, started: Stopwatch) throws {
        var info = startInfo
        let statsWidth = encoder.outputShape.reduce(1, *)
        guard encoder.outputShape.count == 1, statsWidth % 2 == 0 else {
            throw NodeError("training 'vae': the encoder must end in a dense layer of 2·D outputs (μ then log σ²), it gives \(encoder.outputShape)")
        }
        let codeSize = statsWidth / 2
        guard let decoderReference = params.decoder else { throw NodeError("training 'vae' needs param 'decoder' (e.g. nodes/vae/decoder.yaml)") }
        let decoder = try Architecture(decoderReference).build(seed: seed &+ 17, inputShapes: [[codeSize]], prefix: "decoder")
        guard decoder.outputShape == info.input else {
            throw NodeError("training 'vae': the decoder gives \(decoder.outputShape), the encoder takes \(info.input)")
        }
        let sampler = SampleGaussian(name: "sample", rng: Xoshiro256StarStar(seed: seed &+ 29))
        let klWeight = Float(params.klWeight)
        let inputs = try EncoderInputs(patchSet: patchSet, downsample: info.downsample, params: params, context: context, started: started)
        let (train, validation) = EncoderNode.holdOut(patchSet.count, fraction: params.validation, seed: seed ^ 0x5EED)
        let optimizer = Adam(learningRate: Float(params.learningRate), weightDecay: Float(params.weightDecay))

        func losses(_ x: Tensor, training: Bool) throws -> (recon: LossResult, kl: LossResult, stats: Tensor) {
            let stats = try encoder.forward(x, training: training).reshaped([x.batch, statsWidth])
            let z = try sampler.forward(stats, training: training)
            let reconstruction = try decoder.forward(z, training: training)
            let recon = try Loss.meanSquaredError(reconstruction, x.data)
            let kl = try Loss.gaussianKL(stats, weight: klWeight)
            return (recon, kl, stats)
        }

        let trainer = Trainer.encoder(schedule: params.schedule, update: .optimizer(optimizer, parameters: encoder.parameters + decoder.parameters), context: context)
        let outcome = try trainer.fit(
            order: inputs.order(train),
            prefetch: { epoch, batches in inputs.prefetch(epoch: epoch, batches: batches) },
            step: { batch, _ in try inputs.step(batch) { x in
                let (recon, kl, stats) = try losses(x, training: true)
                let dz = try decoder.backward(recon.gradient)[0]
                let dStats = try sampler.backward(dz)
                let combined = Tensor(shape: stats.shape, data: zip(dStats.data, kl.gradient.data).map { $0 + $1 })
                try encoder.backward(combined.reshaped([batch.count] + encoder.outputShape))
                return StepResult(loss: recon.value + kl.value)
            } },
            validate: { _ in
                var valRecon = 0.0, valKL = 0.0, batches = 0
                return try inputs.validate(validation.isEmpty ? train : validation, { _, x in
                    try context.checkCancellation()
                    let (recon, kl, _) = try losses(x, training: false)
                    valRecon += recon.value
                    valKL += kl.value
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
                                     definitions: [(try decoderReference.keyedText(), "decoder.yaml")], to: out)
    }
}
