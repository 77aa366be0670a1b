import Dispatch
import Flow
import Foundation
import NICBasics
import Neural
import Slides
import TensorStore

/// Neural Image Compression: slides an encoder over every slide with stride = patch size, turning a
/// W × H slide into a (W/size) × (H/size) × C grid of codes (tissue positions only; zeros elsewhere).
///
/// Memory stays bounded whatever the slide size: the grid is produced in bands of `band_rows` grid
/// rows, each encoded in batches of `batch_size` tissue cells and written as zarr chunks once
/// complete. A reader thread reads the next batches' tiles while the encoder works; both share the
/// node's thread budget (`SharedBudget`: together they never run more workers than it), and whichever
/// waits for the other holds no thread, so the other takes them all. Encoding starts once the first
/// batch is read. `time.json` (per slide in its cache item, summed over the slides in the output) says
/// where the time went. Each slide is its own cache item (keyed by the slide's content,
/// the encoder and the params), so adding slides to a cohort compresses only the new ones.
public struct Compressor: NodeType {
    public static let name = "compressor"
    public static let version = 1
    public static let summary = "Compresses every slide into a grid of patch codes (float16 zarr), optionally in all 8 orientations."
    public static let inputs = [
        PortSpec("slides", .slideSet, doc: "the cohort"),
        PortSpec("encoder", .model, doc: "the patch encoder"),
    ]
    public static let splitsIntoItems = true
    /// `stain` and `stain_reference` came after caches of compressed cohorts existed: unset, they leave keys as they were.
    public static let outputs = [PortSpec("grids", .gridSet, doc: "gridset.json, slides.csv, grids/<slide>/o<k> and mask, previews")]
    /// The dihedral orientations each slide is encoded in.
    public enum Orientations: String, ParamChoice {
        case one = "1", eight = "8"
        var count: Int { self == .one ? 1 : 8 }
    }

    public struct Params: NodeParams {
        @Param(doc: "µm/px at which patches are read; default: the µm/px the encoder was trained at (0.5 for models that do not record it). Another value is an error unless 'magnification_change' is set", .within(0.05, 100), .unkeyedAtDefault)
        var mpp: Double? = nil
        @Param(doc: "true: compress at 'mpp' although the encoder was trained at another µm/px (a deliberate magnification change)", .unkeyedAtDefault)
        var magnificationChange = false
        @Param(doc: "a grid cell is encoded when this fraction of it is tissue", .fraction) var minTissue = 0.6
        @Param(doc: "8: also encode the 7 other dihedral orientations (augmented compression)") var orientations = Orientations.one
        @Param(doc: "patches per encoder call", .within(1, 65536)) var batchSize = 256
        @Param(doc: "grid rows per band (bounds memory) and zarr chunk height", .within(1, 4096)) var bandRows = 32
        @Param(doc: "slides to draw thumbnails and false-colour grids for", .atLeast(0)) var previews = 4
        @Param(doc: "encode each cell at shifts × shifts windows of the patch size, moved by (i + ½)/shifts − ½ of a cell in x and y, and store the mean of their codes: an object anywhere in a cell then lies near the centre of one window, as an encoder trained on objects at patch centres sees them. shifts² times the encoding; 1: one window per cell, the paper's", .within(1, 8), .unkeyedAtDefault)
        var shifts = 1
        @Param(doc: "with shifts: how a cell's windows' codes are pooled. mean: their mean. max: each channel's largest value, so what one window sees (an object at its centre) is kept at full strength rather than diluted by the shifts² − 1 windows that miss it", .unkeyedAtDefault)
        var shiftPool = ShiftPool.mean
        @Param(doc: "stain normalisation of every tile before encoding: none, macenko or reinhard, to 'stain_reference' (each slide's own stain statistics are fitted once on its whole image at 8 µm/px)", .unkeyedAtDefault)
        var stain = StainOption.none
        @Param(doc: "with 'stain': the slide (any format nic reads) whose stain the tiles are normalised to, e.g. a slide of the encoder's training cohort", .unkeyedAtDefault)
        var stainReference: FileParam? = nil
        public init() {}
    }

    public enum ShiftPool: String, ParamChoice { case mean, max }

    public enum StainOption: String, ParamChoice {
        case none, macenko, reinhard
        var method: StainNormalization.Method { StainNormalization.Method(rawValue: rawValue) ?? .none }
    }

    public init() {}

