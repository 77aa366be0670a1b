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
/// slide. The mask marks cells that have a feature vector; codes are stored as float32 (the tools'
/// own type: a finite 1e5 stays 1e5, where the compressor's float16 would make it infinite).
///
/// As the tools come: a slide TRIDENT found no tissue on is written on purpose as `features` [0, D]
/// (or [0]) and `coords` [0, 2]: it becomes a slide with no tissue cells (patient models skip it with
/// a warning). A labels.csv row whose slide has no feature file (the tool failed on it) follows
/// `missing`: `fail` (default) lists every such slide; `skip` drops the rows with a warning. Patches
/// that fall in one cell (CLAM's neighbouring contours overlap, snapped by `alignment: nearest`)
/// follow `overlapping`: `error` (default) or `mean` (the cell keeps the mean of their vectors and the
/// log counts them). Magnifications ≤ 0 and patches whose corner lies beyond `level0_width` ×
/// `level0_height` are errors.
public struct FeaturesSource: NodeType {
    public static let name = "features"
    public static let version = 2
    public static let summary = "Reads per-slide patch features (TRIDENT/CLAM HDF5: features [N, D], coords [N, 2]) into a GridSet."
    public static let outputs = [PortSpec("grids", .gridSet, doc: "gridset.json, slides.csv, grids/<slide>/o0 and mask, previews")]
    public enum Alignment: String, ParamChoice { case exact, nearest }
    public enum Missing: String, ParamChoice { case fail, skip }
    public enum Overlapping: String, ParamChoice { case error, mean }

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
        @Param(doc: "labels.csv rows whose slide has no feature file: fail (listing them) or skip (with a warning)")
        var missing = Missing.fail
        @Param(doc: "patches falling in one grid cell (CLAM's overlapping contours with alignment: nearest): error, or mean of their features")
        var overlapping = Overlapping.error
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
        var empty: [(url: URL, stem: String, grid: FeatureGrid)] = []
        for (index, name) in names.enumerated() {
            try context.checkCancellation()
            let url = folder.appendingPathComponent(name)
            let stem = (name as NSString).deletingPathExtension
            let grid: FeatureGrid
            do {
                grid = try FeatureGrid(url: url, patchSizeLevel0: params.patchSizeLevel0, mpp: params.mpp, alignment: params.alignment,
                                       overlapping: params.overlapping)
            } catch let error as HDF5Error {
                throw NodeError(error.description)
            }
            for note in grid.notes { context.logger.warning("\(url.path): \(note)") }
            if grid.patches == 0 {
                // No width of its own ([0] or [0, 0]) takes the cohort's; a stated one must agree.
                empty.append((url, stem, grid))
                context.progress(index + 1, of: names.count, unit: "slides")
                continue
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
            try Self.write(grid, stem: stem, url: url, codeSize: grid.codeSize, to: out, infos: &infos, entries: &entries, context: context)
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
        guard let codeSize, let first = reference else {
            throw NodeError("\(folder.path): all \(names.count) feature file(s) have no patches (shape [0, D]): no tissue was found on any slide")
        }
        for (url, stem, grid) in empty {
            if grid.codeSize > 0 && grid.codeSize != codeSize {
                throw NodeError("\(url.path): dataset 'features': \(grid.codeSize) features per patch, but \(entries[0].path) has \(codeSize)")
            }
            context.logger.warning("\(url.path): no patches (TRIDENT found no tissue on slide '\(stem)'): a slide with no tissue cells, which patient models skip")
            try Self.write(grid, stem: stem, url: url, codeSize: codeSize, to: out, infos: &infos, entries: &entries, context: context)
        }
        // The files' order, whatever order empty slides were written in.
        let order = Dictionary(uniqueKeysWithValues: names.enumerated().map { (($1 as NSString).deletingPathExtension, $0) })
        entries.sort { order[$0.stem, default: 0] < order[$1.stem, default: 0] }
        infos.sort { order[$0.stem, default: 0] < order[$1.stem, default: 0] }
        var slideSet = SlideSet(slides: entries, labelColumns: [])
        if let labels = params.labels {
            let (joined, skipped) = try slideSet.joiningLabels(labels.url, lookedIn: "matching '\(params.pattern)' in \(folder.path)",
                                                               skipUnknown: params.missing == .skip)
            slideSet = joined
            if !skipped.isEmpty {
                context.logger.warning("\(labels.url.path): \(skipped.count) slide(s) without a feature file skipped (missing: skip): \(skipped.prefix(10).joined(separator: ", "))\(skipped.count > 10 ? ", …" : "")")
            }
        }
        try slideSet.write(to: out)
        let info = GridSet.Info(codeSize: codeSize, size: first.size, mpp: (first.micrometres ?? 0) / Double(first.size), orientations: 1, slides: infos)
        try info.write(to: out)
    }
    /// Writes one slide's grid (codes float32, mask uint8) and records it.
    static func write(_ grid: FeatureGrid, stem: String, url: URL, codeSize: Int, to out: URL, infos: inout [GridSet.SlideInfo],
                      entries: inout [SlideEntry], context: NodeContext) throws {
        let gridFolder = out.appendingPathComponent("grids").appendingPathComponent(stem)
        let chunkRows = min(32, grid.rows), chunkColumns = min(64, grid.columns)
        let codes = grid.patches == 0 ? [Float](repeating: 0, count: grid.rows * grid.columns * codeSize) : grid.codes
        try ZarrArrayWriter(at: gridFolder.appendingPathComponent("o0"), shape: [grid.rows, grid.columns, codeSize],
                            chunkShape: [chunkRows, chunkColumns, codeSize], dataType: .float32)
            .write(codes)
        try ZarrArrayWriter(at: gridFolder.appendingPathComponent("mask"), shape: [grid.rows, grid.columns],
                            chunkShape: [chunkRows, chunkColumns], dataType: .uint8)
            .write(grid.mask.map { $0 ? UInt8(1) : 0 })
        infos.append(GridSet.SlideInfo(stem: stem, rows: grid.rows, columns: grid.columns, tissueCells: grid.patches,
                                       originX: grid.originX, originY: grid.originY, cellLevel0: Double(grid.side)))
        entries.append(SlideEntry(path: url.path, stem: stem, vendor: "hdf5-features", width: grid.width, height: grid.height,
                                  mpp: grid.mpp ?? 0, mppSource: grid.mppSource, levels: 1,
                                  quickhash: try context.contentHash(of: url), labels: [:]))
    }
}

extension FeaturesSource {
    /// Reads one feature file as the node does and says what grid it gives (for the fuzz harness and
    /// checks of a file): rows, columns, cells with a patch, features per patch.
    public static func inspect(_ url: URL, patchSizeLevel0: Int?, alignment: Alignment, overlapping: Overlapping)
        throws -> (rows: Int, columns: Int, cells: Int, codeSize: Int) {
        let grid = try FeatureGrid(url: url, patchSizeLevel0: patchSizeLevel0, mpp: nil, alignment: alignment, overlapping: overlapping)
        return (grid.rows, grid.columns, grid.patches, grid.codeSize)
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
    /// What was tolerated under a documented policy (patches averaged in one cell).
    let notes: [String]

    /// Grids beyond this many cells come from coordinates that are not on the stated grid.
    static let maxCells = 16_000_000
    /// Grid values (cells × features) held in memory: 200 M floats, 800 MB (a 200 × 200 cell slide of
    /// 1536 features is 61 M).
    static let maxValues = 200_000_000

    init(url: URL, patchSizeLevel0: Int?, mpp givenMPP: Double?, alignment: FeaturesSource.Alignment,
         overlapping: FeaturesSource.Overlapping = .error) throws {
        let path = url.path
        let file = try HDF5File(path: path)
        let features = try file.dataset("features"), coords = try file.dataset("coords")
        // TRIDENT writes a slide without tissue as features [0, D] (or [0]) and coords [0, 2] (or [0]).
        let n = features.shape.first ?? 0
        let isEmpty = n == 0 && (coords.shape.first ?? 0) == 0 && features.shape.count <= 2 && coords.shape.count <= 2
        if !isEmpty {
            guard features.shape.count == 2 else {
                throw HDF5Error(path: path, object: "features", "expected rank 2 [N patches, D features], found shape \(features.shape)")
            }
            guard coords.shape.count == 2, coords.shape[1] == 2 else {
                throw HDF5Error(path: path, object: "coords", "expected rank 2 [N patches, 2] (level-0 x, y), found shape \(coords.shape)")
            }
            guard coords.shape[0] == n else {
                throw HDF5Error(path: path, object: "coords", "\(coords.shape[0]) rows, but 'features' has \(n)")
            }
        }
        let d = features.shape.count == 2 ? features.shape[1] : 0
        guard isEmpty || d > 0 else { throw HDF5Error(path: path, object: "features", "no features per patch (shape \(features.shape))") }

        let attribute = try coords.numberAttribute("patch_size_level0")
        if let attribute, !(attribute.isFinite && attribute >= 1 && attribute <= 1_000_000 && attribute == attribute.rounded()) {
            throw HDF5Error(path: path, object: "coords@patch_size_level0", "must be a whole number of pixels in 1...1000000, found \(attribute)")
        }
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
        if let overlap = try coords.numberAttribute("overlap"), overlap != 0 {
            let shown = overlap == overlap.rounded() && abs(overlap) < 1e15 ? String(Int(overlap)) : String(overlap)
            throw HDF5Error(path: path, object: "coords@overlap", "\(shown): overlapping patches do not tile a grid; extract with overlap 0")
        }
        let storedPatchSize = try coords.numberAttribute("patch_size")
        if let storedPatchSize, !(storedPatchSize.isFinite && storedPatchSize >= 1 && storedPatchSize <= 1_000_000) {
            throw HDF5Error(path: path, object: "coords@patch_size", "must be a positive number of pixels, found \(storedPatchSize)")
        }
        patchSize = storedPatchSize.map { Int($0) } ?? side
        // An impossible magnification is a broken file, not an unknown one.
        for name in ["level0_magnification", "target_magnification"] {
            if let value = try coords.numberAttribute(name), !(value.isFinite && value > 0 && value <= 1000) {
                throw HDF5Error(path: path, object: "coords@\(name)", "must be a positive magnification (e.g. 40), found \(value)")
            }
        }
        if let givenMPP {
            mpp = givenMPP
            mppSource = "param"
        } else if let magnification = try coords.numberAttribute("level0_magnification") {
            mpp = 10 / magnification
            mppSource = "level0_magnification"
        } else {
            mpp = nil
            mppSource = "unknown"
        }
        var slideSize: [Int?] = []
        for name in ["level0_width", "level0_height"] {
            let value = try coords.numberAttribute(name)
            if let value, !(value.isFinite && value >= 1 && value < 1e9) {
                throw HDF5Error(path: path, object: "coords@\(name)", "must be a positive number of level-0 pixels, found \(value)")
            }
            slideSize.append(value.map { Int($0) })
        }
        self.side = side
        if isEmpty {
            codeSize = d
            rows = 1; columns = 1
            codes = []
            mask = [false]
            patches = 0
            originX = 0; originY = 0
            width = slideSize[0] ?? side
            height = slideSize[1] ?? side
            notes = []
            return
        }

        // A header can declare any shape: what a file of this size cannot hold (even compressed) is not read.
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let readable = 64 * fileBytes + (64 << 20)
        for dataset in [features, coords] where dataset.count.multipliedReportingOverflow(by: 8).overflow || dataset.count * 8 > readable {
            throw HDF5Error(path: path, object: dataset.name, "shape \(dataset.shape) is more than a \(fileBytes)-byte file can hold")
        }
        let xy = try coords.readIntegers()
        let values = try features.readFloats()
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw HDF5Error(path: path, object: "features", "row \(bad / d), feature \(bad % d) is \(values[bad]): not a finite number")
        }
        if let bad = (0..<n).first(where: { xy[2 * $0] < 0 || xy[2 * $0 + 1] < 0 }) {
            throw HDF5Error(path: path, object: "coords", "row \(bad) is (\(xy[2 * bad]), \(xy[2 * bad + 1])): negative level-0 coordinates")
        }
        if let w = slideSize[0], let h = slideSize[1],
           let bad = (0..<n).first(where: { xy[2 * $0] >= Int64(w) || xy[2 * $0 + 1] >= Int64(h) }) {
            throw HDF5Error(path: path, object: "coords", "row \(bad) is (\(xy[2 * bad]), \(xy[2 * bad + 1])): the patch's corner lies beyond the \(w) × \(h) slide (level0_width × level0_height)")
        }
        let s = Int64(side)
        let minX = (0..<n).map { xy[2 * $0] }.min()!, minY = (0..<n).map { xy[2 * $0 + 1] }.min()!  // invariant: n > 0 (not isEmpty)
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
        guard rows * columns <= Self.maxCells, rows * columns * d <= Self.maxValues else {
            throw HDF5Error(path: path, object: "coords", "the patches span \(columns) × \(rows) cells of \(side) px; coords and patch_size_level0 disagree")
        }
        var codes = [Float](repeating: 0, count: rows * columns * d)
        var mask = [Bool](repeating: false, count: rows * columns)
        var first = [Int](repeating: -1, count: rows * columns)
        var shared = [Int](repeating: 0, count: rows * columns)
        var merged = 0
        for (i, cell) in cells.enumerated() {
            let k = cell.row * columns + cell.column
            if first[k] >= 0 {
                guard overlapping == .mean else {
                    throw HDF5Error(path: path, object: "coords", "rows \(first[k]) (\(xy[2 * first[k]]), \(xy[2 * first[k] + 1])) and \(i) (\(xy[2 * i]), \(xy[2 * i + 1])) fall in the same \(side) px cell: patches overlap (CLAM's neighbouring contours: set overlapping: mean), or coords and patch_size_level0 disagree")
                }
                merged += 1
                for j in 0..<d { codes[k * d + j] += values[i * d + j] }
                shared[k] += 1
                continue
            }
            first[k] = i
            shared[k] = 1
            mask[k] = true
            codes.replaceSubrange((k * d)..<((k + 1) * d), with: values[(i * d)..<((i + 1) * d)])
        }
        var notes: [String] = []
        if merged > 0 {
            for k in shared.indices where shared[k] > 1 { for j in 0..<d { codes[k * d + j] /= Float(shared[k]) } }
            notes.append("\(merged) patch(es) fell in a cell another patch already had (overlapping contours); their features were averaged (overlapping: mean)")
        }
        self.notes = notes
        originX = Int(ox)
        originY = Int(oy)
        codeSize = d
        self.codes = codes
        self.mask = mask
        patches = mask.filter { $0 }.count
        let extentX = Int(ox) + columns * side, extentY = Int(oy) + rows * side
        width = slideSize[0] ?? extentX
        height = slideSize[1] ?? extentY
    }
}
