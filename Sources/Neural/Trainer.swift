import NICBasics
import Foundation

/// How long and how fast a model trains: epochs, batches, the learning-rate schedule, early stopping.
public struct TrainingSchedule {
    public var epochs: Int
    public var batchSize: Int
    /// Batches smaller than this are skipped (batch norm needs two items); their items wait for the
    /// next epoch's shuffle.
    public var minimumBatch = 2
    /// Lowers the learning rate when the monitored loss stalls; nil keeps it constant. The monitored
    /// loss is the validation loss when there is a validation, the training loss otherwise.
    public var plateau: ReduceOnPlateau?
    /// Stops after this many epochs without improvement of the monitored loss; nil runs every epoch.
    public var earlyStopping: Int?
    /// What the plateau, early stopping and the best epoch watch.
    public var monitor: Monitor

    public init(epochs: Int, batchSize: Int, plateau: ReduceOnPlateau? = nil, earlyStopping: Int? = nil, monitor: Monitor = .total) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.plateau = plateau
        self.earlyStopping = earlyStopping
        self.monitor = monitor
    }

    /// What the plateau, early stopping and the best epoch watch.
    public enum Monitor: Sendable {
        /// The validation loss (the training loss without a validation).
        case total
        /// Each part of the validation loss (`ValidationResult.parts`, e.g. one per task) on its own. An
        /// epoch counts as progress when any part reaches its lowest value so far, so a transient spike in
        /// one part (one task's loss) can neither stop training nor lower the learning rate while the others
        /// still improve. The best epoch is the one with the lowest mean of the parts, each divided by its
        /// value after the first epoch, so tasks whose losses differ in scale weigh alike in the choice.
        /// Without parts, as `total`.
        case eachPart
    }
}

/// The monitor's bookkeeping across epochs: each epoch's score (lower is better; it picks the best
/// epoch) and whether the epoch made progress (it resets early stopping and, by parts, the plateau).
struct MonitorState {
    let monitor: TrainingSchedule.Monitor
    /// Relative: a part's progress must beat its best by this fraction (as `ReduceOnPlateau`'s threshold).
    let threshold: Double
    private var bestScore = Double.infinity
    private var firstParts: [Double]?
    private var bestParts: [Double] = []

    init(_ monitor: TrainingSchedule.Monitor, threshold: Double) {
        self.monitor = monitor
        self.threshold = threshold
    }

    /// `loss`: the monitored loss; `parts`: its parts (the validation's). `byParts` says which rule
    /// judged the epoch: with `total` (or no parts) progress is a new best loss, as it always was.
    mutating func observe(loss: Double, parts: [Double]) -> (score: Double, isBest: Bool, progress: Bool, byParts: Bool) {
        guard case .eachPart = monitor, !parts.isEmpty, parts.allSatisfy(\.isFinite), firstParts.map({ $0.count == parts.count }) ?? true else {
            let isBest = loss < bestScore
            if isBest { bestScore = loss }
            return (loss, isBest, isBest, false)
        }
        let first = firstParts ?? parts
        firstParts = first
        let score = zip(parts, first).reduce(0) { $0 + ($1.1 > 0 ? $1.0 / $1.1 : $1.0) } / Double(parts.count)
        var progress = bestParts.isEmpty
        for i in bestParts.indices where parts[i] < bestParts[i] - threshold * abs(bestParts[i]) { progress = true }
        bestParts = bestParts.isEmpty ? parts : zip(bestParts, parts).map { min($0, $1) }
        let isBest = score < bestScore
        if isBest { bestScore = score }
        return (score, isBest, progress, true)
    }
}

/// Who applies the gradients of a step.
public enum ParameterUpdate {
    /// The trainer zeroes the gradients of `parameters` before each step and applies the optimizer after it.
    case optimizer(Optimizer, parameters: [Parameter])
    /// The step updates its parameters itself (adversarial training with two optimizers); the
    /// schedule adjusts these optimizers' learning rates.
    case byStep([Optimizer])

