import Flow
import Foundation
import TensorStore

public extension PortType {
    /// Compressed slides: per slide a rows × columns × C float16 grid (see `GridSet`).
    static let gridSet: PortType = "GridSet"
}

/// The output of the compressor, one entry per slide:
///
/// ```
/// gridset.json              {"code_size", "size", "mpp", "orientations", "slides": [{"stem", "rows", "columns", "tissue_cells"}]}
/// slides.csv                the cohort's slides and labels (as the SlideSet had them)
/// grids/<stem>/o<k>/        zarr float16 [rows, columns, C] (float32 from the features node): codes of the patches seen under dihedral
///                           orientation k (0 = as scanned), at the patch's original grid position;
///                           zeros where there is no tissue. To get the grid of the transformed slide,
///                           transform the first two axes the same way (`GridSet.load(orientation:)`).
/// grids/<stem>/mask/        zarr uint8 [rows, columns]: 1 where tissue was encoded
/// preview/<stem>.png, preview/<stem>-pca.png   thumbnail and false colour (3 principal components)
/// ```
/// Python: `zarr.open_array(f + "/grids/S/o0")[:]` is the H × W × C grid of slide S.
public struct GridSet {
    public struct SlideInfo: Codable, Equatable {
        public var stem: String
        public var rows: Int
        public var columns: Int
        public var tissueCells: Int
        /// Level-0 pixel of cell (0, 0)'s top-left corner when the grid does not start at the slide's
        /// corner (grids read from patch features); nil = (0, 0).
        public var originX: Int?
        public var originY: Int?
        /// A cell's side in level-0 pixels when it is not size · mpp / (the slide's µm/px) (grids read from
        /// patch features, whose files give it); nil for the compressor's grids.
        public var cellLevel0: Double?
        enum CodingKeys: String, CodingKey {
            case stem, rows, columns, tissueCells = "tissue_cells", originX = "origin_x", originY = "origin_y", cellLevel0 = "cell_level0"
        }
    }

    public struct Info: Codable, Equatable {
        public var codeSize: Int
        public var size: Int
        public var mpp: Double
        public var orientations: Int
        public var slides: [SlideInfo]
        /// Windows per cell side whose codes were averaged (`compressor` `shifts`); absent: one window per cell.
        public var shifts: Int? = nil
        /// How the windows' codes were pooled when not by their mean (`compressor` `shift_pool`: "max").
        public var shiftPool: String? = nil
        /// A name per channel when the channels are named quantities (a floor's counts, an encoder's task
        /// outputs) rather than codes; absent for codes.
        public var channels: [String]? = nil
        enum CodingKeys: String, CodingKey { case size, mpp, orientations, slides, shifts, channels, codeSize = "code_size", shiftPool = "shift_pool" }
    }

    public let folder: URL
    public let info: Info
    public let slideSet: SlideSet

    public init(folder: URL) throws {
        self.folder = folder
        let url = folder.appendingPathComponent("gridset.json")
        do { info = try JSONDecoder().decode(Info.self, from: Data(contentsOf: url)) }
        catch { throw NodeError("\(url.path): not a GridSet description (\(error))") }
        slideSet = try SlideSet.read(from: folder)
    }

    /// The index of a channel given by name (`channels`) or by number; the error lists the names.
    public func channel(_ name: String, param: String) throws -> Int {
        if let names = info.channels, let i = names.firstIndex(of: name) { return i }
        if let i = Int(name), i >= 0, i < info.codeSize { return i }
        let known = info.channels.map { "its channels are " + $0.joined(separator: ", ") } ?? "its \(info.codeSize) channels have no names (give a number 0–\(info.codeSize - 1))"
        throw NodeError("param '\(param)': the GridSet has no channel '\(name)'; \(known)")
    }

