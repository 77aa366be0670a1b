import Flow
import Foundation
import NICNodes
import XCTest

/// The `features` node on HDF5 files written by h5py in TRIDENT's and CLAM's layouts
/// (scripts/features_fixture.py): cells hold the features of the patch at their position, bad files
/// are errors naming file and dataset, and patient models and evaluators run on the result.
final class FeaturesSourceTests: XCTestCase {
    static let fixtures = InteropWorkspace.fixtures.appendingPathComponent("features")

    /// The fixture's expected/<stem>.csv (x, y, f0…): the features as text, independent of HDF5.
    func expected(_ url: URL) throws -> [(x: Int, y: Int, features: [Float])] {
        let table = try CSVTable.read(url)
        return table.rows.map { row in (Int(row[0])!, Int(row[1])!, row[2...].map { Float($0)! }) }
    }

    func testTridentFilesRoundTripIntoAGridSetWhoseCellsAreTheFeatures() throws {
        let ws = try InteropWorkspace()
        let dir = Self.fixtures.appendingPathComponent("trident")
        let gridSet = try ws.tridentGridSet()
        XCTAssertEqual(gridSet.info.codeSize, 8)
        XCTAssertEqual(gridSet.info.size, 256, "patch_size at the target magnification")
        XCTAssertEqual(gridSet.info.mpp, 0.5, accuracy: 1e-9, "40× level 0 (0.25 µm/px) × 512 / 256")
        XCTAssertEqual(gridSet.info.slides.count, 12)
        XCTAssertEqual(gridSet.slideSet.slides.map(\.stem), gridSet.info.slides.map(\.stem))
        XCTAssertEqual(gridSet.slideSet["P03-1"]?.labels["patient"], "P03")
        for slide in gridSet.info.slides {
            let truth = try expected(dir.appendingPathComponent("expected/\(slide.stem).csv"))
            let (grid, mask, rows, columns) = try gridSet.load(slide.stem)
            XCTAssertEqual(slide.tissueCells, truth.count)
            XCTAssertEqual(mask.filter { $0 }.count, truth.count, "one cell per patch, no others")
            XCTAssertEqual(slide.cellLevel0, 512)
            for patch in truth {
                // TRIDENT's coordinates are multiples of the patch side: the grid starts at the slide's corner.
                let column = patch.x / 512, row = patch.y / 512
                XCTAssertTrue(row < rows && column < columns && mask[row * columns + column], "\(slide.stem) (\(patch.x), \(patch.y))")
                let cell = Array(grid[((row * columns + column) * 8)..<((row * columns + column + 1) * 8)])
                for (a, b) in zip(cell, patch.features) { XCTAssertEqual(a, b, accuracy: max(1e-3, abs(b) * 1e-3), "float16 storage") }
                let rect = try gridSet.cellRect(slide.stem, column: column, row: row)
                XCTAssertEqual(rect.x, Double(patch.x))
                XCTAssertEqual(rect.y, Double(patch.y))
                XCTAssertEqual(rect.width, 512)
            }
        }
    }

    func testCLAMFilesNeedThePatchSideAndSnapPerContourGridsToTheNearestCell() throws {
        let ws = try InteropWorkspace()
        let dir = Self.fixtures.appendingPathComponent("clam")
        func run(_ params: String) throws -> RunSummary {
            try ws.run("""
            pipeline: clam
            nodes:
              grids: {type: features, params: {dir: \(dir.path), \(params)}}
            """)
        }
        let noSide = try run("mpp: 0.25")
        XCTAssertTrue(ws.failure(noSide, "grids")?.contains("S1.h5: dataset 'coords': no 'patch_size_level0' attribute") == true, "\(noSide.failures)")
        let exact = try run("patch_size_level0: 512")
        XCTAssertTrue(ws.failure(exact, "grids")?.contains("not on the grid of 512 px patches") == true, "\(exact.failures)")
        let summary = try run("patch_size_level0: 512, mpp: 0.25, alignment: nearest")
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let gridSet = try GridSet(folder: try ws.output(summary, "grids", "grids"))
        let slide = gridSet.info.slides[0]
        let (grid, mask, _, columns) = try gridSet.load("S1")
        // Origin: the smallest coordinates modulo the side (1000 % 512, 700 % 512).
        XCTAssertEqual(slide.originX, 488)
        XCTAssertEqual(slide.originY, 188)
        let truth = try expected(dir.appendingPathComponent("expected.csv"))
        XCTAssertEqual(mask.filter { $0 }.count, truth.count)
        for patch in truth {
            let column = Int((Double(patch.x - 488) / 512).rounded()), row = Int((Double(patch.y - 188) / 512).rounded())
            XCTAssertTrue(mask[row * columns + column])
            XCTAssertEqual(grid[(row * columns + column) * 8], patch.features[0], accuracy: max(1e-3, abs(patch.features[0]) * 1e-3))
        }
        XCTAssertEqual(gridSet.slideSet["S1"]?.mppSource, "param")
    }

