import Flow
import Foundation
import NICBasics
import Slides
import TensorStore
import XCTest
@testable import NICNodes

/// The compressor's reading and encoding overlap (a reader thread beside the encoder, sharing the
/// node's budget), yet its grids are exactly those of reading every tissue cell one by one and
/// encoding each band's cells in batches, in every orientation.
final class CompressorTests: XCTestCase {
    func testOverlappedCompressionEqualsCellByCellEncoding() throws {
        let ws = try CohortWorkspace(patients: 2, size: 768, annotations: 6)
        try ws.writeTinyEncoder()  // not invariant to rotation: a code stored for the wrong orientation or cell shows
        let (batchSize, bandRows) = (7, 2)
        let pipeline = """
        pipeline: compress
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
          annotations: {kind: table, path: cohort/patches.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort, annotations: annotations}, params: {mode: training, per_task: 8, seed: 1}}
          enc: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/tiny.yaml, epochs: 1, batch_size: 8, validation: 0.5}}
          grids: {type: compressor, in: {slides: cohort, encoder: enc}, params: {min_tissue: 0.3, orientations: "8", batch_size: \(batchSize), band_rows: \(bandRows), previews: 1}}
        """
        let summary = try ws.run(pipeline, jobs: 1)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let model = try EncoderModel(folder: try ws.output(summary, "enc", "model"))
        let grids = try ws.output(summary, "grids", "grids")
        let gridSet = try GridSet(folder: grids)
        let c = gridSet.info.codeSize
        var encoded = 0
        for entry in gridSet.slideSet.slides {
            let slide = try entry.open()
            let grid = TileGrid(slide: slide, mpp: 0.5, size: model.info.patchSize, mask: try TissueDetector().detect(slide))
            let cells = grid.tissueCells(minTissue: 0.3)
            encoded += cells.count * 8
            for k in 0..<8 {
                var expected = [Float16](repeating: 0, count: grid.rows * grid.columns * c)
                for band in 0..<((grid.rows + bandRows - 1) / bandRows) {
                    let bandCells = cells.filter { $0.row / bandRows == band }
                    for start in stride(from: 0, to: bandCells.count, by: batchSize) {
                        let batch = Array(bandCells[start..<min(bandCells.count, start + batchSize)])
                        let patches = try batch.map { cell in
                            let origin = grid.origin(column: cell.column, row: cell.row)
                            return Dihedral.apply(try slide.readRegion(x: origin.x, y: origin.y, width: 128, height: 128, mpp: 0.5), orientation: k)
                        }
                        let codes = try model.encode(patches)
                        for (j, cell) in batch.enumerated() {
                            for ch in 0..<c { expected[(cell.row * grid.columns + cell.column) * c + ch] = Float16(codes.data[j * c + ch]) }
                        }
                    }
                }
                let stored = try ZarrArrayReader(at: grids.appendingPathComponent("grids/\(entry.stem)/o\(k)")).read(as: Float16.self)
                XCTAssertEqual(stored.map(\.bitPattern), expected.map(\.bitPattern), "\(entry.stem) orientation \(k)")
            }
        }
        XCTAssertGreaterThan(encoded, 0)
        // Where the time went, and the budget held: reading and encoding never ran more threads than it.
        let time = try JSONDecoder().decode(CompressionTime.self, from: Data(contentsOf: grids.appendingPathComponent("time.json")))
        XCTAssertEqual(time.patches, encoded)
        XCTAssertGreaterThan(time.encoding, 0)
        XCTAssertGreaterThan(time.reading, 0)
        XCTAssertLessThanOrEqual(time.firstEncode, time.total)
        let budget = try XCTUnwrap(summary.threads["grids"]).budget
        XCTAssertGreaterThanOrEqual(time.mostThreads, 1)
        XCTAssertLessThanOrEqual(time.mostThreads, budget)

        // A gather whose slides were all compressed before (as under Slurm, by array tasks) sums
        // their time all the same; each slide's slide.json has its keys sorted (the same bytes in
        // every process).
        guard case .valid(let entry, let manifest) = ws.cache.lookup(try XCTUnwrap(summary.entries["grids"]).lastPathComponent) else {
            return XCTFail("grids not cached")
        }
        let items = try XCTUnwrap(manifest.items)
        XCTAssertEqual(items.count, gridSet.slideSet.slides.count)
        for key in items {
            guard case .valid(let item, _) = ws.cache.lookup(key) else { return XCTFail("item \(key) not cached") }
            let bytes = try Data(contentsOf: item.appendingPathComponent("slide.json"))
            let sorted = JSONEncoder()
            sorted.outputFormatting = [.sortedKeys]
            XCTAssertEqual(bytes, try sorted.encode(try JSONDecoder().decode(GridSet.SlideInfo.self, from: bytes)))
        }
        try FileManager.default.removeItem(at: entry)
        let gathered = try ws.run(pipeline, jobs: 1)
        XCTAssertEqual(gathered.outcomes["grids"], .executed)
        let gatheredTime = try JSONDecoder().decode(CompressionTime.self, from: Data(contentsOf: try ws.output(gathered, "grids", "grids").appendingPathComponent("time.json")))
        XCTAssertEqual(gatheredTime, time)
    }

