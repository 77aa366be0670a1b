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
/// batch is read. `time.json` (per slide in its cache item, summed for the run in the output) says
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
    public static let outputs = [PortSpec("grids", .gridSet, doc: "gridset.json, slides.csv, grids/<slide>/o<k> and mask, previews")]
    /// The dihedral orientations each slide is encoded in.
    public enum Orientations: String, ParamChoice {
        case one = "1", eight = "8"
        var count: Int { self == .one ? 1 : 8 }
    }

    public struct Params: NodeParams {
        @Param(doc: "µm/px at which patches are read", .within(0.05, 100)) var mpp = 0.5
        @Param(doc: "a grid cell is encoded when this fraction of it is tissue", .fraction) var minTissue = 0.6
        @Param(doc: "8: also encode the 7 other dihedral orientations (augmented compression)") var orientations = Orientations.one
        @Param(doc: "patches per encoder call", .within(1, 65536)) var batchSize = 256
        @Param(doc: "grid rows per band (bounds memory) and zarr chunk height", .within(1, 4096)) var bandRows = 32
        @Param(doc: "slides to draw thumbnails and false-colour grids for", .atLeast(0)) var previews = 4
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let slideSet = try SlideSet.read(from: try context.input("slides"))
        let encoderFolder = try context.input("encoder")
        let model = try EncoderModel(folder: encoderFolder)
        let mpp = params.mpp, size = model.info.patchSize
        let orientations = params.orientations.count
        let minTissue = params.minTissue
        let batchSize = params.batchSize, bandRows = params.bandRows
        let out = try context.output("grids")
        var infos: [GridSet.SlideInfo] = []
        var reused = 0
        var time = CompressionTime()
        for (index, entry) in slideSet.slides.enumerated() {
            try context.checkCancellation()
            let identity = try context.contentHash(of: URL(fileURLWithPath: entry.path)) + "|mpp=\(entry.mpp)|\(entry.mppSource)"
            let item = try context.cachedItem(identity, excludingInputs: ["slides"]) { folder in
                try compress(entry, model: model, into: folder, mpp: mpp, size: size, orientations: orientations, minTissue: minTissue,
                             batchSize: batchSize, bandRows: bandRows, previews: params.previews, context: context, slideIndex: index, slideCount: slideSet.slides.count)
            }
            if item.reused {
                reused += 1
            } else {
                time.add(try JSONDecoder().decode(CompressionTime.self, from: Data(contentsOf: item.folder.appendingPathComponent("time.json"))))
            }
            let info = try JSONDecoder().decode(GridSet.SlideInfo.self, from: Data(contentsOf: item.folder.appendingPathComponent("slide.json")))
            infos.append(info)
            try context.link(contentsOf: item.folder.appendingPathComponent("grid"), into: out.appendingPathComponent("grids").appendingPathComponent(entry.stem))
            if index < params.previews {
                try context.link(contentsOf: item.folder.appendingPathComponent("preview"), into: out.appendingPathComponent("preview"))
            }
            context.progress(index + 1, of: slideSet.slides.count, unit: "slides", message: reused > 0 ? "\(reused) from cache" : nil)
        }
        try slideSet.write(to: out)
        let info = GridSet.Info(codeSize: model.info.codeSize, size: size, mpp: mpp, orientations: orientations, slides: infos)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(info).write(to: out.appendingPathComponent("gridset.json"))
        var captions: [String: String] = [:]
        for slide in infos.prefix(params.previews) {
            captions["\(slide.stem).png"] = "\(slide.stem): thumbnail"
            captions["\(slide.stem)-pca.png"] = "\(slide.stem): \(slide.columns)×\(slide.rows) grid, first 3 principal components of the \(model.info.codeSize) channels as RGB"
        }
        if !captions.isEmpty {
            try JSONSerialization.data(withJSONObject: captions, options: [.sortedKeys]).write(to: out.appendingPathComponent("preview/captions.json"))
        }
        try encoder.encode(time).write(to: out.appendingPathComponent("time.json"))
        context.progress(slideSet.slides.count, of: slideSet.slides.count, unit: "slides",
                         message: String(format: "%d patches in %.1f s: reading %.1f s (waited for %.1f s), encoding %.1f s, writing %.1f s, tissue %.1f s",
                                         time.patches, time.total, time.reading, time.waitingForTiles, time.encoding, time.writing, time.tissue),
                         metrics: time.metrics)
    }

    /// One slide → `grid/o<k>`, `grid/mask`, `slide.json`, `preview/` in `folder`.
    func compress(_ entry: SlideEntry, model: EncoderModel, into folder: URL, mpp: Double, size: Int, orientations: Int, minTissue: Double,
                  batchSize: Int, bandRows: Int, previews: Int, context: NodeContext, slideIndex: Int, slideCount: Int) throws {
        let started = Stopwatch()
        var time = CompressionTime()
        let slide = try entry.open()
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
        let batches = (0..<bands).flatMap { b in
            stride(from: 0, to: cellsByBand[b].count, by: batchSize).map { Array(cellsByBand[b][$0..<min(cellsByBand[b].count, $0 + batchSize)]) }
        }
        let budget = SharedBudget(stages: 2, total: { [compute = context.compute] in compute.threads })
        let tiles = TileReader(slide: slide, grid: grid, mpp: mpp, size: size, budget: budget, stage: Self.reading)
        tiles.start(batches)
        defer { tiles.stop() }
        let encodeCompute = ComputeContext(threads: 1)
        var codes = (0..<orientations).map { _ in [Float16](repeating: 0, count: chunkRows * columns * c) }
        var allCodes: [[Float]] = []  // orientation 0 codes of tissue cells, for the preview's PCA
        let previewWanted = slideIndex < previews
        var done = 0, batch = 0
        for band in 0..<bands {
            try context.checkCancellation()
            for k in 0..<orientations { for i in codes[k].indices { codes[k][i] = 0 } }
            for start in stride(from: 0, to: cellsByBand[band].count, by: batchSize) {
                let waited = Stopwatch()
                let images = try tiles.next()  // holds no thread while it waits
                time.waitingForTiles += waited.seconds
                if time.firstEncode == 0 { time.firstEncode = started.seconds }
                budget.acquire(Self.encoding, most: 1)
                let clock = Stopwatch()
                let bandCells = Array(cellsByBand[band][start..<min(cellsByBand[band].count, start + batchSize)])
                precondition(batches[batch].count == bandCells.count, "tile batches out of step")
                batch += 1
                for k in 0..<orientations {
                    let patches = images.map { Dihedral.apply($0, orientation: k) }
                    encodeCompute.setThreads(budget.take(Self.encoding, most: context.threads))
                    let encoded = try encodeCompute.run { try model.encode(patches) }
                    budget.release(Self.encoding, keep: 1)
                    for (j, cell) in bandCells.enumerated() {
                        let target = ((cell.row - band * chunkRows) * columns + cell.column) * c
                        for ch in 0..<c { codes[k][target + ch] = Float16(encoded.data[j * c + ch]) }
                        if k == 0 && previewWanted { allCodes.append(Array(encoded.data[(j * c)..<((j + 1) * c)])) }
                    }
                }
                time.encoding += clock.seconds
                budget.release(Self.encoding)
                done += bandCells.count
            }
            budget.acquire(Self.encoding, most: 1)
            let clock = Stopwatch()
            for k in 0..<orientations {
                // This band's chunks (full chunk shape; rows past the grid stay zero).
                for chunkColumn in 0..<((columns + chunkColumns - 1) / chunkColumns) {
                    var chunk = [Float16](repeating: 0, count: chunkRows * chunkColumns * c)
                    for r in 0..<chunkRows where band * chunkRows + r < rows {
                        for col in 0..<chunkColumns where chunkColumn * chunkColumns + col < columns {
                            let source = (r * columns + chunkColumn * chunkColumns + col) * c
                            let target = (r * chunkColumns + col) * c
                            for ch in 0..<c { chunk[target + ch] = codes[k][source + ch] }
                        }
                    }
                    try writers[k].writeChunk(at: [band, chunkColumn, 0], values: chunk)
                }
            }
            time.writing += clock.seconds
            budget.release(Self.encoding)
            // Progress counts slides (the node's unit of work); the patches of this one go in the message.
            context.progress(slideIndex, of: slideCount, unit: "slides", message: "\(entry.stem): \(done)/\(cells.count) patches")
        }
        time.reading = tiles.readingSeconds
        time.mostThreads = budget.peak
        time.patches = cells.count * orientations
        let info = GridSet.SlideInfo(stem: entry.stem, rows: rows, columns: columns, tissueCells: cells.count)
        try JSONEncoder().encode(info).write(to: folder.appendingPathComponent("slide.json"))
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

extension Compressor {
    /// The stages sharing a slide's thread budget.
    static let reading = 0, encoding = 1
}

/// Where the compression of a slide went (`time.json` beside its grid; the node's `time.json` sums
/// the slides compressed in the run). Reading runs on its own thread beside the encoding;
/// `waiting_for_tiles_s` is the part of it the encoding did not hide.
public struct CompressionTime: Codable, Equatable, Sendable {
    public var total = 0.0
    public var tissue = 0.0
    /// From the start of the slide to its first encoded batch.
    public var firstEncode = 0.0
    public var reading = 0.0
    public var waitingForTiles = 0.0
    /// Orienting, encoding and storing codes.
    public var encoding = 0.0
    public var writing = 0.0
    /// Patches encoded (tissue cells × orientations).
    public var patches = 0
    /// The most threads reading and encoding held at once (never above the node's budget).
    public var mostThreads = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case total = "total_s", tissue = "tissue_s", firstEncode = "first_encode_s", reading = "reading_s"
        case waitingForTiles = "waiting_for_tiles_s", encoding = "encoding_s", writing = "writing_s", patches
        case mostThreads = "most_threads"
    }

    /// Adds another slide's time (the first-encode delay of the first slide is kept).
    mutating func add(_ other: CompressionTime) {
        if patches == 0 && total == 0 { firstEncode = other.firstEncode }
        total += other.total
        tissue += other.tissue
        reading += other.reading
        waitingForTiles += other.waitingForTiles
        encoding += other.encoding
        writing += other.writing
        patches += other.patches
        mostThreads = max(mostThreads, other.mostThreads)
    }

    var metrics: [String: Double] {
        ["time_total_s": total, "time_tissue_s": tissue, "time_first_encode_s": firstEncode, "time_reading_s": reading,
         "time_waiting_for_tiles_s": waitingForTiles, "time_encoding_s": encoding, "time_writing_s": writing,
         "patches_per_s": total > 0 ? Double(patches) / total : 0]
    }
}

