import Foundation
import NICBasics
import Slides
import XCTest
@testable import NICNodes

/// Chunk-aware PatchSet reading and the streaming training loader on a small PatchSet of 4 × 4
/// patches spanning three chunks (256, 256, and a last partial chunk of 88).
final class PatchLoaderTests: XCTestCase {
    static let count = 600

    var folder: URL!
    var written: [RGBImage] = []

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("nic-patchset-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var random = Xoshiro256StarStar(seed: 99)
        written = (0..<Self.count).map { _ in RGBImage(width: 4, height: 4, pixels: (0..<48).map { _ in UInt8(truncatingIfNeeded: random.next()) }) }
        let writer = try PatchSetWriter(folder: folder, size: 4, count: Self.count)
        for k in 0..<writer.chunkCount {
            try writer.writeChunk(k, patches: Array(written[(k * PatchSet.chunkPatches)..<min(Self.count, (k + 1) * PatchSet.chunkPatches)]))
        }
        let records = (0..<Self.count).map { PatchRecord(slide: "s\($0 / 100)", x: $0, y: 0) }
        try writer.finish(records: records, tasks: [], mode: "training", mpp: 0.5)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func testRangesEqualPatchByPatchAcrossChunksAndTheLastPartialChunk() throws {
        let set = try PatchSet(folder: folder)
        XCTAssertEqual(set.chunkCount, 3)
        XCTAssertEqual(set.chunkRange(2), 512..<600)
        for i in 0..<Self.count { XCTAssertEqual(try set.patch(i), written[i], "patch \(i)") }
        for range in [0..<600, 250..<262, 255..<257, 256..<512, 500..<600, 511..<513, 599..<600, 300..<300] {
            let bytes = try set.patches(range)
            XCTAssertEqual(bytes, range.flatMap { written[$0].pixels }, "\(range)")
            XCTAssertEqual(bytes, try range.flatMap { try set.patch($0).pixels }, "\(range) patch by patch")
            XCTAssertEqual(try set.images(range), Array(written[range]))
        }
        for k in 0..<set.chunkCount { XCTAssertEqual(try set.chunkImages(k), Array(written[set.chunkRange(k)])) }
        let scattered = [599, 3, 256, 255, 512, 3, 0]
        XCTAssertEqual(try set.images(at: scattered), scattered.map { written[$0] })
        XCTAssertThrowsError(try set.patches(590..<601))
        XCTAssertThrowsError(try set.patch(600))
    }

    func testEpochOrderVisitsEveryItemOnceWhateverTheBuffer() {
        let items = (0..<Self.count).filter { $0 % 7 != 3 }
        for buffer in [1, 2, 7, 64, 256, 1000, 100_000] {
            let order = PatchLoader<Int>.epochOrder(items, epoch: 1, seed: 5, buffer: buffer)
            XCTAssertEqual(order.sorted(), items, "buffer \(buffer)")
            XCTAssertEqual(order, PatchLoader<Int>.epochOrder(items, epoch: 1, seed: 5, buffer: buffer), "fixed by (seed, epoch)")
            XCTAssertNotEqual(order, PatchLoader<Int>.epochOrder(items, epoch: 2, seed: 5, buffer: buffer), "each epoch its own order")
        }
        // A buffer of one keeps whole chunks together: the loader holds one chunk at a time.
        let chunked = PatchLoader<Int>.epochOrder(items, epoch: 3, seed: 1, buffer: 1)
        let chunkChanges = zip(chunked, chunked.dropFirst()).filter { $0.0 / PatchSet.chunkPatches != $0.1 / PatchSet.chunkPatches }.count
        XCTAssertEqual(chunkChanges, 2)
    }

    /// The batches a trainer would cut from an epoch's order.
    func batches(_ order: [Int], size: Int) -> [[Int]] {
        stride(from: 0, to: order.count, by: size).map { Array(order[$0..<min(order.count, $0 + size)]) }
    }

    func testLoaderHandsOutEveryPatchOnceWithItsPixelsAndItsAugmentation() throws {
        let set = try PatchSet(folder: folder)
        let items = (0..<Self.count).filter { $0 % 5 != 0 }
        // A stand-in augmentation that depends on (epoch, index) only, like `Augmenter`.
        let augment: (Int) -> PatchLoader<[RGBImage]>.Augment = { epoch in
            { index, patch in RGBImage(width: 4, height: 4, pixels: patch.pixels.map { $0 &+ UInt8(truncatingIfNeeded: index &* 31 &+ epoch) }) }
        }
        var firstRun: [[RGBImage]]?
        for buffer in [1, 37, 1000] {
            for workers in [1, 3] {
                // With a budget shared with the consumer (as the encoder's steps do) or without one.
                let budget = workers == 3 ? SharedBudget(stages: 2, total: { 2 }) : nil
                let loader = PatchLoader<[RGBImage]>(patchSet: set, workers: workers, depth: 2, budget: budget, stage: 0)
                let epochBatches = batches(PatchLoader<Int>.epochOrder(items, epoch: 2, seed: 8, buffer: buffer), size: 16)
                loader.start(epochBatches, augment: augment(2), assemble: { _, patches in patches })
                var seen: [Int] = []
                var prepared: [[RGBImage]] = []
                for batch in epochBatches {
                    let patches = try loader.next(batch)
                    budget?.acquire(1, most: 2)
                    defer { budget?.release(1) }
                    XCTAssertEqual(patches, batch.map { i in RGBImage(width: 4, height: 4, pixels: written[i].pixels.map { $0 &+ UInt8(truncatingIfNeeded: i &* 31 &+ 2) }) })
                    seen += batch
                    prepared.append(patches)
                }
                XCTAssertEqual(seen.sorted(), items, "every training patch once (buffer \(buffer), \(workers) workers)")
                XCTAssertLessThanOrEqual(loader.mostHeld, buffer + PatchSet.chunkPatches + 16, "decoded patches held stay bounded by the buffer")
                if let budget { XCTAssertLessThanOrEqual(budget.peak, 2, "the loader and the consumer together stay within the budget") }
                if buffer == 1000 {
                    if let firstRun { XCTAssertEqual(prepared, firstRun, "the same batches whatever the workers") } else { firstRun = prepared }
                }
            }
        }
    }

    func testPassesFailuresAndRestarts() throws {
        let set = try PatchSet(folder: folder)
        let loader = PatchLoader<Int>(patchSet: set, workers: 2, depth: 1)
        // A validation-style pass reads every item once, in ascending order.
        var passed: [Int] = []
        let written = written
        try loader.pass([599, 10, 300, 11], batchSize: 3, assemble: { items, patches in
            patches == items.map { written[$0] } ? items.count : -1
        }) { batch, n in
            passed += batch
            XCTAssertEqual(n, batch.count, "the batch's patches as stored")
        }
        XCTAssertEqual(passed, [10, 11, 300, 599])

        // A failure while preparing batch 2 surfaces when that batch is taken, not before.
        struct Broken: Error {}
        let epoch = batches(Array(0..<100), size: 10)
        loader.start(epoch, augment: nil, assemble: { items, _ in
            if items.first == 20 { throw Broken() }
            return items[0]
        })
        XCTAssertEqual(try loader.next(epoch[0]), 0)
        XCTAssertEqual(try loader.next(epoch[1]), 10)
        XCTAssertThrowsError(try loader.next(epoch[2])) { XCTAssertTrue($0 is Broken) }

        // Stopping halfway (early stopping, cancellation) and starting again is clean.
        loader.start(epoch, augment: nil, assemble: { items, _ in items[0] })
        XCTAssertEqual(try loader.next(epoch[0]), 0)
        loader.start(Array(epoch.suffix(2)), augment: nil, assemble: { items, _ in items[0] + 1 })
        XCTAssertEqual(try loader.next(epoch[8]), 81)
        XCTAssertEqual(try loader.next(epoch[9]), 91)
        loader.stop()
        XCTAssertGreaterThan(loader.timing.reading + loader.timing.preparing, 0)
    }
}
