import Flow
import Foundation
import NICBasics
import Neural
import Slides

/// The network inputs of an encoder training, streamed from its PatchSet by a `PatchLoader`: each
/// epoch in the loader's order (chunks, then a shuffle buffer of `shuffle_buffer` patches), freshly
/// augmented per (epoch, patch) when the PatchSet came through an augmenter, and validation passes
/// read the same way without augmentation. The loader and the steps share the node's thread budget
/// (`SharedBudget`): a step takes the threads once its batch is ready (and those the loader gives
/// back while it runs), and gives them back after, so the loader prepares the next batches between
/// steps and while a step waits, never slowing a step down. It also keeps the clock of the training (`time`).
final class EncoderInputs {
    let patchSet: PatchSet
    let loader: PatchLoader<Tensor>
    let augmenter: Augmenter?
    let downsample: Int
    private let budget: SharedBudget
    /// The networks' threads during a step or a validation batch: what the shared budget gave.
    private let compute = ComputeContext(threads: 1)
    private let threads: @Sendable () -> Int
    static let loading = 0, training = 1
    private let seed: UInt64
    private let buffer: Int
    /// Since the node started (reading the PatchSet's tables counts towards the first step).
    private let started: Stopwatch
    private var firstStep: Double?
    private var training = 0.0, validation = 0.0
    /// The loader's waits during validation passes (part of `validation`, not of the training's waits).
    private var validationWaits = 0.0

    init(patchSet: PatchSet, downsample: Int, params: EncoderNode.Params, context: NodeContext, started: Stopwatch) throws {
        self.started = started
        self.patchSet = patchSet
        self.downsample = downsample
        augmenter = try patchSet.augmenter()
        seed = UInt64(truncatingIfNeeded: params.seed)
        buffer = params.shuffleBuffer
        let node = context.compute
        threads = { node.threads }
        budget = SharedBudget(stages: 2, total: threads)
        loader = PatchLoader(patchSet: patchSet, workers: node.mostThreads, budget: budget, stage: Self.loading)
    }

    deinit { loader.stop() }

    /// Patches as the network's input: box-averaged by `downsample`, scaled to [-1, 1].
    var preprocess: PatchLoader<Tensor>.Assemble {
        let d = downsample
        return { _, patches in EncoderModel.preprocess(patches, downsample: d) }
    }

    /// The augmentation of an epoch, if the PatchSet has one.
    func augment(epoch: Int) -> PatchLoader<Tensor>.Augment? {
        guard let augmenter else { return nil }
        return { index, patch in augmenter.apply(to: patch, epoch: epoch, index: index) }
    }

    /// Each epoch's order of `items` (for `Trainer.fit`'s `order`).
    func order(_ items: [Int]) -> (Int) -> [Int] {
        let seed = seed, buffer = buffer
        return { epoch in PatchLoader<Tensor>.epochOrder(items, epoch: epoch, seed: seed, buffer: buffer) }
    }

    /// Starts preparing an epoch's batches (for `Trainer.fit`'s `prefetch`), as network inputs unless
    /// the training assembles its own.
    func prefetch(epoch: Int, batches: [[Int]], assemble: PatchLoader<Tensor>.Assemble? = nil) {
        loader.start(batches, augment: augment(epoch: epoch), assemble: assemble ?? preprocess)
    }

    /// A training step on the next batch: `body` gets its input; the time it takes counts as training.
    func step<T>(_ batch: [Int], _ body: (Tensor) throws -> T) throws -> T {
        let x = try loader.next(batch)
        let clock = Stopwatch()
        if firstStep == nil { firstStep = started.seconds }
        defer { training += clock.seconds }
        return try withThreads { try body(x) }
    }

    /// Runs `body` on the threads the shared budget gives the training (at least one; waits for it).
    private func withThreads<T>(_ body: () throws -> T) rethrows -> T {
        // The step comes first: threads the loader gives back during the step join it at its next layer.
        let compute = compute
        compute.setThreads(budget.acquire(Self.training, most: threads(), grow: { compute.setThreads($0) }))
        defer { budget.release(Self.training) }
        return try compute.run(body)
    }

    /// A validation pass over `items` in batches (inputs not augmented), timed as validation.
    func validate<T>(_ items: [Int], batchSize: Int = 256, assemble: PatchLoader<Tensor>.Assemble? = nil,
                     _ body: ([Int], Tensor) throws -> Void, result: () throws -> T) throws -> T {
        let clock = Stopwatch(), waitedBefore = loader.timing.waiting
        defer {
            validation += clock.seconds
            validationWaits += loader.timing.waiting - waitedBefore
        }
        try loader.pass(items, batchSize: batchSize, assemble: assemble ?? preprocess) { batch, x in try withThreads { try body(batch, x) } }
        return try result()
    }

    /// Where the time went so far.
    var time: TrainingTime {
        let loading = loader.timing
        return TrainingTime(total: started.seconds, firstStep: firstStep ?? 0,
                            loading: loading.reading, augmentation: loading.preparing, waitingForData: loading.waiting - validationWaits,
                            training: training, validation: validation)
    }
}

/// Where an encoder training's time went, in seconds (model.json's `time`, and the node's last
/// progress metrics in the run record). Loading and augmentation run on the loader's thread beside
/// the steps; `waiting_for_data` is the part the steps did not hide. When it is a large part of
/// `training`, the data pipeline is the bottleneck; otherwise the network is.
public struct TrainingTime: Codable, Equatable, Sendable {
    public var total: Double
    public var firstStep: Double
    public var loading: Double
    public var augmentation: Double
    public var waitingForData: Double
    /// Forward and backward passes (the steps, without their waits).
    public var training: Double
    public var validation: Double

    public var bottleneck: String { waitingForData > 0.1 * training ? "data" : "network" }

    enum CodingKeys: String, CodingKey {
        case total = "total_s", firstStep = "first_step_s", loading = "loading_s", augmentation = "augmentation_s"
        case waitingForData = "waiting_for_data_s", training = "training_s", validation = "validation_s", bottleneck
    }

    public init(total: Double, firstStep: Double, loading: Double, augmentation: Double, waitingForData: Double, training: Double, validation: Double) {
        self.total = total
        self.firstStep = firstStep
        self.loading = loading
        self.augmentation = augmentation
        self.waitingForData = waitingForData
        self.training = training
        self.validation = validation
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(total: try c.decode(Double.self, forKey: .total), firstStep: try c.decode(Double.self, forKey: .firstStep),
                  loading: try c.decode(Double.self, forKey: .loading), augmentation: try c.decode(Double.self, forKey: .augmentation),
                  waitingForData: try c.decode(Double.self, forKey: .waitingForData), training: try c.decode(Double.self, forKey: .training),
                  validation: try c.decode(Double.self, forKey: .validation))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(total, forKey: .total)
        try c.encode(firstStep, forKey: .firstStep)
        try c.encode(loading, forKey: .loading)
        try c.encode(augmentation, forKey: .augmentation)
        try c.encode(waitingForData, forKey: .waitingForData)
        try c.encode(training, forKey: .training)
        try c.encode(validation, forKey: .validation)
        try c.encode(bottleneck, forKey: .bottleneck)
    }

    /// The split as progress metrics (seconds), for the run record.
    public var metrics: [String: Double] {
        ["time_total_s": total, "time_first_step_s": firstStep, "time_loading_s": loading, "time_augmentation_s": augmentation,
         "time_waiting_for_data_s": waitingForData, "time_training_s": training, "time_validation_s": validation]
    }
}
