import Flow
import Foundation
import NICBasics
import Slides

/// A data loader for training on a PatchSet of any size (the shape of PyTorch's `DataLoader` with an
/// iterable dataset): patches are read chunk by chunk, each chunk decoded once per pass, and a
/// thread of its own decodes and augments the next batches while the current one trains, up to
/// `depth` batches ahead. With a `SharedBudget`, the loader takes its threads from the budget it
/// shares with the training steps (a batch at a time), so the two never run more workers than it. Memory stays bounded whatever the patch count: the decoded patches waiting
/// in the shuffle window, one chunk, and `depth` prepared batches.
///
/// The order of an epoch comes from `epochOrder` (chunks in a seeded order, then a bounded shuffle
/// buffer), so it is known before any pixel is read; the trainer cuts it into batches and announces
/// them with `start`, then takes them with `next` in the same order. What a batch holds depends only
/// on its items and the epoch (augmentation is drawn per (epoch, patch)), never on the threads that
/// prepared it, so training computes the same bits whatever the thread budget.
public final class PatchLoader<Prepared>: Sendable {
    /// Augments one patch (its index in the PatchSet, its pixels).
    public typealias Augment = @Sendable (_ index: Int, _ patch: RGBImage) -> RGBImage
    /// Turns a batch's (augmented) patches into what a step consumes, e.g. the network's input tensor.
    public typealias Assemble = @Sendable (_ items: [Int], _ patches: [RGBImage]) throws -> Prepared

    public let patchSet: PatchSet
    /// The most threads that read and augment a batch (the loader's own thread among them).
    public let workers: Int
    private let budget: SharedBudget?
    private let stage: Int
    /// Prepared batches kept ready ahead of the consumer.
    public let depth: Int

    private let loading = Condition(Loading())

    /// The batches announced, prepared and taken, guarded by the condition that the loader's thread
    /// (too far ahead), the consumer (its batch not ready) and `stop` (a thread still running) wait on.
    private struct Loading {
        /// Counts the `start`s and `stop`s: a thread preparing for an older generation stops.
        var generation = 0
        var batches: [[Int]] = []
        var ready: [Int: Result<Prepared, Error>] = [:]
        var taken = 0
        var producers = 0
        var spent = LoaderTiming()
        var mostDecoded = 0

        /// Whether `items` is the next batch announced.
        func announced(_ items: [Int]) -> Bool { taken < batches.count && batches[taken] == items }
    }

    /// Patches augmented per request of threads.
    static var augmentPiece: Int { 16 }

    public init(patchSet: PatchSet, workers: Int, depth: Int = 4, budget: SharedBudget? = nil, stage: Int = 0) {
        self.patchSet = patchSet
        self.workers = max(1, workers)
        self.budget = budget
        self.stage = stage
        self.depth = max(1, depth)
    }

    deinit { stop() }

    /// The order an epoch visits `items` in: the chunks they lie in, in a seeded order, each chunk's
    /// items in a seeded order, then through a shuffle buffer of `buffer` items (each step emits a
    /// random item of the buffer and puts the next one in its place; the rest leaves in a random
    /// order). A permutation of `items`, fixed by (seed, epoch); with `buffer` ≥ the item count it is
    /// uniform. An item leaves the buffer at most `buffer` places before its place in the chunk
    /// stream, which bounds what the loader holds decoded.
    public static func epochOrder(_ items: [Int], epoch: Int, seed: UInt64, buffer: Int) -> [Int] {
        var random = Xoshiro256StarStar(seed: SeedStream(seed).derive(.epochShuffle, epoch))
        var byChunk: [Int: [Int]] = [:]
        for i in items { byChunk[i / PatchSet.chunkPatches, default: []].append(i) }
        let chunks = byChunk.keys.sorted()
        var stream: [Int] = []
        stream.reserveCapacity(items.count)
        for c in random.permutation(chunks.count) {
            let members = byChunk[chunks[c]]!  // invariant: the key came from byChunk
            stream += random.permutation(members.count).map { members[$0] }
        }
        let size = max(1, buffer)
        var window: [Int] = [], order: [Int] = []
        window.reserveCapacity(min(size, stream.count))
        order.reserveCapacity(stream.count)
        for item in stream {
            if window.count < size {
                window.append(item)
                continue
            }
            let j = random.int(below: size)
            order.append(window[j])
            window[j] = item
        }
        order += random.permutation(window.count).map { window[$0] }
        return order
    }

