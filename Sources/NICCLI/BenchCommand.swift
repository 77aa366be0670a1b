import ArgumentParser
import Flow
import Foundation
import NICBasics
import NICNodes
import Neural
import Slides
import Synthetic
#if canImport(Glibc)
import Glibc
#endif

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks of data movement at scale (bench/training, bench/compress call these).",
        subcommands: [BenchLoader.self, BenchAugment.self, BenchCompressBound.self]
    )
}

/// The training loader on a large PatchSet: time to the first batch, the loader alone over a whole
/// epoch (patches/s, peak RSS), and training steps fed by the loader against the same steps on a
/// batch already in memory (the pure step time), alternated in one run.
struct BenchLoader: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loader",
        abstract: "Streaming loader on a synthetic PatchSet of N patches: first batch, epoch, steps fed vs pure steps, peak RSS."
    )

    @Option(help: "Patches in the PatchSet (written once to --work).") var patches = 200_000
    @Option(help: "Folder for the PatchSet (reused when it has the right count).") var work = "/tmp/nic-bench-loader"
    @Option(help: "Augmentation recipe (empty: none).") var recipe = "nodes/augment/heavy.yaml"
    @Option(help: "Encoder architecture for the training steps.") var architecture = "nodes/encoders/nic-encoder.yaml"
    @Option(help: "Patches in the shuffle buffer.") var buffer = 4096
    @Option(help: "Patches per step.") var batch = 64
    @Option(help: "Training steps per measurement.") var steps = 40
    @Option(help: "Rounds of (pure steps, loader-fed steps).") var rounds = 2
    @Option(help: "Threads (default: every core).") var threads: Int?
    @Flag(help: "Skip the loader-only pass over a whole epoch (reading and decoding, no augmentation).") var noEpoch = false

    func run() throws {
        let cores = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let folder = URL(fileURLWithPath: work).appendingPathComponent("patches-\(patches)")
        if (try? PatchSet(folder: folder))?.count != patches {
            let clock = Stopwatch()
            try Self.writePatchSet(count: patches, to: folder)
            print(String(format: "wrote %d patches to %@ in %.1f s", patches, folder.path, clock.seconds))
        }
        let augmenter: Augmenter? = try recipe.isEmpty ? nil : Augmenter(recipe: try Self.recipe(file: recipe), seed: 2)

        // Time to the first batch: opening the PatchSet (its tables) and the loader's first batch.
        let clock = Stopwatch()
        let set = try PatchSet(folder: folder)
        let opened = clock.seconds
        let order = PatchLoader<Tensor>.epochOrder(Array(0..<set.count), epoch: 1, seed: 1, buffer: buffer)
        let batches = stride(from: 0, to: order.count - batch + 1, by: batch).map { Array(order[$0..<($0 + batch)]) }
        // As in the encoder node: the loader and the steps share the cores (SharedBudget).
        let budget = SharedBudget(stages: 2, total: { cores })
        let loader = PatchLoader<Tensor>(patchSet: set, workers: cores, budget: budget, stage: 0)
        let augment: (Int) -> PatchLoader<Tensor>.Augment? = { epoch in
            guard let augmenter else { return nil }
            return { index, patch in augmenter.apply(to: patch, epoch: epoch, index: index) }
        }
        let preprocess: PatchLoader<Tensor>.Assemble = { _, patches in EncoderModel.preprocess(patches, downsample: 2) }
        loader.start(batches, augment: augment(1), assemble: preprocess)
        _ = try loader.next(batches[0])
        let first = clock.seconds
        print(String(format: "first batch: %.2f s (opening the PatchSet %.2f s, page cache warm unless dropped), %d patches", first, opened, set.count))
        loader.stop()
        if !noEpoch {
            // Reading and decoding only: what bounds memory (augmentation is timed with the steps below).
            loader.start(batches, augment: nil, assemble: preprocess)
            let epoch = Stopwatch()
            for b in batches { _ = try loader.next(b) }
            let seconds = epoch.seconds
            print(String(format: "loader alone, one epoch without augmentation (%d batches of %d): %.1f s, %.0f patches/s, most patches held decoded %d; peak RSS %.0f MB",
                         batches.count, batch, seconds, Double(batches.count * batch) / seconds, loader.mostHeld, Self.peakRSS()))
            loader.stop()
        }

        // Training steps: the same network and loss, fed by the loader or by one batch kept in memory.
        let compute = ComputeContext(threads: cores)
        let encoder = try Architecture.load(file: architecture).build(seed: 1, inputShapes: [[64, 64, 3]], prefix: "encoder")
        let head = try Architecture.parse(yaml: "layers: [{dense: 2}]", file: "head.yaml").build(seed: 2, inputShapes: [encoder.outputShape], prefix: "head")
        encoder.compute = compute
        head.compute = compute
        let optimizer = Adam(learningRate: 1e-4)
        let parameters = encoder.parameters + head.parameters
        let labels = (0..<batch).map { $0 % 2 }
        func step(_ x: Tensor) throws {
            compute.setThreads(budget.acquire(1, most: cores, grow: { compute.setThreads($0) }))
            defer { budget.release(1) }
            for p in parameters { p.zeroGrad() }
            let code = try encoder.forward(x, training: true)
            let logits = try head.forward(code, training: true)
            let loss = try Loss.softmaxCrossEntropy(logits: logits, labels: labels)
            let dCode = try head.backward(loss.gradient)[0]
            try encoder.backward(dCode)
            optimizer.step(parameters)
        }
        let held = EncoderModel.preprocess(try set.images(0..<batch), downsample: 2)
        try step(held)  // warm-up: buffers and caches
        var pure: [Double] = [], fed: [Double] = []
        let before = loader.timing
        for round in 1...max(1, rounds) {
            let a = Stopwatch()
            for _ in 0..<steps { try step(held) }
            pure.append(a.seconds / Double(steps))
            let roundBatches = Array(batches.dropFirst(round * steps).prefix(steps))
            loader.start(roundBatches, augment: augment(1), assemble: preprocess)
            let b = Stopwatch()
            for items in roundBatches { try step(try loader.next(items)) }
            fed.append(b.seconds / Double(roundBatches.count))
            loader.stop()
            print(String(format: "round %d: pure step %.3f s, loader-fed step %.3f s (ratio %.2f)", round, pure.last!, fed.last!, fed.last! / pure.last!))  // invariant: one entry per round, rounds ≥ 1
        }
        let bestPure = pure.min()!, bestFed = fed.min()!  // invariant: one entry per round, rounds ≥ 1
        let stepsPerEpoch = batches.count
        let fedBatches = Double(fed.count * steps), spent = loader.timing
        print(String(format: "epoch of %d steps: %.0f s fed by the loader vs %.0f s of pure steps: ratio %.2f (goal ≤ 1.3); per fed step: waited %.3f s, the loader read %.3f s and augmented %.3f s (on the threads the steps left it)",
                     stepsPerEpoch, bestFed * Double(stepsPerEpoch), bestPure * Double(stepsPerEpoch), bestFed / bestPure,
                     (spent.waiting - before.waiting) / fedBatches, (spent.reading - before.reading) / fedBatches, (spent.preparing - before.preparing) / fedBatches))
        print(String(format: "JSON {\"patches\": %d, \"first_batch_s\": %.3f, \"pure_step_s\": %.4f, \"fed_step_s\": %.4f, \"ratio\": %.3f, \"peak_rss_mb\": %.0f}",
                     set.count, first, bestPure, bestFed, bestFed / bestPure, Self.peakRSS()))
    }

    /// A recipe file as the engine parses references (a pipeline that references it, never run).
    static func recipe(file: String) throws -> AugmentationRecipe {
        let url = URL(fileURLWithPath: file).standardizedFileURL
        let text = """
        pipeline: bench-augment
        inputs:
          cohort: {kind: slides, dir: "\(url.deletingLastPathComponent().path)"}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}}
          augmented: {type: augmenter, in: {patches: tiles}, params: {recipe: "\(url.path)"}}
        """
        let graph = try PipelineGraph.build(try SpecParser.parse(text: text, file: "bench", directory: url.deletingLastPathComponent()),
                                            registry: NICEnvironment.registry)
        guard let value = graph.node(named: "augmented")?.params["recipe"] else { throw ValidationError("\(file): could not be read") }
        return try AugmentationRecipes.parse(value, file: file)
    }

    /// A PatchSet of `count` patches cut from a synthetic slide (1,024 distinct places, each repeated
    /// in the 8 orientations and with a shift), with one classification task: realistic content for
    /// the codec, distinct chunks.
    static func writePatchSet(count: Int, to folder: URL) throws {
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let slide = SyntheticSlide(SyntheticSlideSpec(width: 8192, height: 8192, seed: 5))
        var random = Xoshiro256StarStar(seed: 3)
        let places = (0..<1024).map { _ in (x: 1024 + random.int(below: 6000), y: 1024 + random.int(below: 6000)) }
        let sources = try concurrentMap(places.count, workers: ProcessInfo.processInfo.activeProcessorCount) { i in
            RGBImage(width: 144, height: 144, pixels: slide.render(x: places[i].x, y: places[i].y, width: 144, height: 144))
        }
        let writer = try PatchSetWriter(folder: folder, size: 128, count: count)
        _ = try concurrentMap(writer.chunkCount, workers: ProcessInfo.processInfo.activeProcessorCount) { k in
            let range = (k * PatchSet.chunkPatches)..<min(count, (k + 1) * PatchSet.chunkPatches)
            try writer.writeChunk(k, patches: range.map { i in
                let shift = (i / (1024 * 8)) % 16
                return Dihedral.apply(sources[i % 1024].crop(x: shift, y: (shift * 7) % 16, width: 128, height: 128), orientation: (i / 1024) % 8)
            })
        }
        let records = (0..<count).map { i in
            PatchRecord(slide: "bench-\(i % 64)", x: places[i % 1024].x + 64, y: places[i % 1024].y + 64,
                        labels: ["tissue": slide.tissueClass(x: Double(places[i % 1024].x + 64), y: Double(places[i % 1024].y + 64)) == .tumour ? "tumour" : "stroma"])
        }
        try writer.finish(records: records, tasks: [PatchTask(name: "tissue", kind: .classification, classes: ["stroma", "tumour"])], mode: "training", mpp: 0.5)
    }

    /// The process's peak resident set, MB.
    static func peakRSS() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}

