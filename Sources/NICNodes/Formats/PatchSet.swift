import Flow
import Foundation
import NICBasics
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
    private let recentChunks = RecentChunks(capacity: 4)

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

    /// Chunks of the patches array; chunk k holds patches `chunkRange(k)`.
    public var chunkCount: Int { (count + PatchSet.chunkPatches - 1) / PatchSet.chunkPatches }

    public func chunkRange(_ k: Int) -> Range<Int> {
        (k * PatchSet.chunkPatches)..<min(count, (k + 1) * PatchSet.chunkPatches)
    }

    /// Patches start..<end as uint8 [n, size, size, 3], decoding each chunk they touch once.
    public func patches(_ range: Range<Int>) throws -> [UInt8] {
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw NodeError("\(folder.path): patches \(range) asked of a PatchSet of \(count)")
        }
        let per = info.size * info.size * 3
        var out = [UInt8](repeating: 0, count: range.count * per)
        guard !range.isEmpty else { return out }
        for k in (range.lowerBound / PatchSet.chunkPatches)...((range.upperBound - 1) / PatchSet.chunkPatches) {
            let bytes = try reader.readChunkBytes(at: [k, 0, 0, 0])
            let first = k * PatchSet.chunkPatches
            let from = max(first, range.lowerBound), to = min(first + PatchSet.chunkPatches, range.upperBound)
            out.withUnsafeMutableBytes { target in
                bytes.withUnsafeBytes { source in
                    // invariant: both buffers hold at least these patches (the chunk is full-shaped).
                    target.baseAddress!.advanced(by: (from - range.lowerBound) * per)
                        .copyMemory(from: source.baseAddress!.advanced(by: (from - first) * per), byteCount: (to - from) * per)  // invariant: a non-empty range of a decoded chunk
                }
            }
        }
        return out
    }

    /// Patches start..<end as images, decoding each chunk they touch once.
    public func images(_ range: Range<Int>) throws -> [RGBImage] {
        split(try patches(range), count: range.count)
    }

    /// The patches of chunk k (`chunkRange(k)`), decoded once.
    public func chunkImages(_ k: Int) throws -> [RGBImage] {
        try images(chunkRange(k))
    }

    /// Patches at arbitrary indices, in the order given, decoding each chunk they touch once.
    public func images(at indices: [Int]) throws -> [RGBImage] {
        var byChunk: [Int: [RGBImage]] = [:]
        for k in Set(indices.map { $0 / PatchSet.chunkPatches }) {
            guard k >= 0, k < chunkCount else { throw NodeError("\(folder.path): patch index out of 0..<\(count)") }
            byChunk[k] = try chunkImages(k)
        }
        // invariant: every index's chunk was decoded just above.
        return indices.map { byChunk[$0 / PatchSet.chunkPatches]![$0 % PatchSet.chunkPatches] }
    }

    /// One patch, for random access: the last few decoded chunks are kept, so neighbouring look-ups
    /// do not decode their chunk again. Loops over many patches read ranges or chunks instead.
    public func patch(_ i: Int) throws -> RGBImage {
        guard i >= 0, i < count else { throw NodeError("\(folder.path): patch \(i) asked of a PatchSet of \(count)") }
        let k = i / PatchSet.chunkPatches
        if let chunk = recentChunks.chunk(k) { return chunk[i % PatchSet.chunkPatches] }
        let chunk = try chunkImages(k)
        recentChunks.keep(k, chunk)
        return chunk[i % PatchSet.chunkPatches]
    }

    private func split(_ bytes: [UInt8], count n: Int) -> [RGBImage] {
        let per = info.size * info.size * 3
        return (0..<n).map { RGBImage(width: info.size, height: info.size, pixels: Array(bytes[($0 * per)..<(($0 + 1) * per)])) }
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

/// The last few decoded chunks of a PatchSet, least recently used first out (for `PatchSet.patch`).
private final class RecentChunks: Sendable {
    private let capacity: Int
    private let entries = Locked<[(chunk: Int, images: [RGBImage])]>([])

    init(capacity: Int) { self.capacity = capacity }

    func chunk(_ k: Int) -> [RGBImage]? {
        entries.withLock { entries in
            guard let at = entries.firstIndex(where: { $0.chunk == k }) else { return nil }
            let entry = entries.remove(at: at)
            entries.append(entry)
            return entry.images
        }
    }

    func keep(_ k: Int, _ images: [RGBImage]) {
        entries.withLock { entries in
            entries.removeAll { $0.chunk == k }
            entries.append((k, images))
            if entries.count > capacity { entries.removeFirst(entries.count - capacity) }
        }
    }
}

/// Writes a PatchSet folder: patches chunk by chunk (so large grids never sit in memory), then the tables.
public final class PatchSetWriter: Sendable {
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
            precondition(p.width == size && p.height == size)  // invariant: patches are read at the PatchSet's size
            bytes.replaceSubrange((i * size * size * 3)..<((i + 1) * size * size * 3), with: p.pixels)
        }
        try array.writeChunk(at: [k, 0, 0, 0], bytes: bytes)
    }

    public func finish(records: [PatchRecord], tasks: [PatchTask], mode: String, mpp: Double) throws {
        precondition(records.count == count)  // invariant: the writer was sized from these records
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