/// Reads the tiles of a slide's batches of grid cells, in order, on a thread of its own, up to
/// `depth` batches ahead of the encoder. Each small piece of a batch is read with the threads the
/// shared budget has free, given back after, so an encoder that needs them gets them soon.
final class TileReader: @unchecked Sendable {  // mutable state is guarded by `condition`
    let slide: Slide
    let grid: TileGrid
    let mpp: Double
    let size: Int
    let budget: SharedBudget
    let stage: Int
    let depth: Int
    /// Tiles read per request of threads: short enough that the budget moves between the stages often.
    static let piece = 32

    private let condition = NSCondition()
    private var ready: [Result<[RGBImage], Error>] = []
    private var stopped = false
    private var running = false
    private var reading = 0.0

    init(slide: Slide, grid: TileGrid, mpp: Double, size: Int, budget: SharedBudget, stage: Int, depth: Int = 2) {
        self.slide = slide
        self.grid = grid
        self.mpp = mpp
        self.size = size
        self.budget = budget
        self.stage = stage
        self.depth = max(1, depth)
    }

    func start(_ batches: [[(column: Int, row: Int)]]) {
        condition.lock()
        running = true
        condition.unlock()
        let thread = Thread { [self] in
            defer {
                condition.lock()
                running = false
                condition.broadcast()
                condition.unlock()
            }
            let compute = ComputeContext(threads: 1)
            for batch in batches {
                condition.lock()
                while !stopped && ready.count >= depth { condition.wait() }
                let stop = stopped
                condition.unlock()
                if stop { return }
                let clock = Stopwatch()
                let result = Result { try read(batch, compute: compute) }
                condition.lock()
                reading += clock.seconds
                ready.append(result)
                condition.broadcast()
                condition.unlock()
                if case .failure = result { return }
            }
        }
        thread.name = "nic.tile-reader"
        thread.stackSize = 8 << 20
        thread.start()
    }