/// The two halves of compression measured apart on one slide, for the bound a compressor with
/// reading and encoding sharing the cores can reach: 1 / (1/encode + 1/read).
struct BenchCompressBound: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress-bound",
        abstract: "Tile reading alone and encoding alone on a slide's tissue cells (the compressor's bound)."
    )

    @Option(help: "The slide.") var slide: String
    @Option(help: "The encoder's Model folder (nic output PIPELINE NODE model).") var model: String
    @Option(help: "µm/px of the patches.") var mpp = 0.5
    @Option(help: "Tissue fraction for a cell to be encoded.") var minTissue = 0.6
    @Option(help: "Patches encoded for the encoding rate.") var encodePatches = 2048
    @Option(help: "Threads (default: every core).") var threads: Int?

    func run() throws {
        let cores = threads ?? ProcessInfo.processInfo.activeProcessorCount
        let compute = ComputeContext(threads: cores)
        let encoder = try EncoderModel(folder: URL(fileURLWithPath: model))
        let size = encoder.info.patchSize
        let opened = try Slide(path: slide)
        let grid = TileGrid(slide: opened, mpp: mpp, size: size, mask: try TissueDetector().detect(opened))
        let cells = grid.tissueCells(minTissue: minTissue)
        // Reading: every tissue cell once, one read per cell on `cores` workers (as the compressor reads).
        let read = Stopwatch()
        let sample = Locked([RGBImage]())
        _ = try compute.run {
            try concurrentMap(cells.count, workers: cores) { i -> Int in
                let origin = grid.origin(column: cells[i].column, row: cells[i].row)
                let tile = try opened.readRegion(x: origin.x, y: origin.y, width: size, height: size, mpp: mpp)
                if i % max(1, cells.count / 256) == 0 { sample.withLock { if $0.count < 256 { $0.append(tile) } } }
                return Int(tile.pixels[0])
            }
        }
        let readRate = Double(cells.count) / read.seconds
        // Encoding: batches of 256 of those tiles, `encodePatches` in all.
        let tiles = sample.current
        guard !tiles.isEmpty else { throw ValidationError("\(slide): no tissue cell") }
        let batch = (0..<256).map { tiles[$0 % tiles.count] }
        _ = try compute.run { try encoder.encode(batch) }
        let encode = Stopwatch()
        var done = 0
        while done < encodePatches {
            _ = try compute.run { try encoder.encode(batch) }
            done += batch.count
        }
        let encodeRate = Double(done) / encode.seconds
        let bound = 1 / (1 / encodeRate + 1 / readRate)
        print(String(format: "%d tissue cells: reading %.0f tiles/s, encoding %.0f patches/s, bound 1/(1/encode + 1/read) %.0f patches/s (%d threads)",
                     cells.count, readRate, encodeRate, bound, cores))
        print(String(format: "JSON {\"cells\": %d, \"read_per_s\": %.1f, \"encode_per_s\": %.1f, \"bound_per_s\": %.1f}", cells.count, readRate, encodeRate, bound))
    }
}

