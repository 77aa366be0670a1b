import Flow
import NICBasics
import Foundation
import Slides

/// `tile_sampler`: patches from slides at a target µm/px, into a PatchSet.
///
/// - training: around the annotation points of patches.csv (`slide, x, y, task, label`), per task
///   `per_task` patches; classification tasks get equal counts per class (scarce classes are drawn with
///   replacement — augmentation makes the repeats differ), regression tasks a uniform draw. Seeded.
/// - grid: every cell of the stride = size grid whose tissue fraction exceeds `min_tissue` (tissue mask
///   by `TissueDetector` at `tissue_mpp`), row-major per slide: the compressor's input.
public struct TileSampler: NodeType {
    public static let name = "tile_sampler"
    public static let version = 2  // 2: a binary task's negatives are not shifted
    public static let summary = "Reads patches at a target µm/px around annotations (training) or on the tissue grid (grid) into a PatchSet."
    public static let inputs = [
        PortSpec("slides", .slideSet, doc: "the cohort"),
        PortSpec("annotations", .table, optional: true, doc: "patches.csv (slide, x, y, task, label) as a Table; training mode only"),
    ]
    public static let outputs = [PortSpec("patches", .patchSet, doc: "patches (zarr uint8 N×size×size×3), patches.csv, labels/<task>")]
    /// `stain` and `stain_reference` came after caches of tiles existed: unset, they leave keys as they were.
    public static let paramsAddedLater: Set<String> = ["stain", "stain_reference"]
    public enum Mode: String, ParamChoice { case training, grid }

    public struct Params: NodeParams {
        @Param(doc: "training: around annotations; grid: every tissue cell") var mode = Mode.grid
        @Param(doc: "µm per pixel of the patches", .within(0.05, 100)) var mpp = 0.5
        @Param(doc: "patch width and height in pixels", .within(8, 4096)) var size = 128
        @Param(doc: "training: patches per task (split equally over classes)", .within(1, 10_000_000)) var perTask = 1000
        @Param(doc: "training: tasks to use (default: all in the annotations)") var tasks: [String] = []
        @Param(doc: "training: tasks whose labels are numbers to regress (default: numeric labels with more than 10 distinct values)")
        var regression: [String] = []
        @Param(doc: "training: shift classification patches by up to this fraction of their size in x and y (seeded), so an encoder learns an object anywhere in a patch as a grid of a slide shows it, not only at the centre where it was annotated. A binary task (labels 0 and 1) shifts only its positives: they are centred on the object, which stays inside, while a negative (already at an arbitrary place) could be moved onto an unannotated object. Regression labels (counts in the exact patch) are never shifted", .within(0, 0.5))
        var jitter = 0.0
        @Param(doc: "seed of the training draw and of grid subsampling") var seed = 1
        @Param(doc: "grid: minimum tissue fraction of a cell", .fraction) var minTissue = 0.6
        @Param(doc: "grid: µm/px of the tissue mask", .within(0.05, 1000)) var tissueMpp = 4.0
        @Param(doc: "grid: keep at most this many cells per slide, evenly drawn (0: all)", .atLeast(0)) var maxPerSlide = 0
        @Param(doc: "a level within this relative µm/px of the target is read without resampling", .within(0, 1)) var tolerance = 0.02
        @Param(doc: "stain normalisation of every patch: none, macenko or reinhard, to 'stain_reference' (each slide's own statistics fitted once on its whole image at 8 µm/px), as the compressor's 'stain'")
        var stain = Compressor.StainOption.none
        @Param(doc: "with 'stain': the slide whose stain the patches are normalised to")
        var stainReference: FileParam? = nil
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let slides = try SlideSet.read(from: try context.input("slides"))
        let mpp = params.mpp, size = params.size
        let seed = UInt64(bitPattern: Int64(params.seed))
        let records: [PatchRecord], tasks: [PatchTask]
        var grids: [String: TileGrid] = [:]
        let cache = SlideCache(slides)
        if params.mode == .training {
            guard context.hasInput("annotations") else { throw NodeError("training mode needs the 'annotations' input (patches.csv as a table)") }
            let table = try CSVTable.fromPort(try context.input("annotations"))
            (records, tasks) = try TileSampler.planTraining(
                table, source: "annotations (patches.csv)", slides: cache, perTask: params.perTask, only: params.tasks,
                regression: Set(params.regression), seed: seed, size: size, mpp: mpp, jitter: params.jitter)
        } else {
            var detector = TissueDetector()
            detector.mpp = params.tissueMpp
            var grid: [[String]] = []
            (records, grid, grids) = try TileSampler.planGrid(slides: cache, detector: detector, size: size, mpp: mpp, minTissue: params.minTissue,
                                                       maxPerSlide: params.maxPerSlide, seed: seed) { done in
                try context.checkCancellation()
                context.progress(done, of: slides.slides.count, unit: "slides", message: "tissue masks")
            }
            tasks = []
            try CSVTable(columns: ["slide", "columns", "rows", "tissue_fraction", "patches"], rows: grid)
                .write(to: try context.output("patches").appendingPathComponent("grid.csv"))
        }
        guard !records.isEmpty else {
            throw NodeError("no patches: no grid cell of any of the \(slides.slides.count) slides has more than \(params.minTissue) tissue; lower 'min_tissue' or check that the slides hold stained tissue")
        }
        let writer = try PatchSetWriter(folder: try context.output("patches"), size: size, count: records.count)
        var normalise: (@Sendable (String, RGBImage) throws -> RGBImage)?
        if let stain = try Compressor.stainTarget(params.stain, reference: params.stainReference) {
            let sources = Locked<[String: StainNormalization.Target]>([:])
            normalise = { stem, patch in
                let source = try sources.withLock { known -> StainNormalization.Target in
                    if let s = known[stem] { return s }
                    do {
                        let fitted = try StainNormalization.fit(stain.method, slide: try cache.slide(stem))
                        known[stem] = fitted
                        return fitted
                    } catch { throw NodeError("slide '\(stem)': stain normalisation: \(error)") }
                }
                return try StainNormalization.apply(patch, from: source, to: stain.target)
            }
        }
        try TileSampler.read(records, slides: cache, grids: grids, writer: writer, mpp: mpp, tolerance: params.tolerance, threads: context.threads,
                             normalise: normalise) { done in
            try context.checkCancellation()
            context.progress(done, of: records.count, unit: "patches")
        }
        try writer.finish(records: records, tasks: tasks, mode: params.mode.rawValue, mpp: mpp)
    }

