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
/// rows; while one band is encoded the next one is read (Dispatch workers), and every finished band
/// is written as zarr chunks at once. Each slide is its own cache item (keyed by the slide's content,
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
        // Every slide is an item: a cluster executor compresses the missing ones as a job array first.
        let identities = try slideSet.slides.map { entry in
            try context.checkCancellation()
            return try context.contentHash(of: URL(fileURLWithPath: entry.path)) + "|mpp=\(entry.mpp)|\(entry.mppSource)"
        }
        let items = try context.cachedItems(identities, excludingInputs: ["slides"]) { index, folder in
            try compress(slideSet.slides[index], model: model, into: folder, mpp: mpp, size: size, orientations: orientations, minTissue: minTissue,
                         batchSize: batchSize, bandRows: bandRows, previews: params.previews, context: context, slideIndex: index, slideCount: slideSet.slides.count)
        }
        for (index, (entry, item)) in zip(slideSet.slides, items).enumerated() {
            if item.reused { reused += 1 }
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
    }

    /// One slide → `grid/o<k>`, `grid/mask`, `slide.json`, `preview/` in `folder`.
    func compress(_ entry: SlideEntry, model: EncoderModel, into folder: URL, mpp: Double, size: Int, orientations: Int, minTissue: Double,
                  batchSize: Int, bandRows: Int, previews: Int, context: NodeContext, slideIndex: Int, slideCount: Int) throws {
        let slide = try entry.open()
        let mask = try TissueDetector().detect(slide)
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

        // Bands of grid rows; the next band's patches are read while this band is encoded.
        let bands = (rows + chunkRows - 1) / chunkRows
        let cellsByBand = (0..<bands).map { b in cells.filter { $0.row / chunkRows == b } }
        // Reading shares the node's thread budget (the encoder runs between reads, on the same budget).
        let readers = context.threads
        let read: @Sendable (Int) throws -> [RGBImage] = { band in
            let bandCells = cellsByBand[band]
            return try concurrentMap(bandCells.count, workers: readers) { i in
                let origin = grid.origin(column: bandCells[i].column, row: bandCells[i].row)
                return try slide.readRegion(x: origin.x, y: origin.y, width: size, height: size, mpp: mpp)
            }
        }
        var codes = [Float16](repeating: 0, count: chunkRows * columns * c)
        let next = NextBand(Result { try read(0) })
        var allCodes: [[Float]] = []  // orientation 0 codes of tissue cells, for the preview's PCA
        let previewWanted = slideIndex < previews
        var done = 0
        for band in 0..<bands {
            try context.checkCancellation()
            let images = try next.value.get()
            let reader = DispatchGroup()
            if band + 1 < bands {
                // Counted in the node's budget; overlapping reads with encoding can reach twice it
                // (a reader per thread beside the encoder's workers).
                let compute = context.compute
                DispatchQueue.global().async(group: reader) { next.value = compute.run { Result { try read(band + 1) } } }
            }
            let bandCells = cellsByBand[band]
            for k in 0..<orientations {
                for i in codes.indices { codes[i] = 0 }
                for start in stride(from: 0, to: bandCells.count, by: batchSize) {
                    let end = min(bandCells.count, start + batchSize)
                    let patches = (start..<end).map { Dihedral.apply(images[$0], orientation: k) }
                    let encoded = try model.encode(patches)
                    for (j, i) in (start..<end).enumerated() {
                        let cell = bandCells[i]
                        let target = ((cell.row - band * chunkRows) * columns + cell.column) * c
                        for ch in 0..<c { codes[target + ch] = Float16(encoded.data[j * c + ch]) }
                        if k == 0 && previewWanted { allCodes.append(Array(encoded.data[(j * c)..<((j + 1) * c)])) }
                    }
                }
                // Write this band's chunks (full chunk shape; rows past the grid stay zero).
                for chunkColumn in 0..<((columns + chunkColumns - 1) / chunkColumns) {
                    var chunk = [Float16](repeating: 0, count: chunkRows * chunkColumns * c)
                    for r in 0..<chunkRows where band * chunkRows + r < rows {
                        for col in 0..<chunkColumns where chunkColumn * chunkColumns + col < columns {
                            let source = (r * columns + chunkColumn * chunkColumns + col) * c
                            let target = (r * chunkColumns + col) * c
                            for ch in 0..<c { chunk[target + ch] = codes[source + ch] }
                        }
                    }
                    try writers[k].writeChunk(at: [band, chunkColumn, 0], values: chunk)
                }
            }
            reader.wait()
            done += bandCells.count
            // Progress counts slides (the node's unit of work); the patches of this one go in the message.
            context.progress(slideIndex, of: slideCount, unit: "slides", message: "\(entry.stem): \(done)/\(cells.count) patches")
        }
        let info = GridSet.SlideInfo(stem: entry.stem, rows: rows, columns: columns, tissueCells: cells.count)
        try JSONEncoder().encode(info).write(to: folder.appendingPathComponent("slide.json"))
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

/// The next band's patches, read on another thread while this band is encoded; the DispatchGroup
/// wait orders the write before the read.
private final class NextBand: @unchecked Sendable {  // one writer, then the group wait, then one reader
    var value: Result<[RGBImage], Error>
    init(_ value: Result<[RGBImage], Error>) { self.value = value }
}