    var optimizers: [Optimizer] {
        switch self {
        case .optimizer(let optimizer, _): return [optimizer]
        case .byStep(let optimizers): return optimizers
        }
    }
}

/// What one training step measured: its loss and named numbers averaged over the epoch's steps.
public struct StepResult {
    public var loss: Double
    public var metrics: [(String, Double)]

    public init(loss: Double, metrics: [(String, Double)] = []) {
        self.loss = loss
        self.metrics = metrics
    }
}

/// What a validation pass measured after an epoch.
public struct ValidationResult {
    public var loss: Double
    public var metrics: [(String, Double)]
    /// The loss's parts (e.g. each task's loss), for `TrainingSchedule.Monitor.eachPart`.
    public var parts: [Double]

    public init(loss: Double, metrics: [(String, Double)] = [], parts: [Double] = []) {
        self.loss = loss
        self.metrics = metrics
        self.parts = parts
    }
}

/// One epoch of a training run, as `curves.csv` records it.
public struct EpochRecord {
    public var epoch: Int
    /// The learning rate the epoch trained with.
    public var learningRate: Float
    /// Mean step loss (NaN when every batch was skipped).
    public var trainLoss: Double
    public var trainMetrics: [(String, Double)]
    public var validation: ValidationResult?
    /// A loss measured after the epoch and only recorded (`fit`'s `heldOut`); nil when not measured
    /// or undefined (e.g. a Cox loss on patients without an event).
    public var heldOutLoss: Double? = nil
}

/// Where a training run is, for progress displays.
public struct TrainingProgress {
    public var epoch: Int
    public var epochs: Int
    /// Steps taken in this epoch (all of them once the epoch is finished).
    public var step: Int
    public var steps: Int
    /// Running mean loss of the epoch, and after the epoch its validation numbers.
    public var metrics: [String: Double]
    public var epochFinished: Bool
}

public enum TrainingError: Error, CustomStringConvertible {
    case nonFiniteLoss(epoch: Int, step: Int, value: Double)
    case nonFiniteValidation(epoch: Int, value: Double)
    case nonFiniteStep(epoch: Int, step: Int, reason: String)
    case noUpdate(epochs: Int)

    public var description: String {
        switch self {
        case .nonFiniteLoss(let epoch, let step, let value):
            return "training diverged: the loss of epoch \(epoch) step \(step) is \(value); lower the learning rate or check the labels"
        case .nonFiniteStep(let epoch, let step, let reason):
            return "training diverged in epoch \(epoch) step \(step): \(reason); lower the learning rate or check the labels"
        case .noUpdate(let epochs):
            return "training made no update in \(epochs) epoch(s): every batch was too small or unusable (e.g. Cox batches without an event); add training data or lower the batch size"
        case .nonFiniteValidation(let epoch, let value):
            return "training diverged: the validation loss after epoch \(epoch) is \(value); lower the learning rate or check the labels"
        }
    }
}

/// The result of `Trainer.fit`: every epoch, and the best one by the monitored loss with the
/// snapshot taken then.
public struct TrainingOutcome<Snapshot> {
    public var epochs: [EpochRecord]
    public var best: (epoch: Int, loss: Double, snapshot: Snapshot)?
    /// True when early stopping ended the run before the last scheduled epoch.
    public var stoppedEarly: Bool
    /// The epochs the schedule allowed (the cap).
    public var scheduledEpochs: Int
    /// Why training stopped on a non-finite loss while `keepBestOnDivergence` kept the best finite
    /// epoch (nil when it did not diverge).
    public var divergence: String?

    /// `epoch, learning_rate, train_loss[, val_loss]`, the step metrics, then the validation metrics
    /// (prefixed `val_`, as in the progress display).
    public var curves: (columns: [String], rows: [[String]]) {
        let hasValidation = epochs.contains { $0.validation != nil }
        let trainNames = epochs.first?.trainMetrics.map(\.0) ?? []
        let validationNames = epochs.first?.validation?.metrics.map(\.0) ?? []
        let columns = ["epoch", "learning_rate", "train_loss"] + (hasValidation ? ["val_loss"] : []) + trainNames + validationNames.map { "val_" + $0 }
        let rows = epochs.map { record -> [String] in
            var row = [String(record.epoch), "\(record.learningRate)", "\(record.trainLoss)"]
            if hasValidation { row.append(record.validation.map { "\($0.loss)" } ?? "") }
            row += record.trainMetrics.map { "\($0.1)" }
            row += (record.validation?.metrics.map { "\($0.1)" }) ?? validationNames.map { _ in "" }
            return row
        }
        return (columns, rows)
    }
}