    // MARK: Training

    /// A level-0 pixel coordinate from the table: a finite number within what any slide can have
    /// (NaN, infinities and 1e30 are errors naming the cell, never a trap in the Int conversion).
    static func pixelCoordinate(_ text: String, source: String, line: Int, column: Int, name: String) throws -> Int {
        if let value = Int(text) { return value }
        guard let value = Double(text), value.isFinite, abs(value) < 1e12 else {
            throw NodeError("\(source):\(line):\(column): \(name) must be a finite number of level-0 pixels, got '\(text)'")
        }
        return Int(value.rounded())
    }

    /// Checks every annotation (known slide, integer coordinates, patch inside the slide) and draws the
    /// balanced sample. Errors name the table line.
    public static func planTraining(_ table: CSVTable, source: String, slides: SlideCache, perTask: Int, only: [String], regression: Set<String>,
                                    seed: UInt64, size: Int, mpp: Double, jitter: Double = 0) throws -> ([PatchRecord], [PatchTask]) {
        guard perTask > 0 else { throw NodeError("per_task must be positive, got \(perTask)") }
        for c in ["slide", "x", "y", "task", "label"] where table.columnIndex(c) == nil {
            throw NodeError("\(source):1: missing column '\(c)'; expected slide, x, y, task, label; found \(table.columns.joined(separator: ", "))")
        }
        let ci = table.columnIndex
        let (sc, xc, yc, tc, lc) = (ci("slide")!, ci("x")!, ci("y")!, ci("task")!, ci("label")!)  // invariant: all five columns checked just above
        var byTask: [String: [(line: Int, record: PatchRecord, label: String)]] = [:]
        for (n, row) in table.rows.enumerated() {
            let line = n + 2
            let stem = row[sc], task = row[tc], label = row[lc]
            if !only.isEmpty && !only.contains(task) { continue }
            guard slides.set[stem] != nil else {
                throw NodeError("\(source):\(line):\(sc + 1): unknown slide '\(stem)' (not in the slide set of \(slides.set.slides.count) slides)")
            }
            let x = try pixelCoordinate(row[xc], source: source, line: line, column: xc + 1, name: "x")
            let y = try pixelCoordinate(row[yc], source: source, line: line, column: yc + 1, name: "y")
            guard !task.isEmpty else { throw NodeError("\(source):\(line):\(tc + 1): empty task name") }
            guard !label.isEmpty else { throw NodeError("\(source):\(line):\(lc + 1): empty label") }
            do {
                try slides.slide(stem).checkPatch(centreX: x, centreY: y, size: size, mpp: mpp)
            } catch let error as SlideError where error.kind == .outOfBounds {
                throw NodeError("\(source):\(line): patch outside the slide: \(error.reason)")
            }
            byTask[task, default: []].append((line, PatchRecord(slide: stem, x: x, y: y, labels: [task: label]), label))
        }
        for name in only where byTask[name] == nil { throw NodeError("\(source): no annotations for task '\(name)'") }
        guard !byTask.isEmpty else { throw NodeError("\(source): no annotations") }
        var records: [PatchRecord] = []
        var tasks: [PatchTask] = []
        for (t, name) in byTask.keys.sorted().enumerated() {
            let items = byTask[name]!  // invariant: name taken from byTask.keys
            var rng = SplitMix64(seed: seed, t)
            let labels = items.map(\.label)
            let numeric = labels.allSatisfy { Double($0) != nil }
            let distinct = Set(labels)
            let isRegression = regression.contains(name) || (numeric && distinct.count > 10)
            if isRegression {
                guard numeric else {
                    let bad = items.first { Double($0.label) == nil }!
                    throw NodeError("\(source):\(bad.line): task '\(name)' is regression but label '\(bad.label)' is not a number")
                }
                tasks.append(PatchTask(name: name, kind: .regression))
                records += draw(items.map(\.record), count: perTask, rng: &rng)
            } else {
                // Numeric class names sort numerically (0, 1, 2, 10), others alphabetically.
                let classes = distinct.sorted { a, b in
                    if let x = Double(a), let y = Double(b) { return x < y }
                    return a < b
                }
                tasks.append(PatchTask(name: name, kind: .classification, classes: classes))
                for (k, cls) in classes.enumerated() {
                    let quota = perTask / classes.count + (k < perTask % classes.count ? 1 : 0)
                    records += draw(items.filter { $0.label == cls }.map(\.record), count: quota, rng: &rng)
                }
            }
        }
        var rng = SplitMix64(seed: seed, -1)
        records.shuffle(using: &rng)
        if jitter > 0 {
            let classification = tasks.filter { $0.kind == .classification }
            let binary = Set(classification.filter { $0.classes == ["0", "1"] }.map(\.name))
            let shifted = Set(classification.map(\.name))
            func moves(_ labels: [String: String]) -> Bool {
                labels.contains { task, label in shifted.contains(task) && (!binary.contains(task) || label == "1") }
            }
            var shift = SplitMix64(seed: seed, -2)
            for i in records.indices where moves(records[i].labels) {
                let slide = try slides.slide(records[i].slide)
                // Level-0 pixels of the largest shift; the patch stays inside the slide.
                let reachX = jitter * Double(size) * mpp / slide.mppX, reachY = jitter * Double(size) * mpp / slide.mppY
                let halfX = Double(size) * mpp / slide.mppX / 2, halfY = Double(size) * mpp / slide.mppY / 2
                let dx = (Double(shift.next() >> 11) / Double(1 << 53) * 2 - 1) * reachX
                let dy = (Double(shift.next() >> 11) / Double(1 << 53) * 2 - 1) * reachY
                let x = Int((Double(records[i].x) + dx).rounded()), y = Int((Double(records[i].y) + dy).rounded())
                records[i].x = min(Int((Double(slide.width) - halfX).rounded(.down)), max(Int(halfX.rounded(.up)), x))
                records[i].y = min(Int((Double(slide.height) - halfY).rounded(.down)), max(Int(halfY.rounded(.up)), y))
            }
        }
        return (records, tasks)
    }

