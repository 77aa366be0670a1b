import Flow
import Foundation
import HDF5
import Slides
import TensorStore

/// `features`: per-slide patch features written by TRIDENT or CLAM (one HDF5 file per slide), placed on
/// their grid as a GridSet, so that patient models, probes, evaluators and reports run on foundation-model
/// features as they do on nic's own compressed slides.
///
/// The layout read (from the tools' source code):
/// - TRIDENT (mahmoodlab/TRIDENT, `trident/wsi_objects/WSI.py` `extract_patch_features`, written by
///   `trident/IO.py` `save_h5`): `<job>/<coords>/features_<encoder>/<slide>.h5` with datasets
///   `features` float32 [N, D] and `coords` int64 [N, 2] — the level-0 (x, y) of each patch's top-left
///   corner — and on `coords` the attributes of `IO.coords_to_h5`: `patch_size` (pixels at the target
///   magnification), `patch_size_level0` (= patch_size · level0_magnification // target_magnification),
///   `level0_magnification`, `target_magnification`, `overlap`, `level0_width`, `level0_height`.
/// - CLAM (mahmoodlab/CLAM, `extract_features_fp.py` `compute_w_loader` → `utils/file_utils.py`
///   `save_hdf5`): `<feat_dir>/h5_files/<slide>.h5` with `features` float32 [N, D] and `coords` int32
///   [N, 2] (level-0 top-left corners) and no attributes: the patch side in level-0 pixels
///   (`patch_size` × the patch level's downsample in CLAM's patching) comes from the `patch_size_level0`
///   param. CLAM patches each tissue contour from its own bounding box, so patches of different
///   contours need not share one grid: `alignment: nearest` snaps them to the nearest cell.
///
/// Cell (column, row) of a slide covers level-0 [ox + column·s, ox + (column+1)·s) (likewise y), with s
/// the patch side in level-0 pixels and (ox, oy) the smallest coordinates modulo s, so a TRIDENT grid
/// (coordinates multiples of s) starts at the slide's corner; gridset.json records s and (ox, oy) per
/// slide. The mask marks cells that have a feature vector; codes are stored as float16 like the
/// compressor's.
public struct FeaturesSource: NodeType {
    public static let name = "features"
    public static let version = 1
    public static let summary = "Reads per-slide patch features (TRIDENT/CLAM HDF5: features [N, D], coords [N, 2]) into a GridSet."
    public static let outputs = [PortSpec("grids", .gridSet, doc: "gridset.json, slides.csv, grids/<slide>/o0 and mask, previews")]
    public enum Alignment: String, ParamChoice { case exact, nearest }

