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
        @Param(doc: "training: for a binary task whose annotations hold positives only (points on objects, label 1, as pathologists annotate mitoses), draw its negatives at tissue points at least this many µm from every annotated point of the task, and bound each positive's shift below it, so no shifted positive can sit where a negative may be drawn. A binary task with negatives of its own (look-alikes, empty fields) keeps them, but bounds its positives' shifts the same way and leaves out a negative closer than this to a positive. 0: negatives must be in the annotations, positives shift by jitter alone", .within(0, 10_000), .unkeyedAtDefault)
        var negativeDistanceUm = 0.0
        @Param(doc: "training, with negative_distance_um: fraction of the drawn negatives taken near an annotated point (at 1-2 times the distance, in the same tissue: the hard cases) rather than anywhere in the tissue", .fraction, .unkeyedAtDefault)
        var nearNegatives = 0.5
        @Param(doc: "training: tasks annotated as points on objects (label 1; label-0 rows are ignored) to learn as counts: each patch is drawn anywhere in the tissue of the annotated slides and labelled with the number of the task's points inside it, a regression task. No negatives are needed and nothing is shifted: an object nobody marked adds noise to a label, not bias, so a head learns how many objects a patch holds wherever they lie in it, as a grid cell of a slide shows them", .unkeyedAtDefault)
        var pointCounts: [String] = []
        @Param(doc: "training, with point_counts: fraction of a count task's patches drawn with one of its points at a uniform place inside (the rest uniformly in the tissue), so the scarce patches holding objects are seen often", .fraction, .unkeyedAtDefault)
        var nearPoints = 0.5
        @Param(doc: "seed of the training draw and of grid subsampling") var seed = 1
        @Param(doc: "grid: minimum tissue fraction of a cell", .fraction) var minTissue = 0.6
        @Param(doc: "grid: µm/px of the tissue mask", .within(0.05, 1000)) var tissueMpp = 4.0
        @Param(doc: "grid: keep at most this many cells per slide, evenly drawn (0: all)", .atLeast(0)) var maxPerSlide = 0
        @Param(doc: "a level within this relative µm/px of the target is read without resampling", .within(0, 1)) var tolerance = 0.02
        @Param(doc: "stain normalisation of every patch: none, macenko or reinhard, to 'stain_reference' (each slide's own statistics fitted once on its whole image at 8 µm/px), as the compressor's 'stain'", .unkeyedAtDefault)
        var stain = Compressor.StainOption.none
        @Param(doc: "with 'stain': the slide whose stain the patches are normalised to", .unkeyedAtDefault)
        var stainReference: FileParam? = nil
        public init() {}
    }

    public init() {}

    public static func problems(_ params: Params) -> [ParamProblem] {
        Compressor.stainProblems(params.stain, reference: params.stainReference)
    }

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
                regression: Set(params.regression), seed: seed, size: size, mpp: mpp, jitter: params.jitter,
                negatives: params.negativeDistanceUm > 0 ? NegativeRule(distanceUM: params.negativeDistanceUm, near: params.nearNegatives) : nil,
                counts: params.pointCounts.isEmpty ? nil : CountRule(tasks: Set(params.pointCounts), nearPoints: params.nearPoints),
                note: { context.warn($0) })
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

    /// Negatives for a binary task annotated with positives only: tissue points at `distanceUM` or more from
    /// every annotated point of the task (a `near` fraction of them at 1-2× that distance from one).
    public struct NegativeRule: Sendable {
        public var distanceUM: Double
        public var near: Double
        public var detector = TissueDetector()
        public init(distanceUM: Double, near: Double = 0.5) { self.distanceUM = distanceUM; self.near = near }
    }

    /// Point tasks learned as counts (`point_counts`): a patch anywhere in the tissue, labelled with the number
    /// of the task's points inside it (a `nearPoints` fraction drawn with a point at a uniform place inside).
    public struct CountRule: Sendable {
        public var tasks: Set<String>
        public var nearPoints: Double
        public var detector = TissueDetector()
        public init(tasks: Set<String>, nearPoints: Double = 0.5) { self.tasks = tasks; self.nearPoints = nearPoints }
    }

    /// Checks every annotation (known slide, integer coordinates, patch inside the slide) and draws the
    /// balanced sample. Errors name the table line.
    ///
    /// The rule for point annotations without negatives (`negatives`): a negative is a tissue point at
    /// distance ≥ D from every annotated point of its task in its slide, and a shifted positive stays at
    /// distance < D from its own point (the jitter draw is scaled radially into the disc of radius
    /// D − 1.5 level-0 px when it reaches beyond, so that rounding to whole pixels cannot cross D). The
    /// two sets never meet: no patch is a positive at one place and a negative at the same place,
    /// whatever an annotator left unmarked. With D ≥ the patch's half
    /// diagonal, no annotated object lies inside a negative patch. Objects nobody marked can still sit in a
    /// negative (the negatives are unlabelled tissue, not known-empty): a head trained so ranks patches
    /// by how likely they hold an object (positive-unlabelled learning), which is what a rate needs.
    /// A binary task that gives negatives of its own follows the same rule: its positives' shifts are
    /// bounded by D, and a given negative closer than D to one of its slide's positives is left out
    /// (`note` says how many).
    public static func planTraining(_ table: CSVTable, source: String, slides: SlideCache, perTask: Int, only: [String], regression: Set<String>,
                                    seed: UInt64, size: Int, mpp: Double, jitter: Double = 0,
                                    negatives: NegativeRule? = nil, counts: CountRule? = nil,
                                    note: (String) -> Void = { _ in }) throws -> ([PatchRecord], [PatchTask]) {
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
        // Annotated points per task and slide, and the tasks whose negatives the rule draws.
        var points: [String: [String: [(x: Int, y: Int)]]] = [:]
        var drawnNegatives: Set<String> = []
        let countTasks = counts?.tasks ?? []
        for name in countTasks.sorted() {
            guard let items = byTask[name] else { throw NodeError("\(source): point_counts: no annotations for task '\(name)'") }
            if let bad = items.first(where: { $0.label != "1" && $0.label != "0" }) {
                throw NodeError("\(source):\(bad.line): task '\(name)' is in point_counts, so its rows must be points labelled 1 (0 rows are ignored), got label '\(bad.label)'")
            }
            guard items.contains(where: { $0.label == "1" }) else {
                throw NodeError("\(source): task '\(name)' is in point_counts but has no point labelled 1")
            }
        }
        for (name, items) in byTask where Set(items.map(\.label)) == ["1"] && !countTasks.contains(name) {
            guard negatives != nil else {
                throw NodeError("\(source): task '\(name)' has positives only (every label is 1, e.g. points on mitoses) and no negatives; list it in 'point_counts' to learn it as the number of points in a patch, or set 'negative_distance_um' so the sampler draws negatives at tissue points that far from every annotated point")
            }
            drawnNegatives.insert(name)
            for item in items { points[name, default: [:]][item.record.slide, default: []].append((item.record.x, item.record.y)) }
        }
        // Binary tasks that give their own negatives (MIDOG's look-alikes, an exhaustive annotator's empty
        // fields) follow the same rule: positives shift less than D, and a given negative closer than D to
        // a mark is dropped, since it would be a positive's shifted place labelled 0.
        var boundedTasks = drawnNegatives
        if let rule = negatives {
            for name in byTask.keys.sorted() where Set(byTask[name]!.map(\.label)) == ["0", "1"] && !countTasks.contains(name) {  // invariant: name taken from byTask.keys
                let items = byTask[name]!  // invariant: as above
                var marks: [String: [(x: Int, y: Int)]] = [:]
                for item in items where item.label == "1" { marks[item.record.slide, default: []].append((item.record.x, item.record.y)) }
                var kept: [(line: Int, record: PatchRecord, label: String)] = []
                for item in items {
                    if item.label == "0", let near = marks[item.record.slide] {
                        let slide = try slides.slide(item.record.slide)
                        let tooClose = near.contains { hypot(Double($0.x - item.record.x) * slide.mppX, Double($0.y - item.record.y) * slide.mppY) < rule.distanceUM }
                        if tooClose { continue }
                    }
                    kept.append(item)
                }
                let dropped = items.count - kept.count
                guard kept.contains(where: { $0.label == "0" }) else {
                    throw NodeError("\(source): task '\(name)': every one of its negatives lies within negative_distance_um (\(rule.distanceUM) µm) of a positive; lower the distance or give negatives elsewhere")
                }
                if dropped > 0 { note("task '\(name)': \(dropped) given negative\(dropped == 1 ? "" : "s") within \(rule.distanceUM) µm of a positive left out (negative_distance_um)") }
                byTask[name] = kept
                boundedTasks.insert(name)
            }
        }
        let annotatedSlides = Array(Set(byTask.values.flatMap { $0.map(\.record.slide) })).sorted()
        var masks: [String: TissueMask] = [:]
        if let detector = !drawnNegatives.isEmpty ? negatives?.detector : !countTasks.isEmpty ? counts?.detector : nil {
            for stem in annotatedSlides {
                do { masks[stem] = try detector.detect(try slides.slide(stem)) } catch let error as SlideError { throw NodeError(error.description) }
            }
        }
        for (t, name) in byTask.keys.sorted().enumerated() {
            var items = byTask[name]!  // invariant: name taken from byTask.keys
            if countTasks.contains(name), let rule = counts {
                var marks: [String: [(x: Int, y: Int)]] = [:]
                for item in items where item.label == "1" { marks[item.record.slide, default: []].append((item.record.x, item.record.y)) }
                var draw = SplitMix64(seed: seed, 2000 + t)
                let drawn = try drawCounts(perTask, near: rule.nearPoints, points: marks, slides: slides, stems: annotatedSlides, masks: masks,
                                           size: size, mpp: mpp, rng: &draw)
                guard !drawn.isEmpty else { throw NodeError("\(source): task '\(name)': no patch of the annotated slides lies in tissue and inside its slide") }
                tasks.append(PatchTask(name: name, kind: .regression))
                records += drawn.map { PatchRecord(slide: $0.slide, x: $0.x, y: $0.y, labels: [name: String($0.count)]) }
                continue
            }
            if drawnNegatives.contains(name), let rule = negatives {
                var draw = SplitMix64(seed: seed, 1000 + t)
                let quota = perTask / 2
                let found = try drawNegatives(quota, rule: rule, points: points[name] ?? [:], slides: slides, stems: annotatedSlides, masks: masks,
                                              size: size, mpp: mpp, rng: &draw)
                guard !found.isEmpty else {
                    throw NodeError("\(source): task '\(name)': no tissue point lies \(rule.distanceUM) µm or more from every annotated point; lower 'negative_distance_um'")
                }
                items += found.map { (line: 0, record: PatchRecord(slide: $0.slide, x: $0.x, y: $0.y, labels: [name: "0"]), label: "0") }
            }
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
            // The bound of a positive's shift (µm) for the tasks whose negatives the rule drew.
            let distance = negatives?.distanceUM
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
                var dx = (Double(shift.next() >> 11) / Double(1 << 53) * 2 - 1) * reachX
                var dy = (Double(shift.next() >> 11) / Double(1 << 53) * 2 - 1) * reachY
                if let distance, records[i].labels.keys.contains(where: boundedTasks.contains) {
                    // µm of the shift, scaled into the disc of the bound: the distance less 1.5 level-0 pixels, the most
                    // that rounding to whole pixels can add. Clamping into the slide below only moves the centre towards
                    // its annotated point, which lies inside the allowed box.
                    let bound = max(0, distance - 1.5 * max(slide.mppX, slide.mppY))
                    let um = hypot(dx * slide.mppX, dy * slide.mppY)
                    if um > bound { dx *= bound / um; dy *= bound / um }
                }
                let x = Int((Double(records[i].x) + dx).rounded()), y = Int((Double(records[i].y) + dy).rounded())
                records[i].x = min(Int((Double(slide.width) - halfX).rounded(.down)), max(Int(halfX.rounded(.up)), x))
                records[i].y = min(Int((Double(slide.height) - halfY).rounded(.down)), max(Int(halfY.rounded(.up)), y))
            }
        }
        return (records, tasks)
    }

    /// `count` patch centres for a point task learned as counts, each with the number of `points` of its slide
    /// inside the patch as the reader reads it (level-0 box from the rounded corner, `size × mpp` µm wide). A
    /// `near` fraction is placed so that a point drawn at random lies at a uniform place inside; the rest are
    /// tissue points (mask) drawn by tissue area. Bounded attempts; fewer when tissue is scarce.
    static func drawCounts(_ count: Int, near: Double, points: [String: [(x: Int, y: Int)]], slides: SlideCache, stems: [String],
                           masks: [String: TissueMask], size: Int, mpp: Double, rng: inout SplitMix64) throws -> [(slide: String, x: Int, y: Int, count: Int)] {
        let tissue = TissueDraw(stems: stems, masks: masks)
        let marked = points.keys.sorted().flatMap { stem in points[stem]!.map { (stem: stem, x: $0.x, y: $0.y) } }  // invariant: keys of points
        var out: [(slide: String, x: Int, y: Int, count: Int)] = []
        var attempts = 0
        while out.count < count && attempts < max(count, 1) * 200 {
            attempts += 1
            let stem: String, x: Double, y: Double
            if !marked.isEmpty && rng.unit() < near {
                let p = marked[Int(rng.next() % UInt64(marked.count))]
                let slide = try slides.slide(p.stem)
                let wide = Double(size) * mpp / slide.mppX, high = Double(size) * mpp / slide.mppY
                stem = p.stem; x = Double(p.x) + (rng.unit() - 0.5) * wide; y = Double(p.y) + (rng.unit() - 0.5) * high
            } else {
                guard let point = tissue.draw(&rng) else { return out }
                stem = point.stem; x = point.x; y = point.y
            }
            let slide = try slides.slide(stem)
            let xi = Int(x.rounded()), yi = Int(y.rounded())
            guard (try? slide.checkPatch(centreX: xi, centreY: yi, size: size, mpp: mpp)) != nil else { continue }
            // The reader's box: its corner rounded as `read` rounds it, its extent size × mpp µm.
            let half = Double(size) * mpp / 2
            let x0 = Double(Int((Double(xi) - half / slide.mppX).rounded())), y0 = Double(Int((Double(yi) - half / slide.mppY).rounded()))
            let x1 = x0 + Double(size) * mpp / slide.mppX, y1 = y0 + Double(size) * mpp / slide.mppY
            let inside = (points[stem] ?? []).reduce(0) { n, p in
                n + (Double(p.x) >= x0 && Double(p.x) < x1 && Double(p.y) >= y0 && Double(p.y) < y1 ? 1 : 0)
            }
            out.append((stem, xi, yi, inside))
        }
        return out
    }

    /// Tissue points of slides' masks drawn by tissue area: a slide in proportion to its tissue pixels, then a
    /// uniform level-0 point in one of them.
    struct TissueDraw {
        private var tissue: [(stem: String, pixels: [Int], mask: TissueMask)] = []
        private var total = 0
        init(stems: [String], masks: [String: TissueMask]) {
            for stem in stems {
                guard let mask = masks[stem] else { continue }
                let pixels = mask.values.indices.filter { mask.values[$0] != 0 }
                if !pixels.isEmpty { tissue.append((stem, pixels, mask)); total += pixels.count }
            }
        }
        var isEmpty: Bool { total == 0 }
        func draw(_ rng: inout SplitMix64) -> (stem: String, x: Double, y: Double)? {
            guard total > 0 else { return nil }
            var k = Int(rng.next() % UInt64(total)), s = 0
            while k >= tissue[s].pixels.count { k -= tissue[s].pixels.count; s += 1 }
            let mask = tissue[s].mask, pixel = tissue[s].pixels[k]
            return (tissue[s].stem, (Double(pixel % mask.width) + rng.unit()) * mask.scaleX, (Double(pixel / mask.width) + rng.unit()) * mask.scaleY)
        }
    }

    /// Up to `count` negatives by the rule: tissue points (mask), patch inside the slide, at ≥ D level-0 µm
    /// from every point of `points` on their slide. Bounded attempts; fewer when tissue is scarce.
    static func drawNegatives(_ count: Int, rule: NegativeRule, points: [String: [(x: Int, y: Int)]], slides: SlideCache, stems: [String],
                              masks: [String: TissueMask], size: Int, mpp: Double, rng: inout SplitMix64) throws -> [(slide: String, x: Int, y: Int)] {
        let tissue = TissueDraw(stems: stems, masks: masks)
        // In slide order: a Dictionary's order changes from process to process, and the draw must not.
        let annotated = points.keys.sorted().flatMap { stem in points[stem]!.map { (stem: stem, x: $0.x, y: $0.y) } }  // invariant: keys of points
        guard !tissue.isEmpty else { return [] }
        var out: [(slide: String, x: Int, y: Int)] = []
        var attempts = 0
        while out.count < count && attempts < max(count, 1) * 200 {
            attempts += 1
            let stem: String, x: Double, y: Double
            let slide: Slide
            if !annotated.isEmpty && rng.unit() < rule.near {
                let p = annotated[Int(rng.next() % UInt64(annotated.count))]
                slide = try slides.slide(p.stem)
                let r = rule.distanceUM * (1 + rng.unit()), t = 2 * Double.pi * rng.unit()
                stem = p.stem; x = Double(p.x) + r * cos(t) / slide.mppX; y = Double(p.y) + r * sin(t) / slide.mppY
            } else {
                guard let point = tissue.draw(&rng) else { return out }
                stem = point.stem; x = point.x; y = point.y
                slide = try slides.slide(stem)
            }
            guard let mask = masks[stem], mask.coverage(x: x, y: y, width: 0, height: 0) > 0 else { continue }
            let xi = Int(x.rounded()), yi = Int(y.rounded())
            guard (try? slide.checkPatch(centreX: xi, centreY: yi, size: size, mpp: mpp)) != nil else { continue }
            let clear = (points[stem] ?? []).allSatisfy { hypot(Double($0.x - xi) * slide.mppX, Double($0.y - yi) * slide.mppY) >= rule.distanceUM }
            if clear { out.append((stem, xi, yi)) }
        }
        return out
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
