import Foundation
import NICBasics
import Neural
@testable import NICNodes
import XCTest

/// A head file is decoded with its own keys: what only other architectures take is a typo here, the
/// loss is required, and the last layer must be the dense one a task sizes.
final class HeadFileTests: XCTestCase {
    func errors(_ yaml: String) -> [String] {
        do {
            _ = try HeadFile.parse(text: yaml, file: "h.yaml")
            return []
        } catch let error as SpecErrors { return error.errors.map(\.description) }
        catch { return ["\(error)"] }
    }

    func testKeysOfOtherArchitecturesAreUnknownInAHead() {
        XCTAssertEqual(errors("layers: [{dense: 2}]\nloss: mse\npool: mean\n"),
                       ["h.yaml:3:1: error: unknown key 'pool'; expected 'auxiliary', 'description', 'input', 'layers', 'loss', 'name'"])
    }

    func testAHeadNeedsItsLossAndALastDenseLayer() {
        XCTAssertEqual(errors("layers: [{dense: 2}]\nlos: mse\n"), ["h.yaml:2:1: error: missing 'loss' ('los' is written: a typo?)"])
        XCTAssertEqual(errors("layers: [{dense: 2}, relu]\nloss: mse\n"),
                       ["h.yaml:1:9: error: 'layers': a head's last layer must be 'dense' (its width is set from the task)"])
    }

    func testTheTaskSetsTheWidthAndKeepsTheLayersOptions() throws {
        let head = try HeadFile.parse(text: "layers: [{dense: {units: 1, bias: false, l2: 0.5}}]\nloss: {type: softmax_cross_entropy}\n", file: "h.yaml")
        XCTAssertEqual(head.loss, .softmaxCrossEntropy(classWeights: nil))
        guard case let .dense(units, bias, l2) = head.architecture(outputs: 5).blocks[0].layers[0].config else { return XCTFail("not dense") }
        XCTAssertEqual(units, 5)
        XCTAssertFalse(bias)
        XCTAssertEqual(l2, 0.5)
        guard case .dense(1, _, _) = head.written.blocks[0].layers[0].config else { return XCTFail("the file's own width is kept as written") }
    }
}