    public struct Params: NodeParams {
        @Param(doc: "the folder of per-slide .h5 files (TRIDENT features_<encoder>/, CLAM h5_files/); file stem = slide") var dir: DirectoryParam
        @Param(doc: "glob on file names") var pattern = "*.h5"
        @Param(doc: "labels.csv: slide (file stem), patient, label columns (time, event for survival)") var labels: FileParam? = nil
        @Param(doc: "patch side in level-0 pixels, for files without a 'patch_size_level0' attribute on coords (CLAM)", .within(1, 1_000_000))
        var patchSizeLevel0: Int? = nil
        @Param(doc: "µm/px of level 0 (default: 10 / the coords' level0_magnification attribute)", .within(0.01, 1000)) var mpp: Double? = nil
        @Param(doc: "exact: every patch must sit on the grid; nearest: snap to the nearest cell (CLAM's per-contour patching)")
        var alignment = Alignment.exact
        @Param(doc: "slides to draw false-colour grids for", .atLeast(0)) var previews = 4
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let folder = params.dir.url
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
                .filter { fnmatch(params.pattern, $0, 0) == 0 && !$0.hasPrefix(".") }.sorted()
        } catch {
            throw NodeError("\(folder.path): cannot list the features folder: \(error.localizedDescription)")
        }
        guard !names.isEmpty else { throw NodeError("\(folder.path): no feature files matching '\(params.pattern)'") }
        let out = try context.output("grids")
        var entries: [SlideEntry] = []
        var infos: [GridSet.SlideInfo] = []
        var codeSize: Int?
        var reference: (stem: String, size: Int, micrometres: Double?)?
        for (index, name) in names.enumerated() {
            try context.checkCancellation()
            let url = folder.appendingPathComponent(name)
            let stem = (name as NSString).deletingPathExtension
            let grid: FeatureGrid
            do {
                grid = try FeatureGrid(url: url, patchSizeLevel0: params.patchSizeLevel0, mpp: params.mpp, alignment: params.alignment)
            } catch let error as HDF5Error {
                throw NodeError(error.description)
            }
            if let codeSize, codeSize != grid.codeSize {
                throw NodeError("\(url.path): dataset 'features': \(grid.codeSize) features per patch, but \(entries[0].path) has \(codeSize)")
            }
            codeSize = grid.codeSize
            // Cells of one GridSet must cover the same tissue: a model's filters assume one scale.
            let micrometres = grid.mpp.map { $0 * Double(grid.side) }
            if let reference, let a = reference.micrometres, let b = micrometres, abs(a - b) > 0.02 * a {
                throw NodeError("\(url.path): patches cover \(String(format: "%.1f", b)) µm but those of '\(reference.stem)' cover \(String(format: "%.1f", a)) µm; extract every slide at the same magnification and patch size")
            }
            if reference == nil { reference = (stem, grid.patchSize, micrometres) }
            let gridFolder = out.appendingPathComponent("grids").appendingPathComponent(stem)
            let chunkRows = min(32, grid.rows), chunkColumns = min(64, grid.columns)
            try ZarrArrayWriter(at: gridFolder.appendingPathComponent("o0"), shape: [grid.rows, grid.columns, grid.codeSize],
                                chunkShape: [chunkRows, chunkColumns, grid.codeSize], dataType: .float16)
                .write(grid.codes.map { Float16($0) })
            try ZarrArrayWriter(at: gridFolder.appendingPathComponent("mask"), shape: [grid.rows, grid.columns],
                                chunkShape: [chunkRows, chunkColumns], dataType: .uint8)
                .write(grid.mask.map { $0 ? UInt8(1) : 0 })
            infos.append(GridSet.SlideInfo(stem: stem, rows: grid.rows, columns: grid.columns, tissueCells: grid.patches,
                                           originX: grid.originX, originY: grid.originY, cellLevel0: Double(grid.side)))
            entries.append(SlideEntry(path: url.path, stem: stem, vendor: "hdf5-features", width: grid.width, height: grid.height,
                                      mpp: grid.mpp ?? 0, mppSource: grid.mppSource, levels: 1,
                                      quickhash: try context.contentHash(of: url), labels: [:]))
            if index < params.previews {
                let preview = out.appendingPathComponent("preview")
                try FileManager.default.createDirectory(at: preview, withIntermediateDirectories: true)
                let cells = grid.mask.indices.filter { grid.mask[$0] }
                let codes = cells.map { Array(grid.codes[($0 * grid.codeSize)..<(($0 + 1) * grid.codeSize)]) }
                try PNG.write(Compressor.falseColour(codes: codes, cells: cells.map { (column: $0 % grid.columns, row: $0 / grid.columns) },
                                                     rows: grid.rows, columns: grid.columns),
                              to: preview.appendingPathComponent("\(stem)-pca.png"))
            }
            context.progress(index + 1, of: names.count, unit: "slides")
        }
        var slideSet = SlideSet(slides: entries, labelColumns: [])
        if let labels = params.labels {
            slideSet = try slideSet.joiningLabels(labels.url, lookedIn: "matching '\(params.pattern)' in \(folder.path)")
        }
        try slideSet.write(to: out)
        // invariant: names is not empty, so the loop set both
        let first = reference!
        let info = GridSet.Info(codeSize: codeSize!, size: first.size, mpp: (first.micrometres ?? 0) / Double(first.size), orientations: 1, slides: infos)  // invariant: set with reference, as above
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(info).write(to: out.appendingPathComponent("gridset.json"))
    }
}

/// One feature file placed on its grid (see `FeaturesSource`).
struct FeatureGrid {
    let codeSize: Int
    let rows: Int, columns: Int
    /// [rows, columns, codeSize], zeros where no patch.
    let codes: [Float]
    let mask: [Bool]
    let patches: Int
    /// Patch side in level-0 pixels and level-0 corner of cell (0, 0).
    let side: Int
    let originX: Int, originY: Int
    /// Patch side in pixels at the extraction magnification (`patch_size`), else `side`.
    let patchSize: Int
    /// Level-0 µm/px, if known, and where it came from.
    let mpp: Double?
    let mppSource: String
    /// Level-0 slide size (from the attributes, else the extent of the patches).
    let width: Int, height: Int

    /// Grids beyond this many cells come from coordinates that are not on the stated grid.
    static let maxCells = 16_000_000