    private func read(_ cells: [(column: Int, row: Int)], compute: ComputeContext) throws -> [RGBImage] {
        var images: [RGBImage] = []
        images.reserveCapacity(cells.count)
        for start in stride(from: 0, to: cells.count, by: Self.piece) {
            let piece = Array(cells[start..<min(cells.count, start + Self.piece)])
            let threads = budget.acquire(stage, most: Int.max)
            defer { budget.release(stage) }
            compute.setThreads(threads)
            let (slide, grid, mpp, size) = (self.slide, self.grid, self.mpp, self.size)
            images += try compute.run {
                try concurrentMap(piece.count, workers: threads) { i in
                    let origin = grid.origin(column: piece[i].column, row: piece[i].row)
                    return try slide.readRegion(x: origin.x, y: origin.y, width: size, height: size, mpp: mpp)
                }
            }
        }
        return images
    }

    /// The next batch's tiles, in order; rethrows a read error.
    func next() throws -> [RGBImage] {
        condition.lock()
        defer { condition.unlock() }
        while ready.isEmpty { condition.wait() }
        let result = ready.removeFirst()
        condition.broadcast()
        return try result.get()
    }

    /// Seconds the reader spent reading.
    var readingSeconds: Double {
        condition.lock()
        defer { condition.unlock() }
        return reading
    }

    /// Stops reading and waits for the reader's thread to finish its batch.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while running { condition.wait() }
        condition.unlock()
    }
}
