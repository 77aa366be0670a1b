import Flow
import Foundation
import Slides
import TensorStore

extension PortType {
    /// uint8 patches + per-task labels (see `PatchSet`).
    public static let patchSet: PortType = "PatchSet"
}

/// A patch-level task of a PatchSet.
public struct PatchTask: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case classification, regression }
    public var name: String
    public var kind: Kind
    /// Class names in index order (classification only); label arrays hold these indices.
    public var classes: [String]?

    public init(name: String, kind: Kind, classes: [String]? = nil) {
        self.name = name
        self.kind = kind
        self.classes = classes
    }
}

/// Where a patch came from.
public struct PatchRecord: Sendable, Equatable {
    public var slide: String
    /// Patch centre, level-0 pixels.
    public var x: Int
    public var y: Int
    /// Grid cell (grid mode), else nil.
    public var column: Int?
    public var row: Int?
    /// Label per task name (the text of patches.csv); absent = missing.
    public var labels: [String: String]

    public init(slide: String, x: Int, y: Int, column: Int? = nil, row: Int? = nil, labels: [String: String] = [:]) {
        self.slide = slide
        self.x = x
        self.y = y
        self.column = column
        self.row = row
        self.labels = labels
    }
}

/// The description stored in patchset.json.
public struct PatchSetInfo: Codable, Sendable, Equatable {
    public var mode: String
    public var size: Int
    public var mpp: Double
    public var count: Int
    public var tasks: [PatchTask]
}

/// A PatchSet port's folder:
///
/// ```
/// patchset.json        {"mode": "training"|"grid", "size": 128, "mpp": 0.5, "count": N, "tasks": [{"name", "kind", "classes"}]}
/// patches/             zarr v3 uint8 [N, size, size, 3] (RGB, rows top to bottom), chunks of 256 patches
/// patches.csv          index, slide, x, y, column, row, <task>... (x, y = patch centre in level-0 px; empty = missing)
/// labels/<task>/       zarr v3 float32 [N]: class index into tasks[].classes, or the regression value; NaN = missing
/// grid.csv             (grid mode) slide, columns, rows, tissue_fraction, patches
/// augmentation.json    (augmenter output) {"recipe": {...}, "seed": S}: augment on the fly, see `PatchSet.augmenter`
/// ```
/// Python: `zarr.open_array(f + "/patches")[i]` is patch i as uint8 H×W×3; `pd.read_csv(f + "/patches.csv")`.
public struct PatchSet: Sendable {
    public let folder: URL
    public let info: PatchSetInfo
    public let records: [PatchRecord]
    private let reader: ZarrArrayReader

    public static let chunkPatches = 256

    public init(folder: URL) throws {
        self.folder = folder
        let infoURL = folder.appendingPathComponent("patchset.json")
        guard let data = FileManager.default.contents(atPath: infoURL.path) else { throw NodeError("\(infoURL.path): missing; not a PatchSet folder") }
        do {
            info = try JSONDecoder().decode(PatchSetInfo.self, from: data)
        } catch {
            throw NodeError("\(infoURL.path): not a valid PatchSet description: \(error)")
        }
        let table = try CSVTable.read(folder.appendingPathComponent("patches.csv"))
        var records: [PatchRecord] = []
        for (n, row) in table.rows.enumerated() {
            func v(_ c: String) -> String? { table.columnIndex(c).map { row[$0] } }
            guard let slide = v("slide"), let x = v("x").flatMap(Int.init), let y = v("y").flatMap(Int.init) else {
                throw NodeError("\(folder.path)/patches.csv:\(n + 2): bad slide, x or y")
            }
            var labels: [String: String] = [:]
            for t in info.tasks { if let l = v(t.name), !l.isEmpty { labels[t.name] = l } }
            records.append(PatchRecord(slide: slide, x: x, y: y, column: v("column").flatMap(Int.init), row: v("row").flatMap(Int.init), labels: labels))
        }
        guard records.count == info.count else { throw NodeError("\(folder.path): patches.csv has \(records.count) rows, patchset.json says \(info.count)") }
        self.records = records
        reader = try ZarrArrayReader(at: folder.appendingPathComponent("patches"))
    }

    public var count: Int { info.count }