    /// `count` items: without replacement while possible, then with replacement.
    static func draw(_ items: [PatchRecord], count: Int, rng: inout SplitMix64) -> [PatchRecord] {
        var out: [PatchRecord] = []
        while out.count < count && !items.isEmpty {
            if count - out.count >= items.count {
                out += items.shuffled(using: &rng)
            } else {
                out += items.shuffled(using: &rng).prefix(count - out.count)
            }
        }
        return out
    }

    // MARK: Grid

    public static func planGrid(slides: SlideCache, detector: TissueDetector, size: Int, mpp: Double, minTissue: Double, maxPerSlide: Int,
                                seed: UInt64, progress: (Int) throws -> Void = { _ in }) throws -> ([PatchRecord], [[String]], [String: TileGrid]) {
        var records: [PatchRecord] = []
        var grid: [[String]] = []
        var grids: [String: TileGrid] = [:]
        for (n, entry) in slides.set.slides.enumerated() {
            let slide = try slides.slide(entry.stem)
            let mask = try detector.detect(slide)
            let tileGrid = TileGrid(slide: slide, mpp: mpp, size: size, mask: mask)
            grids[entry.stem] = tileGrid
            var cells = tileGrid.tissueCells(minTissue: minTissue)
            if maxPerSlide > 0 && cells.count > maxPerSlide {
                var rng = SplitMix64(seed: seed, n)
                cells = Array(cells.indices.shuffled(using: &rng).prefix(maxPerSlide).sorted().map { cells[$0] })
            }
            for (c, r) in cells {
                let centre = tileGrid.centre(column: c, row: r)
                records.append(PatchRecord(slide: entry.stem, x: centre.x, y: centre.y, column: c, row: r))
            }
            grid.append([entry.stem, String(tileGrid.columns), String(tileGrid.rows), String(format: "%.4f", mask.tissueFraction), String(cells.count)])
            try progress(n + 1)
        }
        return (records, grid, grids)
    }

