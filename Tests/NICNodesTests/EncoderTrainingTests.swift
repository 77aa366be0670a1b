import Foundation
import Neural
import XCTest
@testable import NICNodes

/// What the encoder node reports about its training and how it fits patches to architectures.
final class EncoderTrainingTests: XCTestCase {
    func testValidationScoresPerTaskKind() {
        // Regression: R² on the targets (1 for a perfect fit, 0 for the mean, negative when worse).
        let truth = [1.0, 2, 3, 4]
        XCTAssertEqual(EncoderNode.scores(kind: "regression", rows: truth.map { [$0] }, truth: truth)[0].1, 1, accuracy: 1e-12)
        XCTAssertEqual(EncoderNode.scores(kind: "regression", rows: truth.map { _ in [2.5] }, truth: truth)[0].1, 0, accuracy: 1e-12)
        // Binary: logits; accuracy at 0, AUC of the ranking (one of four pairs misordered: 0.75).
        let binary = EncoderNode.scores(kind: "binary", rows: [[-2], [0.5], [-0.1], [3]], truth: [0, 0, 1, 1])
        XCTAssertEqual(binary.map(\.0), ["accuracy", "auc"])
        XCTAssertEqual(binary[0].1, 0.5)
        XCTAssertEqual(binary[1].1, 0.75)
        // Classification: argmax accuracy and macro one-vs-rest AUC of the softmax.
        let classes = EncoderNode.scores(kind: "classification", rows: [[3, 0, 0], [0, 3, 0], [0, 0, 3], [0, 3, 0]], truth: [0, 1, 2, 2])
        XCTAssertEqual(classes[0].1, 0.75)
        XCTAssertGreaterThan(classes[1].1, 0.5)
        XCTAssertTrue(EncoderNode.scores(kind: "binary", rows: [], truth: [])[1].1.isNaN, "no labelled patch: no score")
    }

    func testDownsampleFollowsTheArchitecture() throws {
        let small = try Architecture.parse(yaml: "input: [64, 64, 3]\nlayers: [flatten, {dense: 2}]", file: "small.yaml")
        let full = try Architecture.parse(yaml: "input: [128, 128, 3]\nlayers: [flatten, {dense: 2}]", file: "full.yaml")
        XCTAssertEqual(try EncoderNode.downsample(nil, patch: 128, architecture: small, file: "small.yaml"), 2)
        XCTAssertEqual(try EncoderNode.downsample(nil, patch: 128, architecture: full, file: "full.yaml"), 1)
        XCTAssertEqual(try EncoderNode.downsample(2, patch: 128, architecture: small, file: "small.yaml"), 2)
        XCTAssertThrowsError(try EncoderNode.downsample(2, patch: 128, architecture: full, file: "full.yaml")) { error in
            XCTAssertTrue("\(error)".contains("full.yaml takes 128 px inputs"), "\(error)")
            XCTAssertTrue("\(error)".contains("set 'downsample' to 1"), "\(error)")
        }
        XCTAssertThrowsError(try EncoderNode.downsample(3, patch: 128, architecture: small, file: "small.yaml"))
    }
}