/// The one training loop every training node uses: epochs of seeded batches, gradient steps, a
/// validation pass, the learning-rate plateau, early stopping, the best checkpoint, curves,
/// progress, cancellation and a guard against divergence. A node supplies only its model (through
/// `update` and `snapshot`), the order of its items, and what a step and a validation compute.
public struct Trainer {
    public var schedule: TrainingSchedule
    public var update: ParameterUpdate
    public var progress: (TrainingProgress) -> Void = { _ in }
    /// Throws to stop the run (checked before every step).
    public var checkCancellation: () throws -> Void = {}
    /// On a non-finite loss after at least one finite validated epoch: stop and keep that best epoch
    /// (recorded in `divergence`) instead of failing. For models whose best epoch is a result on its
    /// own (encoders); a patient model's fold must not silently end early, so it keeps the default.
    public var keepBestOnDivergence = false

    public init(schedule: TrainingSchedule, update: ParameterUpdate) {
        self.schedule = schedule
        self.update = update
    }

    /// The usual order: a fresh seeded permutation of `items` each epoch, fixed by (seed, epoch).
    public static func shuffledEachEpoch(_ items: [Int], seed: UInt64) -> (Int) -> [Int] {
        { epoch in
            var shuffler = Xoshiro256StarStar(seed: SeedStream(seed).derive(.epochShuffle, epoch))
            return shuffler.permutation(items.count).map { items[$0] }
        }
    }