/// What each op of an augmentation recipe costs per patch (each applied alone, always), and the
/// recipe as drawn, on one thread: where a loader's augmentation time goes.
struct BenchAugment: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "augment",
        abstract: "Milliseconds per 128 px patch of each op of a recipe (applied alone, p = 1) and of the whole recipe, one thread."
    )

    @Argument(help: "The recipe, e.g. nodes/augment/heavy.yaml.") var recipe = "nodes/augment/heavy.yaml"
    @Option(help: "Patches per measurement.") var patches = 256

    func run() throws {
        let parsed = try BenchLoader.recipe(file: recipe)
        let slide = SyntheticSlide(SyntheticSlideSpec(width: 4096, height: 4096, seed: 5))
        let sources = (0..<16).map { i in RGBImage(width: 128, height: 128, pixels: slide.render(x: 1024 + 128 * i, y: 2048, width: 128, height: 128)) }
        func time(_ augmenter: Augmenter) -> Double {
            var checksum = 0
            let clock = Stopwatch()
            for i in 0..<patches { checksum &+= Int(augmenter.apply(to: sources[i % sources.count], epoch: 1, index: i).pixels[i % 100]) }
            if checksum == -1 { print("") }  // keeps the work observable
            return clock.seconds * 1000 / Double(patches)
        }
        for op in parsed.ops {
            var always = op
            always.probability = 1
            let ms = time(Augmenter(recipe: AugmentationRecipe(name: op.kind.rawValue, ops: [always]), seed: 2))
            print(String(format: "%@ %6.2f ms/patch alone (p = 1; the recipe draws it with p = %.2f: %.2f ms/patch expected)",
                         op.kind.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0) as NSString, ms, op.probability, ms * op.probability))
        }
        print(String(format: "recipe '%@' as drawn: %.2f ms/patch; converting alone (no op): %.2f ms/patch", parsed.name as NSString,
                     time(Augmenter(recipe: parsed, seed: 2)), time(Augmenter(recipe: AugmentationRecipe(name: "none", ops: []), seed: 2))))
    }
}
