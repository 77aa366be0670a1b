import Flow
import Foundation
import NICNodes
import XCTest

/// TRIDENT and CLAM feature files as those tools write them (fixtures written by h5py in
/// scripts/features_fixture.py from the tools' own code):
/// - TRIDENT `trident/IO.py` `save_h5` (datasets chunked (1, …), resizable) with the `coords`
///   attributes of `IO.coords_to_h5`; a slide whose tissue segmentation found nothing goes through
///   `WSI.extract_patch_features` with no coordinates and is saved as `features` [0, D], `coords` [0, 2].
/// - CLAM `utils/file_utils.py` `save_hdf5` (no attributes; int32 coords), with each tissue contour
///   patched from its own bounding box (`create_patches_fp.py`), so two contours' grids can put two
///   patches in one cell.
final class ToolFeatureFilesTests: XCTestCase {
    static let fixtures = InteropWorkspace.fixtures.appendingPathComponent("features")

    func features(_ ws: InteropWorkspace, _ dir: String, _ params: String = "") throws -> RunSummary {
        try ws.run("""
        pipeline: tools
        nodes:
          grids: {type: features, params: {dir: \(Self.fixtures.appendingPathComponent(dir).path)\(params.isEmpty ? "" : ", " + params)}}
        """)
    }

    /// A TRIDENT run with a blank slide: the slide is a grid without tissue cells, not a failure.
    func testTridentBlankSlideIsASlideWithoutTissueCells() throws {
        let ws = try InteropWorkspace()
        let summary = try features(ws, "blank")
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let gridSet = try GridSet(folder: try ws.output(summary, "grids", "grids"))
        XCTAssertEqual(gridSet.info.slides.map(\.stem), ["A", "B", "C", "E", "F"], "files' order kept")
        XCTAssertEqual(gridSet.info.codeSize, 8)
        let blank = try XCTUnwrap(gridSet.info.slides.first { $0.stem == "B" })
        XCTAssertEqual(blank.tissueCells, 0)
        let (grid, mask, _, _) = try gridSet.load("B")
        XCTAssertFalse(mask.contains(true))
        XCTAssertTrue(grid.allSatisfy { $0 == 0 })
        XCTAssertEqual(gridSet.slideSet["B"]?.width, 1536, "level0_width of the empty file")
        XCTAssertEqual(gridSet.info.slides.first { $0.stem == "A" }?.tissueCells, 4)
    }

    /// labels.csv names a slide TRIDENT failed on (no file): fail, listing it, by default; skip on request.
    func testMissingFeatureFileFollowsTheMissingPolicy() throws {
        let ws = try InteropWorkspace()
        let labels = Self.fixtures.appendingPathComponent("blank/labels.csv").path
        let failing = try features(ws, "blank", "labels: \(labels)")
        let message = ws.failure(failing, "grids") ?? "succeeded"
        XCTAssertTrue(message.contains("labels.csv:7:1: unknown slide 'D' (line 7)"), message)
        let skipping = try features(ws, "blank", "labels: \(labels), missing: skip")
        XCTAssertTrue(skipping.succeeded, "\(skipping.failures)")
        let gridSet = try GridSet(folder: try ws.output(skipping, "grids", "grids"))
        XCTAssertEqual(gridSet.slideSet.slides.compactMap { $0.labels["patient"] }, ["PA", "PB", "PC", "PE", "PF"])
    }

