import Flow
import Foundation
import NICNodes
import Slides
import Synthetic
import TensorStore
import XCTest

/// Point annotations as pathologists make them (issue 27): `nic synth --annotation sparse`, the tile
/// sampler's negatives by distance from every annotated point with positive shifts bounded by it, and the
/// `object_count` floor.
final class SparseAnnotationTests: XCTestCase {
    /// The annotated mitosis points of patches.csv, per slide (level-0 px).
    func points(_ ws: CohortWorkspace) throws -> [String: [(x: Double, y: Double)]] {
        let table = try CSVTable.read(ws.root.appendingPathComponent("cohort/patches.csv"))
        var out: [String: [(x: Double, y: Double)]] = [:]
        for row in table.rows where row[3] == "mitosis" {
            XCTAssertEqual(row[4], "1", "a sparse cohort gives no negatives")
            out[row[0], default: []].append((Double(row[1])!, Double(row[2])!))
        }
        return out
    }

    func testSparseCohortMarksSomeFiguresWithNoise() throws {
        let ws = try CohortWorkspace(patients: 2, size: 1024, annotations: 8, annotation: .sparse(fraction: 0.5, noise: 4))
        let marks = try points(ws)
        var figures = 0, marked = 0
        for entry in ws.cohort.slideSpecs {
            let slide = SyntheticSlide(entry.spec)
            let mitoses = slide.nuclei(x0: 64, y0: 64, x1: 1024 - 64, y1: 1024 - 64).filter { $0.kind == .mitosis }
            figures += mitoses.count
            for m in marks[entry.stem] ?? [] {
                marked += 1
                // Every mark lies within the placement noise (+1 px of rounding) of a true figure.
                let nearest = mitoses.map { hypot($0.x - m.x, $0.y - m.y) }.min() ?? .infinity
                XCTAssertLessThanOrEqual(nearest, 5, "\(entry.stem) mark at \(m)")
            }
        }
        XCTAssertGreaterThan(figures, 10)
        XCTAssertGreaterThan(marked, 0)
        XCTAssertLessThan(marked, figures, "only some figures are marked")
        // The cohort says what it is, and where every figure is, for diagnostics.
        let readme = try String(contentsOf: ws.root.appendingPathComponent("cohort/README.md"), encoding: .utf8)
        XCTAssertTrue(readme.contains("sparse (50 % of figures marked"), readme)
        let figuresCSV = try CSVTable.read(ws.root.appendingPathComponent("cohort/figures.csv"))
        XCTAssertEqual(figuresCSV.rows.filter { $0[3] == "mitosis" }.count,
                       ws.cohort.slideSpecs.map { SyntheticSlide($0.spec).nuclei(x0: 0, y0: 0, x1: 1024, y1: 1024).filter { $0.kind == .mitosis }.count }.reduce(0, +))
    }

    func testLooksChangeTheSlideAndTheDefaultLookIsTheStandardOne() {
        var spec = SyntheticSlideSpec(width: 256, height: 256, seed: 12, tumourFraction: 0.9, mitosisRate: 0.05)
        let standard = SyntheticSlide(spec).render(x: 0, y: 0, width: 256, height: 256)
        spec.look = SyntheticLook.preset("standard")!
        XCTAssertEqual(SyntheticSlide(spec).render(x: 0, y: 0, width: 256, height: 256), standard)
        for name in ["pale", "dark", "small", "coarse"] {
            spec.look = SyntheticLook.preset(name)!
            XCTAssertNotEqual(SyntheticSlide(spec).render(x: 0, y: 0, width: 256, height: 256), standard, name)
        }
        var look = SyntheticLook()
        XCTAssertNil(look.set("halo", 1))
        XCTAssertNotNil(look.set("halo", 2))
        XCTAssertNotNil(look.set("nonsense", 1))
    }

