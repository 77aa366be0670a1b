import Flow
import Foundation
import NICNodes
import XCTest

/// The encoder's model records the µm/px it was trained at; the compressor applies it there by default,
/// and applying it at another magnification must be asked for (`magnification_change`), never a
/// silent mismatch between a re-typed `mpp` and the encoder.
final class MagnificationTests: XCTestCase {
    func json(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    func testCompressorTakesTheEncodersMagnificationAndRefusesAnotherUnlessAskedTo() throws {
        let ws = try CohortWorkspace(patients: 2)
        try ws.copyRepoNodes(["encoders/mean-rgb.yaml"])
        let start = """
        pipeline: magnification
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 2, mpp: 1.0}}
          rgb: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}}

        """
        func compressor(_ params: String) -> String {
            start + "  grids: {type: compressor, in: {slides: cohort, encoder: rgb}, params: {min_tissue: 0.3, previews: 0\(params)}}\n"
        }

        let taken = try ws.run(compressor(""))
        XCTAssertTrue(taken.succeeded, "\(taken.failures)")
        XCTAssertEqual(try json(ws.output(taken, "rgb", "model").appendingPathComponent("model.json"))["mpp"] as? Double, 1.0)
        XCTAssertEqual(try json(ws.output(taken, "grids", "grids").appendingPathComponent("gridset.json"))["mpp"] as? Double, 1.0,
                       "without 'mpp' the compressor reads patches at the encoder's 1.0 µm/px")

        let same = try ws.run(compressor(", mpp: 1.0"))
        XCTAssertTrue(same.succeeded, "\(same.failures)")

        let refused = try ws.run(compressor(", mpp: 0.5"))
        XCTAssertFalse(refused.succeeded)
        let message = refused.failures.map(\.message).joined(separator: "\n")
        XCTAssertTrue(message.contains("param 'mpp': 0.5 µm/px, but the encoder was trained on patches at 1.0 µm/px") && message.contains("magnification_change: true"), message)

        let changed = try ws.run(compressor(", mpp: 0.5, magnification_change: true"))
        XCTAssertTrue(changed.succeeded, "\(changed.failures)")
        XCTAssertEqual(try json(ws.output(changed, "grids", "grids").appendingPathComponent("gridset.json"))["mpp"] as? Double, 0.5)
    }
}
