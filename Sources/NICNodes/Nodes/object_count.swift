import Flow
import Foundation
import NICBasics
import Slides
import TensorStore

/// `object_count`: the non-learned floor beside mean-RGB for anything that is a count of dark objects
/// (mitotic figures): every tissue cell of the compressor's grid (same cells, same mask) gets three
/// numbers instead of codes — dark objects, nuclei, tissue fraction — counted by `DarkObjectCounter`
/// relative to the slide's own nuclei (per-slide stain normalisation: the slide's nucleus level is the
/// median haematoxylin of the darkest quarter of tissue pixels in up to `sample_cells` of its cells).
/// The output is a GridSet, so the probe, MIL and the evaluators read it like any encoder's grids; a
/// learned encoder that does not beat it on a counting target has learned less than a threshold.
/// `counts.csv` holds the per-slide totals: dark objects per mm² of tissue and per 1000 nuclei.
public struct ObjectCount: NodeType {
    public static let name = "object_count"
    public static let version = 2
    public static let summary = "Counts dark haematoxylin objects and nuclei per grid cell, relative to each slide's nuclei (a non-learned floor), as a GridSet."
    public static let inputs = [PortSpec("slides", .slideSet, doc: "the cohort")]
    public static let outputs = [PortSpec("grids", .gridSet, doc: "gridset.json (3 channels: dark objects, nuclei, tissue fraction), grids/<slide>/o0 and mask, counts.csv")]

    public struct Params: NodeParams {
        @Param(doc: "µm/px at which cells are read", .within(0.05, 100)) var mpp = 0.5
        @Param(doc: "cell side in pixels (the compressor's patch size)", .within(8, 4096)) var size = 128
        @Param(doc: "a grid cell is counted when this fraction of it is tissue", .fraction) var minTissue = 0.6
        @Param(doc: "a pixel is dark at this multiple of the slide's nucleus level of haematoxylin", .within(1, 10)) var darkFactor = 1.75
        @Param(doc: "a pixel belongs to a nucleus at this multiple of the nucleus level", .within(0.1, 5)) var nucleusFactor = 0.8
        @Param(doc: "least area of a dark object in µm²", .within(0, 10_000)) var minDarkUm2 = 10.0
        @Param(doc: "least area of a nucleus in µm²", .within(0, 10_000)) var minNucleusUm2 = 5.0
        @Param(doc: "cells per slide sampled (evenly) for its nucleus level", .within(1, 100_000)) var sampleCells = 64
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let slideSet = try SlideSet.read(from: try context.input("slides"))
        let out = try context.output("grids")
        var settings = DarkObjectCounter()
        settings.darkFactor = params.darkFactor
        settings.nucleusFactor = params.nucleusFactor
        let pixelUM2 = params.mpp * params.mpp
        settings.minDarkArea = max(1, Int((params.minDarkUm2 / pixelUM2).rounded()))
        settings.minNucleusArea = max(1, Int((params.minNucleusUm2 / pixelUM2).rounded()))
        let counter = settings
        let cellMM2 = pow(Double(params.size) * params.mpp / 1000, 2)
        var infos: [GridSet.SlideInfo] = []
        var rows = [["slide", "cells", "dark_objects", "nuclei", "nucleus_level", "dark_per_mm2", "dark_per_1000_nuclei"]]
        for (index, entry) in slideSet.slides.enumerated() {
            try context.checkCancellation()
            let slide: Slide
            let mask: TissueMask
            do {
                slide = try entry.open()
                mask = try TissueDetector().detect(slide)
            } catch let error as SlideError { throw NodeError(error.description) }
            let grid = TileGrid(slide: slide, mpp: params.mpp, size: params.size, mask: mask)
            guard grid.rows > 0, grid.columns > 0 else { throw NodeError("\(entry.path): smaller than one \(params.size) px cell at \(params.mpp) µm/px") }
            let cells = grid.tissueCells(minTissue: params.minTissue)
            let reader = GridReader(slide: slide, grid: grid, mpp: params.mpp, size: params.size)
            // Pass 1: the slide's nucleus level from an even sample of its cells.
            let step = max(1, cells.count / params.sampleCells)
            let sample = Array(stride(from: 0, to: cells.count, by: step).map { cells[$0] }.prefix(params.sampleCells))
            let pooled = Locked<[Float]>([])
            try reader.read(sample, workers: context.threads) { _, tile in
                let values = counter.tissueHaematoxylin(tile)
                pooled.withLock { $0 += values }
            }
            guard let level = DarkObjectCounter.nucleusLevel(pooled.current), level > 0 else {
                throw NodeError("\(entry.path): no stained tissue pixels in its \(cells.count) tissue cells; cannot set the slide's nucleus level")
            }
            // Pass 2: every cell.
            let counts = Locked([(dark: Int, nuclei: Int)](repeating: (0, 0), count: cells.count))
            try reader.read(cells, workers: context.threads) { i, tile in
                let c = counter.count(tile, level: level)
                counts.withLock { $0[i] = c }
            }
            let values = counts.current
            var codes = [Float16](repeating: 0, count: grid.rows * grid.columns * 3)
            var maskValues = [UInt8](repeating: 0, count: grid.rows * grid.columns)
            for (k, cell) in cells.enumerated() {
                let g = cell.row * grid.columns + cell.column
                maskValues[g] = 1
                codes[3 * g] = Float16(Float(values[k].dark))
                codes[3 * g + 1] = Float16(Float(values[k].nuclei))
                codes[3 * g + 2] = Float16(Float(grid.tissue[g]))
            }
            try GridSet.writeSlide(codes, channels: 3, mask: maskValues, rows: grid.rows, columns: grid.columns,
                                   to: out.appendingPathComponent("grids").appendingPathComponent(entry.stem))
            infos.append(GridSet.SlideInfo(stem: entry.stem, rows: grid.rows, columns: grid.columns, tissueCells: cells.count))
            let dark = values.reduce(0) { $0 + $1.dark }, nuclei = values.reduce(0) { $0 + $1.nuclei }
            rows.append([entry.stem, "\(cells.count)", "\(dark)", "\(nuclei)", String(format: "%.5f", level),
                         String(format: "%.3f", cells.isEmpty ? 0 : Double(dark) / (Double(cells.count) * cellMM2)),
                         String(format: "%.3f", nuclei == 0 ? 0 : 1000 * Double(dark) / Double(nuclei))])
            context.progress(index + 1, of: slideSet.slides.count, unit: "slides")
        }
        try slideSet.write(to: out)
        try GridSet.Info(codeSize: 3, size: params.size, mpp: params.mpp, orientations: 1, slides: infos,
                         channels: ["dark_objects", "nuclei", "tissue_fraction"]).write(to: out)
        try CSVTable(columns: rows[0], rows: Array(rows.dropFirst())).write(to: out.appendingPathComponent("counts.csv"))
    }
}