    /// Negatives keep their distance from every annotated point; shifted positives never reach it, even
    /// when the jitter alone (up to 64 px = 32 µm in x and y) would take them beyond a 20 µm bound.
    func testSamplerNegativesKeepDistanceAndShiftedPositivesStayInsideTheBound() throws {
        let ws = try CohortWorkspace(patients: 3, size: 1024, annotations: 8, seed: 5, annotation: .sparse(fraction: 0.6, noise: 3))
        let marks = try points(ws)
        XCTAssertGreaterThan(marks.values.map(\.count).reduce(0, +), 3)
        let summary = try ws.run("""
        pipeline: sparse
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
          tasks:  {kind: table, path: cohort/patches.csv}
        nodes:
          wide:   {type: tile_sampler, in: {slides: cohort, annotations: tasks}, params: {mode: training, tasks: [mitosis], per_task: 60, negative_distance_um: 45, jitter: 0.35, seed: 3}}
          tight:  {type: tile_sampler, in: {slides: cohort, annotations: tasks}, params: {mode: training, tasks: [mitosis], per_task: 60, negative_distance_um: 20, jitter: 0.5, near_negatives: 1, seed: 4}}
          none:   {type: tile_sampler, in: {slides: cohort, annotations: tasks}, params: {mode: training, tasks: [mitosis], per_task: 60, seed: 3}}
        """)
        let message = summary.failures.map(\.message).joined(separator: "\n")
        XCTAssertTrue(message.contains("task 'mitosis' has positives only") && message.contains("negative_distance_um"), message)
        for (node, bound) in [("wide", 45.0), ("tight", 20.0)] {
            let set = try PatchSet(folder: try ws.output(summary, node, "patches"))
            XCTAssertEqual(set.info.tasks.first?.classes, ["0", "1"])
            var positives = 0, negatives = 0, beyondJitterBox = 0
            for r in set.records {
                // µm from the nearest annotated point of the slide (0.5 µm/px).
                let nearest = (marks[r.slide] ?? []).map { 0.5 * hypot($0.x - Double(r.x), $0.y - Double(r.y)) }.min() ?? .infinity
                if r.labels["mitosis"] == "0" {
                    negatives += 1
                    XCTAssertGreaterThanOrEqual(nearest, bound, "\(node): negative at \(r.slide) \(r.x),\(r.y)")
                } else {
                    positives += 1
                    XCTAssertLessThan(nearest, bound, "\(node): positive at \(r.slide) \(r.x),\(r.y)")
                    if nearest > bound - 2 { beyondJitterBox += 1 }
                }
            }
            XCTAssertEqual(positives, 30, node)
            XCTAssertEqual(negatives, 30, node)
            if node == "tight" { XCTAssertGreaterThan(beyondJitterBox, 0, "the bound was reached and held") }
        }
    }