    /// The blank slide through the patient models: left out with a warning; the others are predicted.
    func testPatientModelsSkipTheBlankSlide() throws {
        let ws = try InteropWorkspace()
        try ws.copyRepo(["nodes/heads/regression.yaml"])
        try ws.write("nodes/patient/tiny.yaml", """
        name: tiny
        input: [2, 2, 8]
        layers:
          - global_avg_pool
          - dense: 4
        """)
        let dir = Self.fixtures.appendingPathComponent("blank")
        let summary = try ws.run("""
        pipeline: blank
        nodes:
          grids: {type: features, params: {dir: \(dir.path), labels: \(dir.path)/labels.csv, missing: skip}}
          cnn:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/tiny.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 2, epochs: 1, batch_size: 2, crops_per_slide: 2, test_crops: 1, seed: 1}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let predictions = try Predictions.read(from: try ws.output(summary, "cnn", "predictions"))
        XCTAssertEqual(Set(predictions.patients), ["PA", "PC", "PE", "PF"], "PB has only the blank slide")
    }

    /// float16 tops out at 65504; TRIDENT's float32 features are kept as they are.
    func testLargeFeaturesStayFloat32() throws {
        let ws = try InteropWorkspace()
        let summary = try features(ws, "large")
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let (grid, mask, _, columns) = try GridSet(folder: try ws.output(summary, "grids", "grids")).load("L")
        XCTAssertEqual(mask.filter { $0 }.count, 3)
        XCTAssertEqual(columns, 3)
        XCTAssertEqual(grid[0], 1e5)
        XCTAssertEqual(grid[8 + 1], -7e4)
        XCTAssertEqual(grid[16 + 2], Float(123456.789))
    }

    func testImpossibleMagnificationsAndCoordinatesBeyondTheSlideAreErrors() throws {
        let ws = try InteropWorkspace()
        let cases = [
            "zero_magnification.h5": "zero_magnification.h5: dataset 'coords@level0_magnification': must be a positive magnification (e.g. 40), found 0.0",
            "negative_magnification.h5": "negative_magnification.h5: dataset 'coords@level0_magnification': must be a positive magnification (e.g. 40), found -1.0",
            "beyond_slide.h5": "beyond_slide.h5: dataset 'coords': row 5 is (3072, 512): the patch's corner lies beyond the 2048 × 1536 slide",
        ]
        for (file, message) in cases.sorted(by: { $0.key < $1.key }) {
            let summary = try features(ws, "bad", "pattern: \(file)")
            let failure = ws.failure(summary, "grids") ?? "succeeded"
            XCTAssertTrue(failure.contains(message), "\(file): \(failure)")
        }
    }

    /// CLAM's neighbouring contours: an error naming both rows by default; `overlapping: mean` averages.
    func testOverlappingCLAMPatchesFollowTheOverlappingPolicy() throws {
        let ws = try InteropWorkspace()
        let failing = try features(ws, "clam_overlap", "patch_size_level0: 512, mpp: 0.25, alignment: nearest")
        let message = ws.failure(failing, "grids") ?? "succeeded"
        XCTAssertTrue(message.contains("rows 2 (2024, 700) and 3 (2124, 700) fall in the same 512 px cell"), message)
        let summary = try features(ws, "clam_overlap", "patch_size_level0: 512, mpp: 0.25, alignment: nearest, overlapping: mean")
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let gridSet = try GridSet(folder: try ws.output(summary, "grids", "grids"))
        let (grid, mask, _, columns) = try gridSet.load("S2")
        let truth = try CSVTable.read(Self.fixtures.appendingPathComponent("clam_overlap/expected.csv")).rows.map { $0[2...].map { Float($0)! } }
        XCTAssertEqual(mask.filter { $0 }.count, 4, "5 patches, two in one cell")
        XCTAssertEqual(gridSet.info.slides[0].tissueCells, 4)
        // Grid through (1000 % 512, 700 % 512) = (488, 188): every patch is in row 1; rows 2 and 3 of
        // the file both snap to column 3 (5 columns).
        XCTAssertEqual(columns, 5)
        for k in 0..<8 { XCTAssertEqual(grid[(5 + 3) * 8 + k], (truth[2][k] + truth[3][k]) / 2, accuracy: 1e-6) }
        for k in 0..<8 { XCTAssertEqual(grid[(5 + 1) * 8 + k], truth[0][k], accuracy: 1e-6) }
    }
}
