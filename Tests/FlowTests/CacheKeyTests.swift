import Flow
import Foundation
import ToyNodes
import XCTest

final class CacheKeyTests: XCTestCase {
    var ws: Workspace!
    override func setUpWithError() throws { ws = try Workspace() }

    let chain = """
    pipeline: keys
    nodes:
      a: {type: emit, params: {value: x, repeat: 2, scale: 0.5, tags: [one, two], options: {k: 1, j: [true, null]}}}
      b: {type: emit, params: {value: y}}
      ab: {type: concat, in: {a: a, b: b}, params: {separator: "-"}}
      abb: {type: concat, in: {a: ab, b: b}}
      lone: {type: emit, params: {value: z}}
    """

    func keys(_ yaml: String) throws -> [String: String] {
        Dictionary(uniqueKeysWithValues: try ws.plan(yaml).nodes.map { ($0.name, $0.key) })
    }

    func testReformattingChangesNoKey() throws {
        let reformatted = """
        # the same pipeline, written differently
        nodes:
          lone:   {params: {value: 'z'}, type: emit}
          abb:
            in: {b: b, a: ab}
            type: concat
          ab:
            type: "concat"
            params:
              separator: '-'     # quoted differently
            in:
              b: b
              a: a
          b:
            type: emit
            params: {value: "y", repeat: 1}   # explicit default
          a:
            type: emit
            params:
              options: {j: [true, ~], k: 1}
              tags:
                - one
                - "two"
              scale: 5.0e-1
              repeat: 2
              value: x
        pipeline: "keys"
        """
        XCTAssertEqual(try keys(chain), try keys(reformatted))
    }

    func testParamChangeRerunsExactlyNodeAndDescendants() throws {
        let first = try ws.run(chain)
        XCTAssertTrue(first.summary.succeeded)
        XCTAssertEqual(Set(first.executed), ["a", "b", "ab", "abb", "lone"])
        XCTAssertEqual(try readText(first.summary.entries["abb"]!), "xx-y+y")

        let unchanged = try ws.run(chain)
        XCTAssertEqual(unchanged.executed, [], "an unchanged rerun must execute nothing")
        XCTAssertEqual(unchanged.summary.cached.count, 5)

        let edited = chain.replacingOccurrences(of: "repeat: 2", with: "repeat: 3")
        let plan = try ws.plan(edited)
        XCTAssertEqual(plan.node(named: "a")?.reasons, ["params changed: repeat"])
        XCTAssertEqual(plan.node(named: "ab")?.reasons, ["input 'a' changed"])
        XCTAssertEqual(plan.node(named: "abb")?.reasons, ["input 'a' changed"])
        XCTAssertEqual(plan.node(named: "b")?.status, .cached)
        let second = try ws.run(edited)
        XCTAssertEqual(Set(second.executed), ["a", "ab", "abb"])
        XCTAssertEqual(second.executed.count, 3, "each affected node runs once")
        XCTAssertEqual(try readText(second.summary.entries["abb"]!), "xxx-y+y")

        // Going back to the first spec finds everything cached again.
        XCTAssertEqual(try ws.run(chain).executed, [])
    }

    func testNewPipelineSaysNoCachedOutput() throws {
        let plan = try ws.plan(chain)
        XCTAssertTrue(plan.nodes.allSatisfy { $0.status == .willRun && $0.reasons == ["no cached output"] })
    }

    func testReferencedFileByContentNotFormatting() throws {
        try ws.write("nodes/recipe.yaml", "suffix: '!'\nlevel: 3\n")
        let yaml = """
        pipeline: refs
        nodes:
          a: {type: emit, params: {value: x, recipe: nodes/recipe.yaml}}
          b: {type: concat, in: {a: a}}
        """
        let run = try ws.run(yaml)
        XCTAssertEqual(try readText(run.summary.entries["a"]!), "x!")

        // Comments, order and quoting in the referenced file change nothing.
        try ws.write("nodes/recipe.yaml", "# a recipe\nlevel: 3   # three\nsuffix: \"!\"\n")
        XCTAssertEqual(try ws.run(yaml).executed, [])

        // A changed value reruns the referencing node, and says which file changed.
        try ws.write("nodes/recipe.yaml", "suffix: '?'\nlevel: 3\n")
        let plan = try ws.plan(yaml)
        XCTAssertEqual(plan.node(named: "a")?.reasons.count, 1)
        XCTAssertTrue(plan.node(named: "a")!.reasons[0].hasPrefix("file changed: recipe"), "\(plan.node(named: "a")!.reasons)")
        XCTAssertEqual(Set(try ws.run(yaml).executed), ["a", "b"])
    }

    func testExternalFileByContentWithStateFile() throws {
        try ws.write("data/t.csv", "a,b\n1,2\n")
        let yaml = """
        pipeline: files
        inputs:
          t: {kind: table, path: data/t.csv}
        nodes:
          d: {type: describe, in: {table: t}}
        """
        XCTAssertEqual(try ws.run(yaml).summary.executed, ["d", "t"])
        // Touching the file without changing it: re-hashed (mtime changed) but same key.
        let url = ws.root.appendingPathComponent("data/t.csv")
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(10)], ofItemAtPath: url.path)
        XCTAssertEqual(try ws.run(yaml).summary.executed, [])
        // Changing its content reruns both, with the reason.
        try ws.write("data/t.csv", "a,b\n1,3\n")
        let plan = try ws.plan(yaml)
        XCTAssertEqual(plan.node(named: "t")?.reasons, ["file changed: path (\(url.path))"])
        XCTAssertEqual(plan.node(named: "d")?.reasons, ["input 'table' changed"])
        XCTAssertEqual(try ws.run(yaml).summary.executed, ["d", "t"])
    }

    func testStateFileAvoidsRehashingUnchangedFiles() throws {
        try ws.write("data/big.csv", "a\n" + String(repeating: "1\n", count: 1000))
        let hasher = FileHasher(stateFile: ws.root.appendingPathComponent("state.json"))
        let url = ws.root.appendingPathComponent("data/big.csv")
        let first = try hasher.hash(fileAt: url)
        hasher.save()
        let again = FileHasher(stateFile: ws.root.appendingPathComponent("state.json"))
        XCTAssertEqual(try again.hash(fileAt: url), first)
        XCTAssertEqual(again.filesRead, 0, "an unchanged file must come from the state file")
        try ws.write("data/big.csv", "a\n" + String(repeating: "2\n", count: 1000))
        XCTAssertNotEqual(try again.hash(fileAt: url), first)
        XCTAssertEqual(again.filesRead, 1)
    }

    func testVersionIsPartOfTheKey() throws {
        let plan = try ws.plan(chain)
        XCTAssertEqual(Set(plan.nodes.map(\.key)).count, 5)
        XCTAssertTrue(plan.nodes.allSatisfy { $0.key.count == 64 })
    }

    func testCanonicalJSONIsStable() {
        let value: ParamValue = .map(["b": .list([.int(1), .float(0.5), .float(2)]), "a": .string("q\"t"), "c": .null])
        XCTAssertEqual(value.canonicalJSON, #"{"a":"q\"t","b":[1,0.5,2.0],"c":null}"#)
    }
}