    /// `shift_pool: max` with one window per cell has nothing to pool: refused at validate, at the param.
    func testShiftPoolWithoutShiftsIsRefusedAtValidate() throws {
        let ws = try CohortWorkspace(patients: 2, size: 768, annotations: 6)
        XCTAssertThrowsError(try ws.run(CohortWorkspace.meanRGBGrids(pipeline: "pool") + """
          pooled: {type: compressor, in: {slides: cohort, encoder: rgb}, params: {shift_pool: max}}

        """)) { error in
            XCTAssertTrue("\(error)".contains("node 'pooled' param 'shift_pool'") && "\(error)".contains("shifts is 1"), "\(error)")
        }
    }

    /// `shifts: 3`: each cell's code is the mean of the codes of 3 × 3 windows moved by −⅓, 0 and +⅓ of a
    /// cell in x and y (windows past the slide's edge read white), in every orientation; the grid set
    /// records the shifts, and without them it records none. `shift_pool: max` keeps each channel's
    /// largest value over the same windows instead, and says so in gridset.json.
    func testShiftedWindowsAverageTheCodesOfEachCell() throws {
        let ws = try CohortWorkspace(patients: 2, size: 768, annotations: 6)
        try ws.writeTinyEncoder()
        let summary = try ws.run("""
        pipeline: shifts
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
          annotations: {kind: table, path: cohort/patches.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort, annotations: annotations}, params: {mode: training, per_task: 8, seed: 1}}
          enc: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/tiny.yaml, epochs: 1, batch_size: 8, validation: 0.5}}
          grids: {type: compressor, in: {slides: cohort, encoder: enc}, params: {min_tissue: 0.3, orientations: "8", shifts: 3, batch_size: 20, band_rows: 2, previews: 0}}
          plain: {type: compressor, in: {slides: cohort, encoder: enc}, params: {min_tissue: 0.3, previews: 0}}
          maxed: {type: compressor, in: {slides: cohort, encoder: enc}, params: {min_tissue: 0.3, shifts: 3, shift_pool: max, batch_size: 20, band_rows: 2, previews: 0}}
        """, jobs: 1)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let model = try EncoderModel(folder: try ws.output(summary, "enc", "model"))
        let grids = try ws.output(summary, "grids", "grids")
        let maxed = try ws.output(summary, "maxed", "grids")
        let gridSet = try GridSet(folder: grids)
        XCTAssertEqual(gridSet.info.shifts, 3)
        XCTAssertNil(gridSet.info.shiftPool, "the mean is the default and is not written")
        XCTAssertEqual(try GridSet(folder: maxed).info.shiftPool, "max")
        XCTAssertNil(try GridSet(folder: try ws.output(summary, "plain", "grids")).info.shifts)
        let c = gridSet.info.codeSize
        var compared = 0
        for entry in gridSet.slideSet.slides {
            let slide = try entry.open()
            let grid = TileGrid(slide: slide, mpp: 0.5, size: model.info.patchSize, mask: try TissueDetector().detect(slide))
            let step = Int((grid.cellWidth / 3).rounded())
            for k in [0, 5] {
                let stored = try ZarrArrayReader(at: grids.appendingPathComponent("grids/\(entry.stem)/o\(k)")).read(as: Float16.self)
                for cell in grid.tissueCells(minTissue: 0.3).prefix(6) {
                    let origin = grid.origin(column: cell.column, row: cell.row)
                    var windows: [RGBImage] = []
                    for dy in [-step, 0, step] {
                        for dx in [-step, 0, step] {
                            windows.append(Dihedral.apply(try slide.readRegion(x: origin.x + dx, y: origin.y + dy, width: 128, height: 128, mpp: 0.5), orientation: k))
                        }
                    }
                    let codes = try model.encode(windows)
                    let storedMax = k == 0 ? try ZarrArrayReader(at: maxed.appendingPathComponent("grids/\(entry.stem)/o0")).read(as: Float16.self) : []
                    for ch in 0..<c {
                        let mean = (0..<9).reduce(Float(0)) { $0 + codes.data[$1 * c + ch] } / 9
                        let value = Float(stored[(cell.row * grid.columns + cell.column) * c + ch])
                        XCTAssertEqual(value, mean, accuracy: 2e-3 * max(1, abs(mean)), "\(entry.stem) cell \(cell) orientation \(k) channel \(ch)")
                        if k == 0 {
                            let largest = (0..<9).map { codes.data[$0 * c + ch] }.max() ?? .nan
                            let pooled = Float(storedMax[(cell.row * grid.columns + cell.column) * c + ch])
                            XCTAssertEqual(pooled, largest, accuracy: 2e-3 * max(1, abs(largest)), "max: \(entry.stem) cell \(cell) channel \(ch)")
                        }
                    }
                    compared += 1
                }
            }
        }
        XCTAssertGreaterThan(compared, 0)
    }

