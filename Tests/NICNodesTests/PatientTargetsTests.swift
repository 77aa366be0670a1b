import Neural
import XCTest
@testable import NICNodes

/// Labels that would train a model on nothing (NaN targets, no events) are errors naming the patient
/// or column, before anything is trained or cached.
final class PatientTargetsTests: XCTestCase {
    func slides(_ rows: [[String: String]]) -> [(stem: String, labels: [String: String])] {
        rows.enumerated().map { ("s\($0.offset)", $0.element) }
    }

    func testNonFiniteOrNegativeTargetsNameThePatient() {
        for bad in ["nan", "inf", "-inf"] {
            XCTAssertThrowsError(try PatientTargets(loss: .meanSquaredError, head: "regression.yaml", columns: ["score"], classes: [],
                                                    slides: slides([["patient": "P1", "score": "1"], ["patient": "P2", "score": bad]]))) { error in
                XCTAssertTrue("\(error)".contains("patient 'P2'") && "\(error)".contains("finite"), "\(error)")
            }
        }
        XCTAssertThrowsError(try PatientTargets(loss: .cox(ties: .breslow), head: "cox.yaml", columns: ["time", "event"], classes: [],
                                                slides: slides([["patient": "P1", "time": "-3", "event": "1"], ["patient": "P2", "time": "5", "event": "0"]]))) { error in
            XCTAssertTrue("\(error)".contains("patient 'P1'"), "\(error)")
        }
    }

    func testSurvivalWithoutEventsIsAnError() {
        XCTAssertThrowsError(try PatientTargets(loss: .cox(ties: .breslow), head: "cox.yaml", columns: ["time", "event"], classes: [],
                                                slides: slides([["patient": "P1", "time": "3", "event": "0"], ["patient": "P2", "time": "5", "event": "0"]]))) { error in
            XCTAssertTrue("\(error)".contains("no patient has an observed event"), "\(error)")
        }
        XCTAssertNoThrow(try PatientTargets(loss: .cox(ties: .breslow), head: "cox.yaml", columns: ["time", "event"], classes: [],
                                            slides: slides([["patient": "P1", "time": "3", "event": "1"], ["patient": "P2", "time": "5", "event": "0"]])))
    }
}