    /// Patches start..<end as uint8 [n, size, size, 3] (reads only the chunks needed).
    public func patches(_ range: Range<Int>) throws -> [UInt8] {
        let per = info.size * info.size * 3
        var out = [UInt8](repeating: 0, count: range.count * per)
        var chunk = range.lowerBound / PatchSet.chunkPatches
        while chunk * PatchSet.chunkPatches < range.upperBound {
            let bytes = try reader.readChunkBytes(at: [chunk, 0, 0, 0])
            let first = chunk * PatchSet.chunkPatches
            for i in max(first, range.lowerBound)..<min(first + PatchSet.chunkPatches, range.upperBound) {
                out.replaceSubrange(((i - range.lowerBound) * per)..<((i - range.lowerBound + 1) * per), with: bytes[((i - first) * per)..<((i - first + 1) * per)])
            }
            chunk += 1
        }
        return out
    }

    public func patch(_ i: Int) throws -> RGBImage {
        RGBImage(width: info.size, height: info.size, pixels: try patches(i..<(i + 1)))
    }

    /// Labels of one task (NaN = missing), as stored in labels/<task>.
    public func labels(_ task: String) throws -> [Float] {
        try ZarrArrayReader(at: folder.appendingPathComponent("labels").appendingPathComponent(task)).read(as: Float.self)
    }

    /// The augmentation attached by an `augmenter` node, if any: call `apply(to:epoch:index:)` with the
    /// patch's index here for fresh, reproducible augmentation every epoch.
    public func augmenter() throws -> Augmenter? {
        let url = folder.appendingPathComponent("augmentation.json")
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        let value = try JSONDecoder().decode(ParamValue.self, from: data)
        guard let recipe = value.mapValue?["recipe"], let seed = value.mapValue?["seed"]?.intValue else {
            throw NodeError("\(url.path): expected {\"recipe\": ..., \"seed\": N}")
        }
        return Augmenter(recipe: try AugmentationRecipes.parse(recipe, file: url.path), seed: UInt64(bitPattern: Int64(seed)))
    }
}

/// Writes a PatchSet folder: patches chunk by chunk (so large grids never sit in memory), then the tables.
public final class PatchSetWriter {
    public let folder: URL
    public let size: Int
    public let count: Int
    private let array: ZarrArrayWriter

    public init(folder: URL, size: Int, count: Int) throws {
        self.folder = folder
        self.size = size
        self.count = count
        array = try ZarrArrayWriter(at: folder.appendingPathComponent("patches"), shape: [count, size, size, 3],
                                    chunkShape: [PatchSet.chunkPatches, size, size, 3], dataType: .uint8, compressionLevel: 1)
    }

    public var chunkCount: Int { (count + PatchSet.chunkPatches - 1) / PatchSet.chunkPatches }

    /// Patches of chunk k (up to 256 of them, in order) as size × size × 3 images. Thread-safe for distinct chunks.
    public func writeChunk(_ k: Int, patches: [RGBImage]) throws {
        var bytes = [UInt8](repeating: 255, count: PatchSet.chunkPatches * size * size * 3)
        for (i, p) in patches.enumerated() {
            precondition(p.width == size && p.height == size)
            bytes.replaceSubrange((i * size * size * 3)..<((i + 1) * size * size * 3), with: p.pixels)
        }
        try array.writeChunk(at: [k, 0, 0, 0], bytes: bytes)
    }

    public func finish(records: [PatchRecord], tasks: [PatchTask], mode: String, mpp: Double) throws {
        precondition(records.count == count)
        let info = PatchSetInfo(mode: mode, size: size, mpp: mpp, count: count, tasks: tasks)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try encoder.encode(info).write(to: folder.appendingPathComponent("patchset.json"))
        var rows: [[String]] = []
        for (i, r) in records.enumerated() {
            rows.append([String(i), r.slide, String(r.x), String(r.y), r.column.map(String.init) ?? "", r.row.map(String.init) ?? ""]
                        + tasks.map { r.labels[$0.name] ?? "" })
        }
        try CSVTable(columns: ["index", "slide", "x", "y", "column", "row"] + tasks.map(\.name), rows: rows)
            .write(to: folder.appendingPathComponent("patches.csv"))
        for task in tasks {
            let values: [Float] = records.map { r in
                guard let text = r.labels[task.name] else { return .nan }
                if let classes = task.classes { return classes.firstIndex(of: text).map(Float.init) ?? .nan }
                return Float(text) ?? .nan
            }
            let writer = try ZarrArrayWriter(at: folder.appendingPathComponent("labels").appendingPathComponent(task.name), shape: [count],
                                             chunkShape: [max(1, min(count, 65_536))], dataType: .float32)
            try writer.write(values)
        }
    }
}
