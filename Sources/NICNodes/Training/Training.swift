import NICBasics
import Foundation
import Flow
import Neural

/// One way to train the encoder the node built: the params only it reads (a `@ParamGroup` of the
/// node's), the networks it trains beside the encoder, its forward and backward steps, and what it
/// leaves in the model folder.
protocol EncoderTrainingMode {
    associatedtype Params: NodeParams
    /// Builds the mode's own networks (each at its named seed) and checks they fit the encoder.
    init(_ setup: EncoderTrainingSetup, _ params: Params) throws
    /// Trains and writes the model folder.
    func train() throws
}

/// What every training mode starts from: the node's shared params, its PatchSet, the encoder built
/// at the node's seed, the model info so far and the output folder.
struct EncoderTrainingSetup {
    let context: NodeContext
    let params: EncoderNode.Params
    let patchSet: PatchSet
    let encoder: Network
    let info: EncoderModel.Info
    let out: URL
    let seed: UInt64
    let started: Stopwatch

    /// The streamed, augmented network inputs of this training.
    func inputs() throws -> EncoderInputs {
        try EncoderInputs(patchSet: patchSet, downsample: info.downsample, params: params, context: context, started: started)
    }
}

extension Trainer {
    /// A trainer that reports to and stops with the node running it.
    init(schedule: TrainingSchedule, update: ParameterUpdate, context: NodeContext) {
        self.init(schedule: schedule, update: update)
        progress = { p in
            context.progress((p.epoch - 1) * p.steps + p.step, of: p.epochs * p.steps, unit: "steps",
                             stage: "epoch \(p.epoch)/\(p.epochs)", metrics: p.metrics)
        }
        checkCancellation = { try context.checkCancellation() }
    }

    /// An encoder's trainer: as above, and a divergence after a finite epoch keeps the best epoch
    /// (the node warns and records it) rather than losing the whole training.
    static func encoder(schedule: TrainingSchedule, update: ParameterUpdate, context: NodeContext) -> Trainer {
        var trainer = Trainer(schedule: schedule, update: update, context: context)
        trainer.keepBestOnDivergence = true
        return trainer
    }
}

extension EncoderNode.Params {
    /// Epochs, batches and the validation-loss plateau every encoder training shares.
    var schedule: TrainingSchedule {
        TrainingSchedule(epochs: epochs, batchSize: batchSize,
                         plateau: ReduceOnPlateau(factor: 0.1, patience: patience, minLearningRate: Float(minLearningRate)),
                         earlyStopping: earlyStopping > 0 ? earlyStopping : nil)
    }
}

extension TrainingOutcome {
    func writeCurves(to url: URL) throws {
        let table = curves
        try CSVTable(columns: table.columns, rows: table.rows).write(to: url)
    }
}

extension EncoderNode {
    /// A seeded draw of `fraction` of the patches for validation (unsupervised training has no
    /// slide-level labels to keep apart); the rest, in the drawn order, train.
    static func holdOut(_ count: Int, fraction: Double, seed: UInt64) -> (train: [Int], validation: [Int]) {
        var rng = Xoshiro256StarStar(seed: seed)
        let order = rng.permutation(count)
        let held = Int(Double(count) * fraction)
        return (Array(order.dropFirst(held)), Array(order.prefix(held)))
    }

    /// What every trained encoder leaves in its model folder: the best epoch's weights (file name →
    /// state), copies of the definitions it was built from, curves.csv and model.json.
    static func writeTrained<Snapshot>(_ outcome: TrainingOutcome<Snapshot>, info: EncoderModel.Info, time: TrainingTime, context: NodeContext,
                                       weights: (Snapshot) -> [(String, [(String, Safetensors.Value)])],
                                       definitions: [(text: String, name: String)], to out: URL) throws {
        var info = info
        info.time = time
        report(time, lastEpoch: outcome.epochs.last, context: context)
        info.epochs = outcome.epochs.count
        info.maxEpochs = outcome.scheduledEpochs
        info.stoppedEarly = outcome.stoppedEarly
        info.diverged = outcome.divergence
        if let divergence = outcome.divergence { context.warn(divergence) }
        info.bestEpoch = outcome.best?.epoch
        if let best = outcome.best?.snapshot {
            for (file, state) in weights(best) { try writeWeights(state, to: out.appendingPathComponent(file)) }
        }
        for (text, name) in definitions {
            let target = out.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: target)
        }
        try outcome.writeCurves(to: out.appendingPathComponent("curves.csv"))
        try writeInfo(info, to: out)
    }

    /// The time split as the node's last progress, whose metrics the run record keeps (beside the
    /// last epoch's losses, which the trainer's last progress showed).
    static func report(_ time: TrainingTime, lastEpoch: EpochRecord?, context: NodeContext) {
        var metrics = time.metrics
        if let lastEpoch {
            metrics["loss"] = lastEpoch.trainLoss
            if let validation = lastEpoch.validation {
                metrics["val_loss"] = validation.loss
                for (name, value) in validation.metrics { metrics["val_" + name] = value }
            }
        }
        func seconds(_ value: Double) -> String { String(format: "%.1f s", value) }
        let message = "\(seconds(time.total)): first step \(seconds(time.firstStep)), training \(seconds(time.training)), "
            + "waiting for data \(seconds(time.waitingForData)), validation \(seconds(time.validation)) (bottleneck: \(time.bottleneck))"
        context.progress(1, of: 1, unit: "trainings", message: message,
                         stage: "finished", metrics: metrics)
    }
}