    /// Trains for the scheduled epochs. `order(epoch)` gives the items of that epoch in the order to
    /// batch them; `step(batch, epoch)` runs forward and backward on a batch and returns its loss
    /// (nil when the batch cannot be used, e.g. a Cox batch without events); `validate(epoch)`
    /// measures the model after an epoch; `snapshot()` captures what to keep of the best epoch.
    /// `heldOut(epoch)`, when given, measures a loss after each epoch that is only recorded
    /// (`EpochRecord.heldOutLoss`): never monitored, so no schedule, checkpoint or stop depends on it —
    /// for data that must not steer training (a cross-validation's test fold).
    /// `prefetch(epoch, batches)`, when given, hears the epoch's batches before its first step: exactly
    /// those `step` will get, in that order, so a data loader can prepare them ahead.
    public func fit<Snapshot>(
        order: (Int) throws -> [Int],
        prefetch: ((_ epoch: Int, _ batches: [[Int]]) throws -> Void)? = nil,
        step: (_ batch: [Int], _ epoch: Int) throws -> StepResult?,
        validate: ((Int) throws -> ValidationResult)? = nil,
        heldOut: ((Int) throws -> Double?)? = nil,
        snapshot: () throws -> Snapshot
    ) throws -> TrainingOutcome<Snapshot> {
        var outcome = TrainingOutcome<Snapshot>(epochs: [], best: nil, stoppedEarly: false, scheduledEpochs: max(1, schedule.epochs), divergence: nil)
        // A divergence ends training here when there is a best epoch to fall back on; otherwise it is an error.
        func diverged(_ error: Error) throws {
            guard keepBestOnDivergence, let best = outcome.best else { throw error }
            outcome.divergence = "\(error); kept the best epoch \(best.epoch)"
        }
        var plateau = schedule.plateau
        var monitor = MonitorState(schedule.monitor, threshold: plateau?.threshold ?? 1e-4)
        var epochsWithoutImprovement = 0
        var updates = 0
        let epochs = schedule.epochs, batchSize = max(1, schedule.batchSize)
        epochs: for epoch in 1...max(1, epochs) {
            let learningRate = update.optimizers.first?.learningRate ?? 0
            let items = try order(epoch)
            let steps = (items.count + batchSize - 1) / batchSize
            let batches = (0..<steps).map { s in Array(items[(s * batchSize)..<min(items.count, (s + 1) * batchSize)]) }
            try prefetch?(epoch, batches.filter { $0.count >= schedule.minimumBatch })
            var lossSum = 0.0, used = 0
            var metricNames: [String] = []
            var metricSums: [String: Double] = [:]
            for (s, batch) in batches.enumerated() {
                try checkCancellation()
                if batch.count < schedule.minimumBatch { continue }
                if case .optimizer(_, let parameters) = update { for p in parameters { p.zeroGrad() } }
                let stepResult: StepResult?
                do { stepResult = try step(batch, epoch) } catch let error as NeuralError {
                    guard case .nonFinite = error else { throw error }
                    try diverged(TrainingError.nonFiniteStep(epoch: epoch, step: s + 1, reason: "\(error)"))
                    break epochs
                }
                guard let result = stepResult else { continue }
                guard result.loss.isFinite else {
                    try diverged(TrainingError.nonFiniteLoss(epoch: epoch, step: s + 1, value: result.loss))
                    break epochs
                }
                if case .optimizer(let optimizer, let parameters) = update { optimizer.step(parameters) }
                lossSum += result.loss
                used += 1
                updates += 1
                for (name, value) in result.metrics {
                    if metricSums[name] == nil { metricNames.append(name) }
                    metricSums[name, default: 0] += value
                }
                var running = ["loss": lossSum / Double(used)]
                for name in metricNames { running[name] = metricSums[name]! / Double(used) }  // invariant: names come from the sums
                progress(TrainingProgress(epoch: epoch, epochs: epochs, step: s + 1, steps: steps, metrics: running, epochFinished: false))
            }
            let trainLoss = used > 0 ? lossSum / Double(used) : .nan
            let validation = try validate?(epoch)
            if let validation, !validation.loss.isFinite {
                try diverged(TrainingError.nonFiniteValidation(epoch: epoch, value: validation.loss))
                break epochs
            }
            let heldOutLoss = try heldOut?(epoch)
            let record = EpochRecord(epoch: epoch, learningRate: learningRate, trainLoss: trainLoss,
                                     trainMetrics: metricNames.map { ($0, metricSums[$0]! / Double(max(1, used))) },  // invariant: as above
                                     validation: validation, heldOutLoss: heldOutLoss.flatMap { $0.isFinite ? $0 : nil })
            outcome.epochs.append(record)
            var finished = ["loss": trainLoss]
            if let validation {
                finished["val_loss"] = validation.loss
                for (name, value) in validation.metrics { finished["val_" + name] = value }
            }
            if let heldOutLoss, heldOutLoss.isFinite { finished["held_out_loss"] = heldOutLoss }
            progress(TrainingProgress(epoch: epoch, epochs: epochs, step: steps, steps: steps, metrics: finished, epochFinished: true))

            // The monitored loss: validation when there is one, else training (NaN when no batch ran).
            let monitored = validation?.loss ?? trainLoss
            guard monitored.isFinite else { continue }
            let observed = monitor.observe(loss: monitored, parts: validation?.parts ?? [])
            if observed.isBest {
                outcome.best = (epoch, observed.score, try snapshot())
            }
            epochsWithoutImprovement = observed.progress ? 0 : epochsWithoutImprovement + 1
            if plateau != nil, let first = update.optimizers.first {
                if observed.byParts { plateau!.update(progress: observed.progress, optimizer: first) } else { plateau!.update(monitored, optimizer: first) }
                for optimizer in update.optimizers.dropFirst() { optimizer.learningRate = first.learningRate }
            }
            if let patience = schedule.earlyStopping, epochsWithoutImprovement >= patience, epoch < epochs {
                outcome.stoppedEarly = true
                break
            }
        }
        // An untrained model must not be cached as a result.
        guard updates > 0 else { throw TrainingError.noUpdate(epochs: outcome.epochs.count) }
        return outcome
    }
}