    // MARK: Reading

    /// Reads every record's patch (centred on x, y) and writes them chunk by chunk, `threads` readers at a
    /// time. Records with a grid cell of a slide in `grids` are read in blocks of cells (`GridReader`).
    public static func read(_ records: [PatchRecord], slides: SlideCache, grids: [String: TileGrid] = [:], writer: PatchSetWriter, mpp: Double,
                            tolerance: Double, threads: Int, normalise: (@Sendable (String, RGBImage) throws -> RGBImage)? = nil,
                            progress: (Int) throws -> Void = { _ in }) throws {
        let size = writer.size
        for k in 0..<writer.chunkCount {
            let range = (k * PatchSet.chunkPatches)..<min(records.count, (k + 1) * PatchSet.chunkPatches)
            let results = Locked([RGBImage?](repeating: nil, count: range.count))
            var single: [Int] = []
            var byGrid: [String: [Int]] = [:]
            for i in 0..<range.count {
                let r = records[range.lowerBound + i]
                if r.column != nil, r.row != nil, grids[r.slide] != nil { byGrid[r.slide, default: []].append(i) } else { single.append(i) }
            }
            for (stem, indices) in byGrid.sorted(by: { $0.key < $1.key }) {
                let cells = indices.map { (column: records[range.lowerBound + $0].column!, row: records[range.lowerBound + $0].row!) }  // invariant: grid-mode records always carry their cell
                let reader = GridReader(slide: try slides.slide(stem), grid: grids[stem]!, mpp: mpp, size: size, tolerance: tolerance)  // invariant: grid-mode slides each have a grid
                try reader.read(cells, workers: threads) { j, tile in results.withLock { $0[indices[j]] = tile } }
            }
            let singles = single
            let readSingles = try concurrentMap(singles.count, workers: threads) { i in
                let r = records[range.lowerBound + singles[i]]
                let slide = try slides.slide(r.slide)
                let half = Double(size) * mpp / 2
                let x = Int((Double(r.x) - half / slide.mppX).rounded()), y = Int((Double(r.y) - half / slide.mppY).rounded())
                return try slide.readRegion(x: x, y: y, width: size, height: size, mpp: mpp, tolerance: tolerance)
            }
            results.withLock { slots in for (i, image) in zip(singles, readSingles) { slots[i] = image } }
            var patches = results.current.map { $0! }  // invariant: the workers fill every slot or throw
            if let normalise {
                let chunk = patches
                patches = try concurrentMap(chunk.count, workers: threads) { i in try normalise(records[range.lowerBound + i].slide, chunk[i]) }
            }
            try writer.writeChunk(k, patches: patches)
            try progress(range.upperBound)
        }
    }
}

/// Open slides of a SlideSet, shared by reader threads (a `Slide` is thread-safe), opened on first use.
public final class SlideCache: Sendable {
    public let set: SlideSet
    private let open = Locked<[String: Slide]>([:])

    public init(_ set: SlideSet) { self.set = set }

    public func slide(_ stem: String) throws -> Slide {
        try open.withLock { open in
            if let s = open[stem] { return s }
            guard let entry = set[stem] else { throw NodeError("slide '\(stem)' is not in the slide set") }
            do {
                let s = try entry.open()
                open[stem] = s
                return s
            } catch let error as SlideError {
                throw NodeError(error.description)
            }
        }
    }
}
