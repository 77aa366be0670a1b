import XCTest

@testable import TensorStore

final class JSONTests: XCTestCase {
    func testParsesAllKinds() throws {
        let json = try ZarrJSON.parse(
            #" {"a": [1, -2, 3.5, 1e3, true, false, null], "s": "x\"\\\n\u00e9\ud83d\ude00", "big": 9007199254740993, "o": {}} "#)
        XCTAssertEqual(json["a"], [1, -2, 3.5, 1000.0, true, false, .null])
        XCTAssertEqual(json["s"], "x\"\\\né😀")
        XCTAssertEqual(json["big"], .int(9_007_199_254_740_993))
        XCTAssertEqual(json["o"], .map([:]))
    }

    func testSerializationIsSortedAndRoundTrips() throws {
        let value: ZarrJSON = [
            "zeta": 1, "alpha": ["nested": [1.5, "two", .null]], "mid": "tab\there", "nan": .float(.nan),
            "float": 2.0, "control": "\u{01}",
        ]
        let text = value.serialized()
        XCTAssertLessThan(text.range(of: "alpha")!.lowerBound, text.range(of: "zeta")!.lowerBound)
        XCTAssertTrue(text.contains("\"float\": 2.0"), text)
        XCTAssertTrue(text.contains("\"nan\": \"NaN\""), text)
        XCTAssertTrue(text.contains("\\u0001"), text)
        XCTAssertEqual(value.serialized(), text, "output must be stable")
        var expected = value.mapValue!
        expected["nan"] = "NaN"
        XCTAssertEqual(try ZarrJSON.parse(text), .map(expected))
        XCTAssertEqual(try ZarrJSON.parse(value.serialized(pretty: false)), .map(expected))
    }

    func testRejectsInvalidJSON() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"abc", "tru", "[1] 2", "{\"a\":1,}", "\"\\x\""] {
            XCTAssertThrowsError(try ZarrJSON.parse(bad), "accepted \(bad)")
        }
    }
}