    /// Params that mean nothing without another: refused at `nic validate` rather than ignored.
    public static func problems(_ params: Params) -> [ParamProblem] {
        var found: [ParamProblem] = []
        if params.shiftPool != .mean && params.shifts == 1 {
            found.append(ParamProblem("shift_pool", "pools the windows of 'shifts', and shifts is 1 (one window per cell, nothing to pool); set shifts to 2 or more, or drop shift_pool"))
        }
        return found + stainProblems(params.stain, reference: params.stainReference)
    }

    /// `stain` and `stain_reference` go together (here and in the tile sampler).
    static func stainProblems(_ stain: StainOption, reference: FileParam?) -> [ParamProblem] {
        if stain == .none, reference != nil {
            return [ParamProblem("stain_reference", "is the slide 'stain' normalises to, and stain is none; set stain to macenko or reinhard, or drop stain_reference")]
        }
        if stain != .none, reference == nil {
            return [ParamProblem("stain", "'stain: \(stain.rawValue)' normalises to a reference slide; give its path as stain_reference")]
        }
        return []
    }

    public func run(_ context: NodeContext, _ params: Params) throws {
        let slideSet = try SlideSet.read(from: try context.input("slides"))
        let encoderFolder = try context.input("encoder")
        let model = try EncoderModel(folder: encoderFolder)
        let mpp = try Self.magnification(params, trainedAt: model.info.mpp, context: context), size = model.info.patchSize
        let orientations = params.orientations.count
        let minTissue = params.minTissue
        let batchSize = params.batchSize, bandRows = params.bandRows
        let stain = try Self.stainTarget(params.stain, reference: params.stainReference)
        let out = try context.output("grids")
        var infos: [GridSet.SlideInfo] = []
        var reused = 0
        var time = CompressionTime()
        // Every slide is an item: a cluster executor compresses the missing ones as a job array first.
        let identities = try slideSet.slides.map { entry in
            try context.checkCancellation()
            return try context.contentHash(of: URL(fileURLWithPath: entry.path)) + "|mpp=\(entry.mpp)|\(entry.mppSource)"
        }
        let names = slideSet.slides.map { URL(fileURLWithPath: $0.path).lastPathComponent }
        let items = try context.cachedItems(identities, names: names, excludingInputs: ["slides"]) { index, folder in
            try compress(slideSet.slides[index], model: model, into: folder, mpp: mpp, size: size, orientations: orientations, minTissue: minTissue,
                         shifts: params.shifts, shiftPool: params.shiftPool, batchSize: batchSize, bandRows: bandRows, previews: params.previews, stain: stain, context: context, slideIndex: index, slideCount: slideSet.slides.count)
        }
        for (index, (entry, item)) in zip(slideSet.slides, items).enumerated() {
            if item.reused { reused += 1 }
            // Every slide's own time, whoever compressed it (this process, an earlier run, an array task).
            time.add(try JSONDecoder().decode(CompressionTime.self, from: Data(contentsOf: item.folder.appendingPathComponent("time.json"))))
            let info = try JSONDecoder().decode(GridSet.SlideInfo.self, from: Data(contentsOf: item.folder.appendingPathComponent("slide.json")))
            infos.append(info)
            try context.link(contentsOf: item.folder.appendingPathComponent("grid"), into: out.appendingPathComponent("grids").appendingPathComponent(entry.stem))
            if index < params.previews {
                try context.link(contentsOf: item.folder.appendingPathComponent("preview"), into: out.appendingPathComponent("preview"))
            }
            context.progress(index + 1, of: slideSet.slides.count, unit: "slides", message: reused > 0 ? "\(reused) from cache" : nil)
        }
        try slideSet.write(to: out)
        var info = GridSet.Info(codeSize: model.info.codeSize, size: size, mpp: mpp, orientations: orientations, slides: infos)
        if params.shifts > 1 {
            info.shifts = params.shifts
            if params.shiftPool != .mean { info.shiftPool = params.shiftPool.rawValue }
        }
        try info.write(to: out)
        var captions: [String: String] = [:]
        for slide in infos.prefix(params.previews) {
            captions["\(slide.stem).png"] = "\(slide.stem): thumbnail"
            captions["\(slide.stem)-pca.png"] = "\(slide.stem): \(slide.columns)×\(slide.rows) grid, first 3 principal components of the \(model.info.codeSize) channels as RGB"
        }
        if !captions.isEmpty {
            try JSONSerialization.data(withJSONObject: captions, options: [.sortedKeys]).write(to: out.appendingPathComponent("preview/captions.json"))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(time).write(to: out.appendingPathComponent("time.json"))
        context.progress(slideSet.slides.count, of: slideSet.slides.count, unit: "slides",
                         message: String(format: "%d patches in %.1f s: reading %.1f s (waited for %.1f s), encoding %.1f s, writing %.1f s, tissue %.1f s",
                                         time.patches, time.total, time.reading, time.waitingForTiles, time.encoding, time.writing, time.tissue),
                         metrics: time.metrics)
    }

    /// The µm/px to read patches at: the encoder's own unless the params say otherwise on purpose.
    /// Applying an encoder at another magnification than it learnt is a silent error otherwise.
    static func magnification(_ params: Params, trainedAt: Double?, context: NodeContext) throws -> Double {
        guard let trainedAt else {
            if params.mpp == nil { context.warn("the encoder does not record the µm/px it was trained at (a model from before nic recorded it); compressing at 0.5 µm/px, give 'mpp' to choose") }
            return params.mpp ?? 0.5
        }
        guard let mpp = params.mpp else { return trainedAt }
        if abs(mpp - trainedAt) > 1e-9 * max(mpp, trainedAt), !params.magnificationChange {
            throw NodeError("param 'mpp': \(mpp) µm/px, but the encoder was trained on patches at \(trainedAt) µm/px; leave 'mpp' out to use the encoder's, or set 'magnification_change: true' to compress at another magnification on purpose")
        }
        return mpp
    }

    /// The reference's stain statistics, or nil without normalisation.
    static func stainTarget(_ stain: StainOption, reference: FileParam?) throws -> (method: StainNormalization.Method, target: StainNormalization.Target)? {
        guard stain != .none else { return nil }
        guard let reference else {
            throw NodeError("param 'stain_reference': 'stain: \(stain.rawValue)' normalises to a reference slide; give its path")
        }
        do {
            return (stain.method, try StainNormalization.fit(stain.method, slide: try Slide(url: reference.url)))
        } catch {
            throw NodeError("param 'stain_reference': \(reference.url.path): \(error)")
        }
    }

    /// One slide → `grid/o<k>`, `grid/mask`, `slide.json`, `preview/` in `folder`.
    func compress(_ entry: SlideEntry, model: EncoderModel, into folder: URL, mpp: Double, size: Int, orientations: Int, minTissue: Double,
                  shifts: Int = 1, shiftPool: ShiftPool = .mean, batchSize: Int, bandRows: Int, previews: Int, stain: (method: StainNormalization.Method, target: StainNormalization.Target)?,
                  context: NodeContext, slideIndex: Int, slideCount: Int) throws {
        let started = Stopwatch()
        var time = CompressionTime()
        let slide = try entry.open()
        let stainSource: StainNormalization.Target
        do { stainSource = try stain.map { try StainNormalization.fit($0.method, slide: slide) } ?? .none }
        catch { throw NodeError("\(entry.path): stain normalisation: \(error)") }
        let mask = try TissueDetector().detect(slide)
        time.tissue = started.seconds
        let grid = TileGrid(slide: slide, mpp: mpp, size: size, mask: mask)
        let rows = grid.rows, columns = grid.columns, c = model.info.codeSize
        guard rows > 0, columns > 0 else { throw NodeError("\(entry.path): smaller than one \(size) px patch at \(mpp) µm/px") }
        let cells = grid.tissueCells(minTissue: minTissue)
        let gridFolder = folder.appendingPathComponent("grid")
        let chunkRows = min(bandRows, rows), chunkColumns = min(64, columns)
        let writers = try (0..<orientations).map {
            try ZarrArrayWriter(at: gridFolder.appendingPathComponent("o\($0)"), shape: [rows, columns, c],
                                chunkShape: [chunkRows, chunkColumns, c], dataType: .float16)
        }
        var maskValues = [UInt8](repeating: 0, count: rows * columns)
        for cell in cells { maskValues[cell.row * columns + cell.column] = 1 }
        try ZarrArrayWriter(at: gridFolder.appendingPathComponent("mask"), shape: [rows, columns], chunkShape: [chunkRows, chunkColumns], dataType: .uint8)
            .write(maskValues)

        // Bands of grid rows, each encoded in batches of `batchSize` of its tissue cells (in every
        // orientation) and written when complete. A reader thread reads the next batches meanwhile;
        // reading and encoding share the node's thread budget.
        let bands = (rows + chunkRows - 1) / chunkRows
        let cellsByBand = (0..<bands).map { b in cells.filter { $0.row / chunkRows == b } }
        // With shifts, a batch holds shifts² windows per cell: fewer cells, the same memory.
        let cellsPerBatch = max(1, batchSize / (shifts * shifts))
        let batches = (0..<bands).flatMap { b in
            stride(from: 0, to: cellsByBand[b].count, by: cellsPerBatch).map { Array(cellsByBand[b][$0..<min(cellsByBand[b].count, $0 + cellsPerBatch)]) }
        }
        let budget = SharedBudget(stages: 2, total: { [compute = context.compute] in compute.threads })
        let tiles = TileReader(slide: slide, grid: grid, mpp: mpp, size: size, shifts: shifts, budget: budget, stage: Self.reading)
        tiles.start(batches)
        defer { tiles.stop() }
        let encodeCompute = ComputeContext(threads: 1)
        var codes = (0..<orientations).map { _ in [Float16](repeating: 0, count: chunkRows * columns * c) }
        var allCodes: [[Float]] = []  // orientation 0 codes of tissue cells, for the preview's PCA
        let previewWanted = slideIndex < previews
        var done = 0
        for band in 0..<bands {
            try context.checkCancellation()
            for k in 0..<orientations { for i in codes[k].indices { codes[k][i] = 0 } }
            for start in stride(from: 0, to: cellsByBand[band].count, by: cellsPerBatch) {
                let waited = Stopwatch()
                var images = try tiles.next()  // holds no thread while it waits
                if let stain { images = try images.map { try StainNormalization.apply($0, from: stainSource, to: stain.target) } }
                time.waitingForTiles += waited.seconds
                if time.firstEncode == 0 { time.firstEncode = started.seconds }
                budget.acquire(Self.encoding, most: 1)
                let clock = Stopwatch()
                let bandCells = Array(cellsByBand[band][start..<min(cellsByBand[band].count, start + cellsPerBatch)])
                let windows = shifts * shifts  // images of a cell, consecutive
                for k in 0..<orientations {
                    let patches = images.map { Dihedral.apply($0, orientation: k) }
                    encodeCompute.setThreads(budget.take(Self.encoding, most: context.threads))
                    let encoded = try encodeCompute.run { try model.encode(patches) }
                    budget.release(Self.encoding, keep: 1)
                    for (j, cell) in bandCells.enumerated() {
                        let first = j * windows * c
                        var code = Array(encoded.data[first..<(first + c)])
                        for w in 1..<max(1, windows) {
                            let base = (j * windows + w) * c
                            switch shiftPool {
                            case .mean: for ch in 0..<c { code[ch] += encoded.data[base + ch] }
                            case .max: for ch in 0..<c { code[ch] = max(code[ch], encoded.data[base + ch]) }
                            }
                        }
                        if windows > 1, shiftPool == .mean { for ch in 0..<c { code[ch] /= Float(windows) } }
                        let target = ((cell.row - band * chunkRows) * columns + cell.column) * c
                        for ch in 0..<c { codes[k][target + ch] = Float16(code[ch]) }
                        if k == 0 && previewWanted { allCodes.append(code) }
                    }
                }
                time.encoding += clock.seconds
                budget.release(Self.encoding)
                done += bandCells.count
            }
            budget.acquire(Self.encoding, most: 1)
            let clock = Stopwatch()
            for k in 0..<orientations {
                try Self.writeBand(band, codes: codes[k], rows: rows, columns: columns, chunkRows: chunkRows, chunkColumns: chunkColumns, channels: c, to: writers[k])
            }
            time.writing += clock.seconds
            budget.release(Self.encoding)
            // Progress counts slides (the node's unit of work); the patches of this one go in the message.
            context.progress(slideIndex, of: slideCount, unit: "slides", message: "\(entry.stem): \(done)/\(cells.count) patches")
        }
        time.reading = tiles.readingSeconds
        time.mostThreads = budget.peak
        time.patches = cells.count * orientations * shifts * shifts
        let info = GridSet.SlideInfo(stem: entry.stem, rows: rows, columns: columns, tissueCells: cells.count)
        // Sorted keys: the same slide gives the same bytes in every process (unsorted, the order
        // follows the process's hash seed).
        let sorted = JSONEncoder()
        sorted.outputFormatting = [.sortedKeys]
        try sorted.encode(info).write(to: folder.appendingPathComponent("slide.json"))
        time.total = started.seconds
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(time).write(to: folder.appendingPathComponent("time.json"))
        let preview = folder.appendingPathComponent("preview")
        try FileManager.default.createDirectory(at: preview, withIntermediateDirectories: true)
        if previewWanted {
            let thumbnailMPP = max(slide.mpp, Double(slide.width) * slide.mppX / 320)
            try PNG.write(try slide.readWhole(mpp: thumbnailMPP), to: preview.appendingPathComponent("\(entry.stem).png"))
            try PNG.write(Self.falseColour(codes: allCodes, cells: cells, rows: rows, columns: columns), to: preview.appendingPathComponent("\(entry.stem)-pca.png"))
        }
    }

    /// Writes a band's codes ([chunkRows, columns, channels]) as its zarr chunks, in the full chunk
    /// shape: rows past the grid stay zero.
    static func writeBand(_ band: Int, codes: [Float16], rows: Int, columns: Int, chunkRows: Int, chunkColumns: Int, channels c: Int,
                          to writer: ZarrArrayWriter) throws {
        for chunkColumn in 0..<((columns + chunkColumns - 1) / chunkColumns) {
            var chunk = [Float16](repeating: 0, count: chunkRows * chunkColumns * c)
            for r in 0..<chunkRows where band * chunkRows + r < rows {
                for col in 0..<chunkColumns where chunkColumn * chunkColumns + col < columns {
                    let source = (r * columns + chunkColumn * chunkColumns + col) * c
                    let target = (r * chunkColumns + col) * c
                    for ch in 0..<c { chunk[target + ch] = codes[source + ch] }
                }
            }
            try writer.writeChunk(at: [band, chunkColumn, 0], values: chunk)
        }
    }

    /// The first three principal components of the tissue cells' codes as RGB (2nd–98th percentile
    /// stretched), background white, each cell drawn as a square of a few pixels.
    static func falseColour(codes: [[Float]], cells: [(column: Int, row: Int)], rows: Int, columns: Int) -> RGBImage {
        let scale = max(1, min(8, 320 / max(rows, columns)))
        var image = RGBImage(width: columns * scale, height: rows * scale, fill: 255)
        guard codes.count >= 2, let c = codes.first?.count else { return image }
        let n = Double(codes.count)
        var mean = [Double](repeating: 0, count: c)
        for code in codes { for k in 0..<c { mean[k] += Double(code[k]) / n } }
        var covariance = [Double](repeating: 0, count: c * c)
        for code in codes {
            for a in 0..<c {
                let da = Double(code[a]) - mean[a]
                for b in a..<c { covariance[a * c + b] += da * (Double(code[b]) - mean[b]) }
            }
        }
        for a in 0..<c { for b in a..<c { covariance[b * c + a] = covariance[a * c + b] } }
        // Power iteration with deflation: three leading eigenvectors are all we need.
        var components: [[Double]] = []
        for p in 0..<min(3, c) {
            var v = (0..<c).map { Double(($0 * 7 + p * 13) % 11) - 5 + 0.1 }
            for _ in 0..<200 {
                var w = [Double](repeating: 0, count: c)
                for a in 0..<c { var s = 0.0; for b in 0..<c { s += covariance[a * c + b] * v[b] }; w[a] = s }
                for u in components { let d = zip(w, u).reduce(0) { $0 + $1.0 * $1.1 }; for a in 0..<c { w[a] -= d * u[a] } }
                let norm = w.reduce(0) { $0 + $1 * $1 }.squareRoot()
                guard norm > 1e-12 else { break }
                v = w.map { $0 / norm }
            }
            components.append(v)
        }
        var projected = [[Double]](repeating: [], count: components.count)
        for (p, u) in components.enumerated() {
            projected[p] = codes.map { code in (0..<c).reduce(0) { $0 + (Double(code[$1]) - mean[$1]) * u[$1] } }
        }
        let ranges = projected.map { values -> (Double, Double) in
            let sorted = values.sorted()
            return (sorted[Int(Double(sorted.count - 1) * 0.02)], sorted[Int(Double(sorted.count - 1) * 0.98)])
        }
        for (i, cell) in cells.enumerated() where i < codes.count {
            var rgb: [UInt8] = [128, 128, 128]
            for p in 0..<projected.count {
                let (lo, hi) = ranges[p]
                let t = hi > lo ? (projected[p][i] - lo) / (hi - lo) : 0.5
                rgb[p] = UInt8(max(0, min(255, (t * 255).rounded())))
            }
            for dy in 0..<scale {
                for dx in 0..<scale {
                    let o = ((cell.row * scale + dy) * image.width + cell.column * scale + dx) * 3
                    image.pixels[o] = rgb[0]; image.pixels[o + 1] = rgb[1]; image.pixels[o + 2] = rgb[2]
                }
            }
        }
        return image
    }
}
