import Flow
import Foundation
import TensorStore

/// `grid_filter`: the same grids with fewer cells — those where a channel of another GridSet of the same
/// slides reaches a threshold (`head_maps`' `tissue:tumour` ≥ 0.5: the tumour cells). A bag model on
/// the result pools over the cells that matter for a rate (mitoses per tumour area, as pathologists
/// count them in tumour), instead of learning from a few patients to divide by the tumour fraction.
/// Codes are copied unchanged; only each slide's mask narrows.
public struct GridFilter: NodeType {
    public static let name = "grid_filter"
    public static let version = 1
    public static let summary = "Keeps the grid cells where a named channel of another GridSet of the same slides reaches a threshold (e.g. the tumour cells)."
    public static let inputs = [PortSpec("grids", .gridSet, doc: "the grids to filter"),
                                PortSpec("by", .gridSet, doc: "a GridSet of the same slides and cells with the channel (head_maps, object_count)")]
    public static let outputs = [PortSpec("grids", .gridSet, doc: "the same codes and gridset.json, each slide's mask narrowed to the kept cells")]

    public struct Params: NodeParams {
        @Param(doc: "the channel of 'by' that decides (a name of its channels, or a number)") var channel: String
        @Param(doc: "a cell is kept when the channel is at least this") var atLeast = 0.5
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let source = try GridSet(folder: try context.input("grids"))
        let by = try GridSet(folder: try context.input("by"))
        let channel = try by.channel(params.channel, param: "channel")
        let out = try context.output("grids")
        var info = source.info
        var emptied: [String] = []
        for (index, slide) in source.info.slides.enumerated() {
            try context.checkCancellation()
            guard let other = by.info.slides.first(where: { $0.stem == slide.stem }) else {
                throw NodeError("input 'by' has no slide '\(slide.stem)'; it must hold the same slides as 'grids'")
            }
            guard other.rows == slide.rows, other.columns == slide.columns else {
                throw NodeError("slide '\(slide.stem)': 'grids' has \(slide.columns)×\(slide.rows) cells, 'by' \(other.columns)×\(other.rows); they must be grids of the same cells")
            }
            let (values, byMask, _, _) = try by.load(slide.stem)
            let base = source.folder.appendingPathComponent("grids").appendingPathComponent(slide.stem)
            let mask = try ZarrArrayReader(at: base.appendingPathComponent("mask")).read(as: UInt8.self)
            let k = by.info.codeSize
            var kept = [UInt8](repeating: 0, count: mask.count)
            for cell in mask.indices where mask[cell] != 0 && byMask[cell] && Double(values[cell * k + channel]) >= params.atLeast { kept[cell] = 1 }
            let count = kept.reduce(0) { $0 + Int($1) }
            if count == 0 { emptied.append(slide.stem) }
            let folder = out.appendingPathComponent("grids").appendingPathComponent(slide.stem)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for k in 0..<source.info.orientations {
                try FileManager.default.copyItem(at: base.appendingPathComponent("o\(k)"), to: folder.appendingPathComponent("o\(k)"))
            }
            try GridSet.writeMask(kept, rows: slide.rows, columns: slide.columns, to: folder)
            info.slides[index].tissueCells = count
            context.progress(index + 1, of: source.info.slides.count, unit: "slides")
        }
        if !emptied.isEmpty {
            let names = emptied.prefix(20).joined(separator: ", ") + (emptied.count > 20 ? ", …" : "")
            context.warn("\(emptied.count) slide\(emptied.count == 1 ? "" : "s") keep no cell (\(params.channel) < \(params.atLeast) everywhere): \(names)")
        }
        try source.slideSet.write(to: out)
        try info.write(to: out)
    }
}