    init(url: URL, patchSizeLevel0: Int?, mpp givenMPP: Double?, alignment: FeaturesSource.Alignment) throws {
        let path = url.path
        let file = try HDF5File(path: path)
        let features = try file.dataset("features"), coords = try file.dataset("coords")
        guard features.shape.count == 2 else {
            throw HDF5Error(path: path, object: "features", "expected rank 2 [N patches, D features], found shape \(features.shape)")
        }
        guard coords.shape.count == 2, coords.shape[1] == 2 else {
            throw HDF5Error(path: path, object: "coords", "expected rank 2 [N patches, 2] (level-0 x, y), found shape \(coords.shape)")
        }
        let n = features.shape[0], d = features.shape[1]
        guard coords.shape[0] == n else {
            throw HDF5Error(path: path, object: "coords", "\(coords.shape[0]) rows, but 'features' has \(n)")
        }
        guard n > 0, d > 0 else { throw HDF5Error(path: path, object: "features", "no patches (shape \(features.shape))") }

        let attribute = try coords.numberAttribute("patch_size_level0")
        let side: Int
        switch (attribute, patchSizeLevel0) {
        case let (stored?, given?) where Int(stored) != given:
            throw HDF5Error(path: path, object: "coords@patch_size_level0", "\(Int(stored)), but the node's patch_size_level0 param is \(given)")
        case let (stored?, _):
            side = Int(stored)
        case let (nil, given?):
            side = given
        case (nil, nil):
            throw HDF5Error(path: path, object: "coords", "no 'patch_size_level0' attribute (CLAM's feature files carry none): set the node's patch_size_level0 param (patch side in level-0 pixels)")
        }
        guard side > 0 else { throw HDF5Error(path: path, object: "coords@patch_size_level0", "must be positive, found \(side)") }
        if let overlap = try coords.numberAttribute("overlap"), overlap != 0 {
            throw HDF5Error(path: path, object: "coords@overlap", "\(Int(overlap)): overlapping patches do not tile a grid; extract with overlap 0")
        }
        patchSize = try coords.numberAttribute("patch_size").map { Int($0) } ?? side
        if let givenMPP {
            mpp = givenMPP
            mppSource = "param"
        } else if let magnification = try coords.numberAttribute("level0_magnification"), magnification > 0 {
            mpp = 10 / magnification
            mppSource = "level0_magnification"
        } else {
            mpp = nil
            mppSource = "unknown"
        }

        let xy = try coords.readIntegers()
        let values = try features.readFloats()
        if let bad = values.firstIndex(where: { !$0.isFinite || abs($0) > Float(Float16.greatestFiniteMagnitude) }) {
            throw HDF5Error(path: path, object: "features", "row \(bad / d), feature \(bad % d) is \(values[bad]): not a finite float16 value")
        }
        if let bad = (0..<n).first(where: { xy[2 * $0] < 0 || xy[2 * $0 + 1] < 0 }) {
            throw HDF5Error(path: path, object: "coords", "row \(bad) is (\(xy[2 * bad]), \(xy[2 * bad + 1])): negative level-0 coordinates")
        }
        let s = Int64(side)
        let minX = (0..<n).map { xy[2 * $0] }.min()!, minY = (0..<n).map { xy[2 * $0 + 1] }.min()!  // invariant: n > 0
        let ox = minX % s, oy = minY % s
        var cells: [(column: Int, row: Int)] = []
        cells.reserveCapacity(n)
        for i in 0..<n {
            let dx = xy[2 * i] - ox, dy = xy[2 * i + 1] - oy
            if alignment == .exact && (dx % s != 0 || dy % s != 0) {
                throw HDF5Error(path: path, object: "coords", "row \(i) is (\(xy[2 * i]), \(xy[2 * i + 1])), not on the grid of \(side) px patches through (\(ox), \(oy)) (offset \(dx % s), \(dy % s)): coords and patch_size_level0 disagree, or the patches come from CLAM's per-contour patching (set alignment: nearest)")
            }
            cells.append((Int((Double(dx) / Double(s)).rounded()), Int((Double(dy) / Double(s)).rounded())))
        }
        columns = cells.map(\.column).max()! + 1  // invariant: n > 0
        rows = cells.map(\.row).max()! + 1
        guard rows * columns <= Self.maxCells else {
            throw HDF5Error(path: path, object: "coords", "the patches span \(columns) × \(rows) cells of \(side) px; coords and patch_size_level0 disagree")
        }
        var codes = [Float](repeating: 0, count: rows * columns * d)
        var mask = [Bool](repeating: false, count: rows * columns)
        var first = [Int](repeating: -1, count: rows * columns)
        for (i, cell) in cells.enumerated() {
            let k = cell.row * columns + cell.column
            if first[k] >= 0 {
                throw HDF5Error(path: path, object: "coords", "rows \(first[k]) (\(xy[2 * first[k]]), \(xy[2 * first[k] + 1])) and \(i) (\(xy[2 * i]), \(xy[2 * i + 1])) fall in the same \(side) px cell: patches overlap, or coords and patch_size_level0 disagree")
            }
            first[k] = i
            mask[k] = true
            codes.replaceSubrange((k * d)..<((k + 1) * d), with: values[(i * d)..<((i + 1) * d)])
        }
        self.side = side
        originX = Int(ox)
        originY = Int(oy)
        codeSize = d
        self.codes = codes
        self.mask = mask
        patches = n
        let extentX = Int(ox) + columns * side, extentY = Int(oy) + rows * side
        width = try coords.numberAttribute("level0_width").map { Int($0) } ?? extentX
        height = try coords.numberAttribute("level0_height").map { Int($0) } ?? extentY
    }
}