    /// Starts preparing `batches` (lists of patch indices) in order, after stopping whatever was
    /// being prepared. Each patch is augmented with `augment` (nil: as stored), then each batch
    /// assembled. Patches should come in chunk-local order (`epochOrder`, or ascending): a chunk's
    /// patches wait decoded until each is taken.
    public func start(_ batches: [[Int]], augment: Augment?, assemble: @escaping Assemble) {
        stop()
        let current = loading.withLock { loading in
            loading.generation += 1
            loading.batches = batches
            loading.ready = [:]
            loading.taken = 0
            loading.producers += 1
            return loading.generation
        }
        let thread = Thread { [self] in produce(batches, generation: current, augment: augment, assemble: assemble) }
        thread.name = "nic.patch-loader"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// The next prepared batch, which must be `items` (the next announced batch); waits while the
    /// loader is behind, and rethrows what failed while preparing it.
    public func next(_ items: [Int]) throws -> Prepared {
        let clock = Stopwatch()
        return try loading.withLock(until: { !$0.announced(items) || $0.ready[$0.taken] != nil }, wakingWaiters: true) { loading in
            guard loading.announced(items) else {
                throw NodeError("PatchLoader: batch \(loading.taken + 1) asked for other patches than announced (\(items.prefix(4))…); the trainer and the loader are out of step")
            }
            let result = loading.ready.removeValue(forKey: loading.taken)!  // invariant: waited for it
            loading.taken += 1
            loading.spent.waiting += clock.seconds
            return result
        }.get()
    }

    /// Reads every item once, in ascending order and batches of `batchSize`, prepared ahead as
    /// `assemble` makes them (no augmentation): what validation and evaluation passes use.
    public func pass(_ items: [Int], batchSize: Int, assemble: @escaping Assemble, _ body: ([Int], Prepared) throws -> Void) throws {
        let sorted = items.sorted()
        let size = max(1, batchSize)
        let batches = stride(from: 0, to: sorted.count, by: size).map { Array(sorted[$0..<min(sorted.count, $0 + size)]) }
        start(batches, augment: nil, assemble: assemble)
        defer { stop() }
        for batch in batches { try body(batch, try next(batch)) }
    }

    /// Stops preparing and waits for the loader's thread to finish its batch.
    public func stop() {
        loading.withLock(wakingWaiters: true) { $0.generation += 1 }
        loading.withLock(until: { $0.producers == 0 }) { $0.ready = [:] }
    }

    /// The most decoded patches the loader held at once (waiting in the shuffle window or in their
    /// chunk until taken): what bounds its memory besides the prepared batches.
    public var mostHeld: Int {
        loading.withLock { $0.mostDecoded }
    }

    /// Where the loader's time went so far.
    public var timing: LoaderTiming {
        loading.withLock { $0.spent }
    }

    // MARK: - The loader's thread

    private func produce(_ batches: [[Int]], generation current: Int, augment: Augment?, assemble: Assemble) {
        defer { loading.withLock(wakingWaiters: true) { $0.producers -= 1 } }
        // How often each item is still to be handed out this pass, and the decoded patches waiting.
        var remaining: [Int: Int] = [:]
        for batch in batches { for i in batch { remaining[i, default: 0] += 1 } }
        var decoded: [Int: RGBImage] = [:]
        let compute = ComputeContext(threads: 1)
        // Work in short pieces, each on the threads the budget has free then, given back after: a step
        // that starts meanwhile gets them back within a piece.
        func holding<T>(_ body: (Int) throws -> T) rethrows -> T {
            let threads = budget?.acquire(stage, most: workers) ?? workers
            defer { budget?.release(stage) }
            compute.setThreads(threads)
            return try compute.run { try body(threads) }
        }
        for (k, batch) in batches.enumerated() {
            let stopped = loading.withLock(until: { $0.generation != current || k - $0.taken < depth }) { $0.generation != current }
            if stopped { return }
            var reading = 0.0, preparing = 0.0, held = 0
            let result = Result { () throws -> Prepared in
                let clock = Stopwatch()
                // The chunks this batch needs that are not decoded yet, decoded side by side.
                let missing = Array(Set(batch.filter { decoded[$0] == nil }.map { $0 / PatchSet.chunkPatches })).sorted()
                let patchSet = patchSet
                var chunks: [[RGBImage]] = []
                for start in stride(from: 0, to: missing.count, by: workers) {
                    let piece = Array(missing[start..<min(missing.count, start + workers)])
                    chunks += try holding { threads in try concurrentMap(piece.count, workers: threads) { try patchSet.chunkImages(piece[$0]) } }
                }
                for (chunk, images) in zip(missing, chunks) {
                    let first = chunk * PatchSet.chunkPatches
                    for j in patchSet.chunkRange(chunk) where remaining[j] != nil && decoded[j] == nil { decoded[j] = images[j - first] }
                }
                held = max(held, decoded.count)
                var patches: [RGBImage] = []
                patches.reserveCapacity(batch.count)
                for i in batch {
                    patches.append(decoded[i]!)  // invariant: i is still to be handed out, so its chunk put it here
                    remaining[i]! -= 1  // invariant: counted above
                    if remaining[i] == 0 {
                        remaining[i] = nil
                        decoded[i] = nil
                    }
                }
                reading = clock.seconds
                if let augment {
                    let raw = patches
                    patches = []
                    for start in stride(from: 0, to: raw.count, by: Self.augmentPiece) {
                        let range = start..<min(raw.count, start + Self.augmentPiece)
                        patches += try holding { threads in try concurrentMap(range.count, workers: threads) { augment(batch[range.lowerBound + $0], raw[range.lowerBound + $0]) } }
                    }
                }
                let prepared = try holding { _ in try assemble(batch, patches) }
                preparing = clock.seconds - reading
                return prepared
            }
            loading.withLock(wakingWaiters: true) { loading in
                loading.spent.reading += reading
                loading.spent.preparing += preparing
                loading.mostDecoded = max(loading.mostDecoded, held)
                if loading.generation == current { loading.ready[k] = result }
            }
            if case .failure = result { return }
        }
    }
}

/// Seconds a `PatchLoader` spent: on its own thread reading and decoding chunks and augmenting and
/// assembling batches (overlapping the steps), and on the consumer's side waiting for a batch (the
/// part of the loading the steps did not hide).
public struct LoaderTiming: Sendable, Equatable {
    public var reading = 0.0
    public var preparing = 0.0
    public var waiting = 0.0
}