    /// A binary task with negatives of its own (an exhaustive annotator's, or look-alikes): with
    /// `negative_distance_um`, its given negatives stay, except one planted 3 µm from a positive, and its
    /// positives shift by less than the distance although the jitter alone reaches 45 µm.
    func testGivenNegativesCloseToAPositiveAreLeftOutAndPositivesStayInsideTheBound() throws {
        let ws = try CohortWorkspace(patients: 2, size: 1024, annotations: 8, seed: 7)
        let table = try CSVTable.read(ws.root.appendingPathComponent("cohort/patches.csv"))
        var rows = table.rows.filter { $0[3] == "mitosis" }
        let positives = rows.filter { $0[4] == "1" }, givenNegatives = rows.filter { $0[4] == "0" }
        XCTAssertFalse(positives.isEmpty)
        XCTAssertFalse(givenNegatives.isEmpty)
        let x0 = Int(positives[0][1])!
        let planted = [positives[0][0], String(x0 + (x0 > 512 ? -6 : 6)), positives[0][2], "mitosis", "0"]
        rows.append(planted)
        try CSVTable(columns: table.columns, rows: rows).write(to: ws.root.appendingPathComponent("mitosis.csv"))
        let summary = try ws.run("""
        pipeline: given
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
          tasks:  {kind: table, path: mitosis.csv}
        nodes:
          bounded: {type: tile_sampler, in: {slides: cohort, annotations: tasks}, params: {mode: training, per_task: 400, negative_distance_um: 12, jitter: 0.5, seed: 3}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let set = try PatchSet(folder: try ws.output(summary, "bounded", "patches"))
        let marks = Dictionary(grouping: positives, by: { $0[0] }).mapValues { $0.map { (x: Double($0[1])!, y: Double($0[2])!) } }
        var negativesAtGivenPlaces = 0, positivesNearTheBound = 0
        for r in set.records {
            let nearest = (marks[r.slide] ?? []).map { 0.5 * hypot($0.x - Double(r.x), $0.y - Double(r.y)) }.min() ?? .infinity
            if r.labels["mitosis"] == "0" {
                XCTAssertGreaterThanOrEqual(nearest, 12, "negative at \(r.slide) \(r.x),\(r.y)")
                XCTAssertFalse(r.slide == planted[0] && String(r.x) == planted[1] && String(r.y) == planted[2], "the planted negative was left out")
                if givenNegatives.contains(where: { $0[0] == r.slide && $0[1] == String(r.x) && $0[2] == String(r.y) }) { negativesAtGivenPlaces += 1 }
            } else {
                XCTAssertLessThan(nearest, 12, "positive at \(r.slide) \(r.x),\(r.y)")
                if nearest > 8 { positivesNearTheBound += 1 }
            }
        }
        XCTAssertEqual(negativesAtGivenPlaces, set.records.filter { $0.labels["mitosis"] == "0" }.count, "negatives are the given ones, not drawn")
        XCTAssertGreaterThan(positivesNearTheBound, 0, "the jitter reached the bound and was held")
    }

    /// `point_counts`: each patch's label is the number of annotated points inside the box the reader reads,
    /// the task is a regression, nothing is shifted, and the draws cover patches without points (the tissue)
    /// as well as patches with one or more; the same seed gives the same patches.
    func testPointCountsLabelEachPatchWithThePointsInside() throws {
        let ws = try CohortWorkspace(patients: 3, size: 1024, annotations: 8, seed: 5, annotation: .sparse(fraction: 0.6, noise: 3))
        let marks = try points(ws)
        let summary = try ws.run("""
        pipeline: counts
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
          tasks:  {kind: table, path: cohort/patches.csv}
        nodes:
          counts: {type: tile_sampler, in: {slides: cohort, annotations: tasks}, params: {mode: training, tasks: [mitosis], per_task: 200, point_counts: [mitosis], jitter: 0.35, seed: 3}}
          again:  {type: tile_sampler, in: {slides: cohort, annotations: tasks}, params: {mode: training, tasks: [mitosis], per_task: 200, point_counts: [mitosis], jitter: 0.35, seed: 3}}
          bad:    {type: tile_sampler, in: {slides: cohort, annotations: tasks}, params: {mode: training, per_task: 20, point_counts: [nuclei], seed: 3}}
        """)
        let message = summary.failures.map(\.message).joined(separator: "\n")
        XCTAssertTrue(message.contains("task 'nuclei' is in point_counts"), message)
        let set = try PatchSet(folder: try ws.output(summary, "counts", "patches"))
        let again = try PatchSet(folder: try ws.output(summary, "again", "patches"))
        XCTAssertEqual(set.info.tasks.first?.kind, .regression)
        XCTAssertEqual(set.records.count, 200)
        XCTAssertEqual(set.records.map { "\($0.slide) \($0.x) \($0.y)" }, again.records.map { "\($0.slide) \($0.x) \($0.y)" })
        var histogram: [Int: Int] = [:]
        for r in set.records {
            // 128 px at 0.5 µm/px on a 0.5 µm/px slide: the box [x - 64, x + 64).
            let expected = (marks[r.slide] ?? []).filter { Double(r.x - 64) <= $0.x && $0.x < Double(r.x + 64) && Double(r.y - 64) <= $0.y && $0.y < Double(r.y + 64) }.count
            XCTAssertEqual(r.labels["mitosis"], String(expected), "\(r.slide) \(r.x),\(r.y)")
            histogram[expected, default: 0] += 1
        }
        XCTAssertGreaterThan(histogram[0] ?? 0, 20, "tissue without a point is drawn")
        XCTAssertGreaterThan(200 - (histogram[0] ?? 0), 60, "about half the draws hold a point")
    }

    /// object_count on a slide drawn here with known objects: dense pale nuclei everywhere (the slide's
    /// nucleus level), and dark blobs 3× as dark in chosen cells. Each cell's count is the number of blobs
    /// drawn in it, at two stain strengths (the count is stain-relative).
    func testObjectCountFloorOnASlideWithKnownCounts() throws {
        let ws = try CohortWorkspace(patients: 1, size: 512, annotations: 2)
        let size = 1024, cell = 128
        // Dark blobs per cell (column, row) → count, placed away from the cell's borders.
        let blobs: [(column: Int, row: Int, count: Int)] = [(2, 2, 1), (3, 4, 2), (5, 3, 3), (4, 5, 0)]
        for (name, strength) in [("a", 1.0), ("b", 1.3)] {
            var h = [Double](repeating: 0.04, count: size * size)
            func disc(_ cx: Double, _ cy: Double, _ r: Double, _ value: Double) {
                for y in Int(cy - r)...Int(cy + r) { for x in Int(cx - r)...Int(cx + r) where hypot(Double(x) - cx, Double(y) - cy) <= r {
                    if x >= 0, y >= 0, x < size, y < size { h[y * size + x] = max(h[y * size + x], value) } } }
            }
            for y in stride(from: 8, to: size, by: 16) { for x in stride(from: 8, to: size, by: 16) { disc(Double(x), Double(y), 6, 0.5) } }
            for b in blobs {
                for k in 0..<b.count { disc(Double(b.column * cell + 30 + 34 * k), Double(b.row * cell + 64), 7, 1.5) }
            }
            var pixels = [UInt8](repeating: 0, count: size * size * 3)
            let hv = HED.rgbFromHED[0], ev = HED.rgbFromHED[1]
            for i in 0..<(size * size) {
                for c in 0..<3 {
                    let od = strength * h[i] * hv[c] + 0.2 * ev[c]
                    pixels[3 * i + c] = UInt8(max(0, min(255, (240 * pow(10, -od)).rounded())))
                }
            }
            try FileManager.default.createDirectory(at: ws.root.appendingPathComponent("known"), withIntermediateDirectories: true)
            try PyramidTIFFWriter(url: ws.root.appendingPathComponent("known/\(name).tif"), width: size, height: size, compression: .deflate, mpp: 0.5)
                .write(RGBImage(width: size, height: size, pixels: pixels))
        }
        try ws.write("known/labels.csv", "slide,patient,score\na,pa,1\nb,pb,2\n")
        let summary = try ws.run("""
        pipeline: floor
        inputs:
          cohort: {kind: slides, dir: known, pattern: "*.tif", labels: known/labels.csv}
        nodes:
          floor: {type: object_count, in: {slides: cohort}, params: {min_tissue: 0.5}}
          per_cell: {type: grid_readout, in: {grids: floor}, params: {value: dark_objects, target: [score]}}
          per_nucleus: {type: grid_readout, in: {grids: floor}, params: {value: dark_objects, per: nuclei, target: [score]}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let grids = try GridSet(folder: try ws.output(summary, "floor", "grids"))
        XCTAssertEqual(grids.info.codeSize, 3)
        for stem in ["a", "b"] {
            let (grid, mask, rows, columns) = try grids.load(stem)
            XCTAssertEqual(rows, 8)
            var total = 0
            for r in 0..<rows { for c in 0..<columns where mask[r * columns + c] {
                let expected = blobs.first { $0.column == c && $0.row == r }?.count ?? 0
                XCTAssertEqual(grid[(r * columns + c) * 3], Float(expected), "\(stem) cell \(c),\(r) dark objects")
                // 64 nuclei per cell (8 × 8 lattice) where no blob merges with them.
                if expected == 0 { XCTAssertEqual(grid[(r * columns + c) * 3 + 1], 64, accuracy: 1, "\(stem) cell \(c),\(r) nuclei") }
                total += expected
            } }
            XCTAssertEqual(total, 6, "\(stem): every blob counted once")
        }
        let counts = try CSVTable.read(try ws.output(summary, "floor", "grids").appendingPathComponent("counts.csv"))
        XCTAssertEqual(counts.rows.map { $0[2] }, ["6", "6"])
        // The readouts: 6 dark objects over the slide's tissue cells, and over its nuclei.
        XCTAssertEqual(grids.info.channels, ["dark_objects", "nuclei", "tissue_fraction"])
        let perCell = try Predictions.read(from: try ws.output(summary, "per_cell", "predictions"))
        let perNucleus = try Predictions.read(from: try ws.output(summary, "per_nucleus", "predictions"))
        XCTAssertEqual(perCell.patients, ["pa", "pb"])
        for (i, stem) in ["a", "b"].enumerated() {
            let (grid, mask, _, _) = try grids.load(stem)
            let cells = mask.indices.filter { mask[$0] }
            let nuclei = cells.reduce(0.0) { $0 + Double(grid[$1 * 3 + 1]) }
            XCTAssertEqual(perCell.scores[i][0], 6 / Double(cells.count), accuracy: 1e-12, stem)
            XCTAssertEqual(perNucleus.scores[i][0], 6 / nuclei, accuracy: 1e-12, stem)
            XCTAssertEqual(perCell.labels[i], "\(i + 1)")
        }
    }

    func testConnectedComponents() {
        let v: [Float] = [1, 1, 0, 0,
                          0, 1, 0, 1,
                          0, 0, 0, 1,
                          1, 0, 0, 0]
        let all = DarkObjectCounter.components(v, width: 4, height: 4, threshold: 0.5, minArea: 1)
        XCTAssertEqual(all.map(\.area).sorted(), [1, 2, 3])
        XCTAssertEqual(DarkObjectCounter.components(v, width: 4, height: 4, threshold: 0.5, minArea: 2).count, 2)
        XCTAssertEqual(DarkObjectCounter.nucleusLevel([1, 2, 3, 4, 5, 6, 7, 8]), 8)
    }
}
