import Flow
import Foundation
import NICBasics
import XCTest

/// Every bad spec must say what is wrong and point at the exact line:column.
final class SpecErrorTests: XCTestCase {
    var ws: Workspace!
    override func setUpWithError() throws { ws = try Workspace() }

    func assertError(_ yaml: String, _ location: String, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        let errors = ws.errors(yaml)
        guard let match = errors.first(where: { $0.hasPrefix(location + ":") }) else {
            XCTFail("no error at \(location); got \(errors)", file: file, line: line)
            return
        }
        for fragment in fragments where !match.contains(fragment) {
            XCTFail("error at \(location) lacks '\(fragment)': \(match)", file: file, line: line)
        }
    }

    func testUnknownNodeTypeSuggestsClosest() {
        assertError("""
        pipeline: p
        nodes:
          a: {type: emitt, params: {value: x}}
        """, "3:13", ["unknown node type 'emitt'", "did you mean 'emit'?"])
    }

    func testUnknownParamSuggestsClosest() {
        assertError("""
        pipeline: p
        nodes:
          a:
            type: emit
            params:
              value: x
              repaet: 2
        """, "7:7", ["unknown param 'repaet'", "did you mean 'repeat'?"])
    }

    func testUnknownInputPortSuggestsClosest() {
        assertError("""
        pipeline: p
        nodes:
          a: {type: emit, params: {value: x}}
          b: {type: concat, in: {aa: a}}
        """, "4:26", ["unknown input port 'aa'", "did you mean 'a'?"])
    }

    func testWrongValueType() {
        assertError("""
        pipeline: p
        nodes:
          a:
            type: emit
            params: {value: x, repeat: "three"}
        """, "5:32", ["param 'repeat' expects int", "a string (\"three\")"])
    }

    func testQuotedNumberForIntIsAnError() {
        assertError("""
        pipeline: p
        nodes:
          a: {type: emit, params: {value: x, repeat: "3"}}
        """, "3:46", ["expects int"])
    }

    func testMissingRequiredParam() {
        assertError("""
        pipeline: p
        nodes:
          a:
            type: emit
            params: {repeat: 2}
        """, "5:13", ["missing required param 'value'"])
    }

    func testDanglingReferenceToNode() {
        assertError("""
        pipeline: p
        nodes:
          first: {type: emit, params: {value: x}}
          b: {type: concat, in: {a: frist}}
        """, "4:29", ["refers to 'frist'", "did you mean 'first'?"])
    }

    func testDanglingFileReference() {
        assertError("""
        pipeline: p
        inputs:
          labels: {kind: table, path: data/missing.csv}
        nodes: {}
        """, "3:31", ["file not found", "data/missing.csv"])
    }

    func testDanglingYAMLReference() {
        assertError("""
        pipeline: p
        nodes:
          a: {type: emit, params: {value: x, recipe: nodes/nope.yaml}}
        """, "3:46", ["file not found", "nodes/nope.yaml"])
    }

    func testDuplicateNodeNameAcrossInputsAndNodes() throws {
        try ws.write("t.csv", "a\n1\n")
        assertError("""
        pipeline: p
        inputs:
          t: {kind: table, path: t.csv}
        nodes:
          t: {type: emit, params: {value: x}}
        """, "5:3", ["duplicate node name 't'", "first defined at pipeline.yaml:3:3"])
    }

    func testDuplicateKeyInNodes() {
        assertError("""
        pipeline: p
        nodes:
          a: {type: emit, params: {value: x}}
          a: {type: emit, params: {value: y}}
        """, "4:3", ["duplicate key 'a'", "pipeline.yaml:3:3"])
    }

    func testCyclePrintsPath() {
        assertError("""
        pipeline: p
        nodes:
          a: {type: concat, in: {a: c}}
          b: {type: concat, in: {a: a}}
          c: {type: concat, in: {a: b}}
        """, "3:29", ["cycle: a -> c -> b -> a"])
    }

    func testPortTypeMismatchNamesBothNodes() throws {
        try ws.write("t.csv", "a\n1\n")
        assertError("""
        pipeline: p
        inputs:
          labels: {kind: table, path: t.csv}
        nodes:
          b:
            type: concat
            in: {a: labels}
        """, "7:13", ["node 'b' input 'a' expects Text, but 'labels' gives Table"])
    }

    func testUnknownTopLevelKey() {
        assertError("""
        pipeline: p
        node:
          a: {type: emit, params: {value: x}}
        """, "2:1", ["unknown key 'node'", "did you mean 'nodes'?"])
    }

    func testUnknownNodeKey() {
        assertError("""
        pipeline: p
        nodes:
          a: {type: emit, parms: {value: x}}
        """, "3:19", ["unknown key 'parms'", "did you mean 'params'?"])
    }

    func testBadChoiceValue() throws {
        try ws.write("t.csv", "a\n1\n")
        assertError("""
        pipeline: p
        inputs:
          t: {kind: table, path: t.csv, delimiter: ":"}
        nodes: {}
        """, "3:44", ["param 'delimiter' must be one of"])
    }

    func testUnconnectedRequiredInput() {
        assertError("""
        pipeline: p
        nodes:
          b: {type: concat}
        """, "3:3", ["input port 'a' (Text) is not connected"])
    }

    func testUnknownOutputPort() {
        assertError("""
        pipeline: p
        nodes:
          a: {type: emit, params: {value: x}}
          b: {type: concat, in: {a: a.outt}}
        """, "4:29", ["has no output 'outt'", "did you mean 'out'?"])
    }

    func testYAMLSyntaxErrorIsLocated() {
        let errors = ws.errors("pipeline: p\nnodes:\n  a: {type: emit, params: {value: x}\n  b: [\n")
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors[0].hasPrefix("4:"), "\(errors)")
        XCTAssertTrue(errors[0].contains("YAML syntax"), "\(errors)")
    }

    func testMissingPipelineName() {
        assertError("""
        nodes:
          a: {type: emit, params: {value: x}}
        """, "1:1", ["missing required key 'pipeline'"])
    }

    func testInputWithNonSourceKind() {
        assertError("""
        pipeline: p
        inputs:
          x: {kind: concat}
        nodes: {}
        """, "3:13", ["kind 'concat' is not a source"])
    }

    func testSyntaxErrorInReferencedFileIsLocatedThere() throws {
        try ws.write("nodes/bad.yaml", "a: 1\nb: [1, 2\n")
        let errors = ws.errors("""
        pipeline: p
        nodes:
          a: {type: emit, params: {value: x, recipe: nodes/bad.yaml}}
        """)
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors[0].contains("YAML syntax"), "\(errors)")
        XCTAssertTrue(errors[0].contains("referenced from pipeline.yaml:3:46"), "\(errors)")
    }

    func testAllErrorsReportedAtOnce() {
        let errors = ws.errors("""
        pipeline: p
        nodes:
          a: {type: emit, params: {valu: x}}
          b: {type: nope}
        """)
        XCTAssertEqual(errors.count, 3, "\(errors)")  // unknown param, missing 'value', unknown type
    }

    func testDescriptionsRenderAsFileLineColumn() {
        let error = SpecError("boom", at: SourceLocation(file: "p.yaml", line: 14, column: 22))
        XCTAssertEqual(error.description, "p.yaml:14:22: error: boom")
    }
}