    func testSharedBudgetNeverHandsOutMoreThanItHas() {
        for total in [1, 2, 3] {
            // One stage per worker: `acquire` returns what the whole stage holds, so two workers of one
            // stage would each count the stage's threads and the holders' sum would overcount.
            let budget = SharedBudget(stages: 8, total: { total })
            let inUse = Locked((now: 0, most: 0))
            DispatchQueue.concurrentPerform(iterations: 8) { worker in
                let stage = worker
                for round in 0..<200 {
                    let got = budget.acquire(stage, most: 1 + (round + worker) % 3)
                    inUse.withLock { $0.now += got; $0.most = max($0.most, $0.now) }
                    inUse.withLock { $0.now -= got }
                    budget.release(stage)
                }
            }
            XCTAssertLessThanOrEqual(budget.peak, total)
            XCTAssertLessThanOrEqual(inUse.current.most, total, "threads held at once, counted by the holders")
            XCTAssertGreaterThanOrEqual(budget.peak, 1)
        }
        // A waiting stage holds nothing, so the working one takes everything.
        let budget = SharedBudget(stages: 2, total: { 2 })
        XCTAssertEqual(budget.acquire(0, most: 5), 2)
        XCTAssertEqual(budget.take(1, most: 2), 0, "nothing free")
        budget.release(0, keep: 1)
        XCTAssertEqual(budget.take(1, most: 2), 1)
        budget.release(0)
        XCTAssertEqual(budget.take(1, most: 2), 2)

        // A stage that asked to grow gets what the other gives back while it runs.
        let shared = SharedBudget(stages: 2, total: { 2 })
        let grown = Locked([Int]())
        XCTAssertEqual(shared.acquire(0, most: 1), 1)
        XCTAssertEqual(shared.acquire(1, most: 2, grow: { n in grown.withLock { $0.append(n) } }), 1)
        shared.release(0)
        XCTAssertEqual(grown.current, [2])
        XCTAssertEqual(shared.take(0, most: 1), 0, "the growing stage took it back")
        shared.release(1)
        XCTAssertEqual(shared.take(0, most: 2), 2)
        XCTAssertLessThanOrEqual(shared.peak, 2)
    }
}