    /// The level-0 rectangle (pixels) a cell of a slide covers: the compressor's stride = size grid from the
    /// slide's corner (see `TileGrid`), or the geometry the grid's source recorded.
    public func cellRect(_ stem: String, column: Int, row: Int) throws -> (x: Double, y: Double, width: Double, height: Double) {
        guard let slide = info.slides.first(where: { $0.stem == stem }) else { throw NodeError("GridSet has no slide '\(stem)'") }
        let side: Double
        if let cell = slide.cellLevel0 {
            side = cell
        } else {
            guard let entry = slideSet[stem], entry.mpp > 0 else { throw NodeError("GridSet: slide '\(stem)' has no µm/px in slides.csv") }
            side = Double(info.size) * info.mpp / entry.mpp
        }
        return (Double(slide.originX ?? 0) + Double(column) * side, Double(slide.originY ?? 0) + Double(row) * side, side, side)
    }

    /// A slide's grid under orientation k as [rows', columns', C] (rows/columns swap for quarter turns),
    /// and its tissue mask in the same layout.
    public func load(_ stem: String, orientation k: Int = 0) throws -> (grid: [Float], mask: [Bool], rows: Int, columns: Int) {
        guard let slide = info.slides.first(where: { $0.stem == stem }) else { throw NodeError("GridSet has no slide '\(stem)'") }
        guard k >= 0 && k < info.orientations else { throw NodeError("GridSet has \(info.orientations) orientation(s), asked for \(k)") }
        let base = folder.appendingPathComponent("grids").appendingPathComponent(stem)
        // The compressor's codes are float16; features read from TRIDENT/CLAM files stay float32.
        let reader = try ZarrArrayReader(at: base.appendingPathComponent("o\(k)"))
        let codes = reader.metadata.dataType == .float32 ? try reader.read(as: Float.self) : try reader.read(as: Float16.self).map(Float.init)
        let mask = try ZarrArrayReader(at: base.appendingPathComponent("mask")).read(as: UInt8.self)
        let c = info.codeSize, h = slide.rows, w = slide.columns
        if k == 0 { return (codes, mask.map { $0 != 0 }, h, w) }
        let size = Dihedral.map(x: 0, y: 0, width: w, height: h, orientation: k)
        var grid = [Float](repeating: 0, count: codes.count)
        var outMask = [Bool](repeating: false, count: mask.count)
        for y in 0..<h {
            for x in 0..<w {
                let t = Dihedral.map(x: x, y: y, width: w, height: h, orientation: k)
                let s = y * w + x, d = t.y * size.width + t.x
                outMask[d] = mask[s] != 0
                for ch in 0..<c { grid[d * c + ch] = codes[s * c + ch] }
            }
        }
        return (grid, outMask, size.height, size.width)
    }
}

extension GridSet.Info {
    /// `gridset.json` in a GridSet folder, as every node that makes one writes it.
    func write(to folder: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: folder.appendingPathComponent("gridset.json"))
    }
}

extension GridSet {
    /// A slide's mask (1: a cell with codes) at `grids/<stem>/mask`, in chunks of up to 32 × 64 cells.
    static func writeMask(_ mask: [UInt8], rows: Int, columns: Int, to slideFolder: URL) throws {
        try ZarrArrayWriter(at: slideFolder.appendingPathComponent("mask"), shape: [rows, columns],
                            chunkShape: [max(1, min(32, rows)), max(1, min(64, columns))], dataType: .uint8).write(mask)
    }

    /// One slide of a single-orientation GridSet: its channels [rows, columns, channels] as `o0` (float16)
    /// and its mask, chunked alike.
    static func writeSlide(_ values: [Float16], channels: Int, mask: [UInt8], rows: Int, columns: Int, to slideFolder: URL) throws {
        try ZarrArrayWriter(at: slideFolder.appendingPathComponent("o0"), shape: [rows, columns, channels],
                            chunkShape: [max(1, min(32, rows)), max(1, min(64, columns)), channels], dataType: .float16).write(values)
        try writeMask(mask, rows: rows, columns: columns, to: slideFolder)
    }
}