    func testBadFilesAreErrorsNamingFileAndDataset() throws {
        let ws = try InteropWorkspace()
        let dir = Self.fixtures.appendingPathComponent("bad")
        let cases = [
            "rank3.h5": "rank3.h5: dataset 'features': expected rank 2 [N patches, D features], found shape [6, 1, 8]",
            "no_coords.h5": "no_coords.h5: dataset 'coords': missing",
            "count_mismatch.h5": "count_mismatch.h5: dataset 'coords': 5 rows, but 'features' has 6",
            "off_grid.h5": "off_grid.h5: dataset 'coords': row 4 is (612, 512), not on the grid of 512 px patches",
            "overlap.h5": "overlap.h5: dataset 'coords@overlap': 64: overlapping patches do not tile a grid",
            "nan.h5": "nan.h5: dataset 'features': row 2, feature 3 is nan",
        ]
        for (file, message) in cases.sorted(by: { $0.key < $1.key }) {
            let summary = try ws.run("""
            pipeline: bad
            nodes:
              grids: {type: features, params: {dir: \(dir.path), pattern: \(file)}}
            """)
            let failure = ws.failure(summary, "grids") ?? "succeeded"
            XCTAssertTrue(failure.contains(message), "\(file): \(failure)")
        }
        let notHDF5 = try ws.write("notes/a.h5", "not hdf5")
        let summary = try ws.run("""
        pipeline: bad
        nodes:
          grids: {type: features, params: {dir: \(notHDF5.deletingLastPathComponent().path)}}
        """)
        XCTAssertTrue(ws.failure(summary, "grids")?.contains("a.h5: not an HDF5 file") == true, "\(summary.failures)")
    }

    /// The point of the node: a patient model, a probe and the evaluator on TRIDENT features, unchanged.
    func testPatientModelProbeAndEvaluatorRunOnTridentFeatures() throws {
        let ws = try InteropWorkspace()
        try ws.copyRepo(["nodes/heads/regression.yaml"])
        try ws.write("nodes/patient/tiny.yaml", """
        name: tiny
        input: [4, 4, 8]
        layers:
          - global_avg_pool
          - dense: 4
        """)
        let dir = Self.fixtures.appendingPathComponent("trident")
        let summary = try ws.run("""
        pipeline: trident-model
        nodes:
          grids: {type: features, params: {dir: \(dir.path), labels: \(dir.path)/labels.csv}}
          model:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/tiny.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 3, epochs: 2, batch_size: 4, test_crops: 1, seed: 5}
          probe: {type: probe, in: {grids: grids}, params: {head: nodes/heads/regression.yaml, target: [score], folds: 3, inner_folds: 2, seed: 5, pooling: [mean]}}
          eval_model: {type: evaluator, in: {predictions: model}, params: {bootstrap: 50}}
          eval_probe: {type: evaluator, in: {predictions: probe}, params: {bootstrap: 50}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let patients = (0..<10).map { String(format: "P%02d", $0) }
        for node in ["model", "probe"] {
            let predictions = try Predictions.read(from: try ws.output(summary, node, "predictions"))
            XCTAssertEqual(predictions.patients, patients, node)
            XCTAssertTrue(predictions.scores.allSatisfy { $0.allSatisfy(\.isFinite) }, node)
        }
        // Feature 0 carries the score (+ noise of sd 0.5 per patch, averaged over ~20 patches; mean
        // feature 0 alone ranks the patients perfectly): a ridge probe on 8 mean-pooled features, fitted
        // on 6–7 patients a fold, must find it (0.84 with this seed; 7 pure-noise features are the risk).
        let metrics = try JSONSerialization.jsonObject(with: Data(contentsOf: try ws.output(summary, "eval_probe", "metrics").appendingPathComponent("metrics.json"))) as! [String: Any]
        let spearman = ((metrics["metrics"] as! [String: Any])["spearman"] as! [String: Any])["value"] as! Double
        XCTAssertGreaterThan(spearman, 0.7, "\(spearman)")
    }
}
