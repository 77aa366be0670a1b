import Flow
import Foundation
import TensorStore
import ToyNodes
import XCTest

final class CacheTests: XCTestCase {
    var ws: Workspace!
    override func setUpWithError() throws { ws = try Workspace() }

    let tensorPipeline = """
    pipeline: tensors
    nodes:
      t: {type: slow_tensor, params: {rows: 100, chunk_rows: 16}}
      e: {type: emit, params: {value: e}}
    """

    func flipByte(in file: URL, at offset: Int = 8) throws {
        var bytes = [UInt8](try Data(contentsOf: file))
        bytes[min(offset, bytes.count - 1)] ^= 0x40
        try Data(bytes).write(to: file)
    }

    func testEntryHasManifestAndReadableTensor() throws {
        let run = try ws.run(tensorPipeline)
        let entry = run.summary.entries["t"]!
        XCTAssertTrue(FileManager.default.fileExists(atPath: entry.appendingPathComponent("manifest.json").path))
        let reader = try ZarrArrayReader(at: entry.appendingPathComponent("tensor/values"))
        XCTAssertEqual(reader.metadata.shape, [100, 64])
        let values = try reader.read(as: Float.self)
        XCTAssertEqual(values.count, 6400)
        XCTAssertEqual(values[6399], 6399)
        XCTAssertEqual(values[17 * 64 + 3], Float(17 * 64 + 3))
        XCTAssertTrue(ws.cache.verify().problems.isEmpty)
    }

    /// `--force` recomputes a cached node (and only it), even though the entry is valid.
    func testForcedNodeIsComputedAgain() throws {
        try ws.run(tensorPipeline)
        ExecutionLog.shared.reset()
        let plan = try Planner.plan(try ws.graph(tensorPipeline), cache: ws.cache, force: ["t"])
        XCTAssertEqual(plan.node(named: "t")?.reasons, ["forced"])
        let summary = Executor(plan: plan, cache: ws.cache, jobs: 2).run()
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        XCTAssertEqual(ExecutionLog.shared.executed, ["t"])
        XCTAssertTrue(ws.cache.verify().problems.isEmpty)
    }

    func testFlippedByteIsReportedThenRecomputed() throws {
        let first = try ws.run(tensorPipeline)
        let entry = first.summary.entries["t"]!
        try flipByte(in: entry.appendingPathComponent("tensor/values/c/3/0"))

        // The cheap plan-time check (sizes) cannot see a flipped byte; verify must.
        let result = ws.cache.verify()
        XCTAssertEqual(result.checked, 2)
        XCTAssertEqual(result.problems.count, 1)
        XCTAssertEqual(result.problems.first?.node, "t")
        XCTAssertTrue(result.problems.first!.description.contains("tensor/values/c/3/0"), result.problems.first!.description)

        let plan = try ws.plan(tensorPipeline)
        XCTAssertEqual(plan.node(named: "t")?.reasons, ["cached output was corrupt and set aside"])
        XCTAssertEqual(plan.node(named: "e")?.status, .cached)
        let rerun = try ws.run(tensorPipeline)
        XCTAssertEqual(rerun.executed, ["t"])
        XCTAssertTrue(ws.cache.verify().problems.isEmpty)
        let values = try ZarrArrayReader(at: rerun.summary.entries["t"]!.appendingPathComponent("tensor/values")).read(as: Float.self)
        XCTAssertEqual(values[3 * 16 * 64 + 5], Float(3 * 16 * 64 + 5))
    }

    func testTruncatedFileIsCaughtAtPlanTime() throws {
        let first = try ws.run(tensorPipeline)
        let chunk = first.summary.entries["t"]!.appendingPathComponent("tensor/values/c/0/0")
        try Data([1, 2, 3]).write(to: chunk)
        let plan = try ws.plan(tensorPipeline)
        XCTAssertEqual(plan.node(named: "t")?.status, .willRun)
        XCTAssertTrue(plan.node(named: "t")!.reasons[0].hasPrefix("cached output damaged: tensor/values/c/0/0"))
        XCTAssertEqual(try ws.run(tensorPipeline).executed, ["t"])
        XCTAssertTrue(ws.cache.verify().problems.isEmpty)
    }

    func testGarbageCollectionKeepsReferencedEntries() throws {
        try ws.run(tensorPipeline)
        let other = tensorPipeline.replacingOccurrences(of: "value: e", with: "value: f")
        try ws.run(other)
        XCTAssertEqual(ws.cache.entries().count, 3)
        let keep = Set(try ws.plan(other).nodes.map(\.key))
        let dry = ws.cache.collectGarbage(keep: keep, olderThan: nil, dryRun: true)
        XCTAssertEqual(dry.removed.count, 1)
        XCTAssertEqual(ws.cache.entries().count, 3)
        let removed = ws.cache.collectGarbage(keep: keep, olderThan: nil, dryRun: false)
        XCTAssertEqual(removed.removed.map { $0.manifest?.node }, ["e"])
        XCTAssertTrue(removed.failed.isEmpty)
        XCTAssertEqual(ws.cache.entries().count, 2)
        XCTAssertEqual(try ws.run(other).executed, [])

        // By age: nothing is older than an hour; everything is older than the future.
        XCTAssertEqual(ws.cache.collectGarbage(keep: nil, olderThan: Date().addingTimeInterval(-3600), dryRun: false).removed.count, 0)
        XCTAssertEqual(ws.cache.collectGarbage(keep: nil, olderThan: Date().addingTimeInterval(60), dryRun: false).removed.count, 2)
        XCTAssertEqual(ws.cache.entries().count, 0)
    }

    func testAbandonedTemporaryFoldersAreRemoved() throws {
        // A folder named like one of a dead process (pid 2^22 - 1 is above Linux's default pid_max).
        let dead = ws.cache.temporary.appendingPathComponent("abcdef.4194303.1234")
        try FileManager.default.createDirectory(at: dead, withIntermediateDirectories: true)
        try ws.run(tensorPipeline)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dead.path))
    }

    func testBuiltinTableNodesEndToEnd() throws {
        try ws.write("data/a.csv", "id,x\n1,2.5\n2,3.5\n3,\"4,5\"\n")
        try ws.write("data/b.csv", "id,group\n1,g\n2,h\n")
        let yaml = """
        pipeline: tables
        inputs:
          a: {kind: table, path: data/a.csv, required_columns: [id]}
          b: {kind: table, path: data/b.csv}
          listing: {kind: files, dir: data, pattern: "*.csv"}
        nodes:
          j: {type: join, in: {left: a, right: b}, params: {on: id}}
          d: {type: describe, in: {table: j}, params: {columns: [x]}}
          v: {type: to_tensor, in: {table: j}, params: {columns: [id, x]}}
        """
        let run = try ws.run(yaml)
        XCTAssertTrue(run.summary.succeeded, "\(run.summary.failures)")
        let joined = try CSVTable.fromPort(run.summary.entries["j"]!.appendingPathComponent("table"))
        XCTAssertEqual(joined, CSVTable(columns: ["id", "x", "group"], rows: [["1", "2.5", "g"], ["2", "3.5", "h"]]))
        let metrics = try JSONDecoder().decode([String: [String: ParamValue]].self,
                                               from: Data(contentsOf: run.summary.entries["d"]!.appendingPathComponent("metrics/metrics.json")))
        XCTAssertEqual(metrics["x"]?["mean"]?.doubleValue, 3.0)
        XCTAssertEqual(metrics["x"]?["count"], .int(2))
        let tensor = try ZarrArrayReader(at: run.summary.entries["v"]!.appendingPathComponent("tensor/values")).read(as: Float.self)
        XCTAssertEqual(tensor, [1, 2.5, 2, 3.5])
        let files = try CSVTable.read(run.summary.entries["listing"]!.appendingPathComponent("files/files.csv"))
        XCTAssertEqual(files.column("name"), ["a.csv", "b.csv"])
    }

    func testTableNodeErrorsNameFileAndLine() throws {
        try ws.write("data/bad.csv", "id,x\n1,2\n3\n")
        let run = try ws.run("""
        pipeline: bad
        inputs:
          a: {kind: table, path: data/bad.csv}
        nodes: {}
        """)
        XCTAssertEqual(run.summary.failures.count, 1)
        let message = run.summary.failures[0].message
        XCTAssertTrue(message.hasSuffix("data/bad.csv:3: expected 2 fields (id,x), found 1"), message)

        try ws.write("data/cols.csv", "id,x\n1,2\n")
        let missing = try ws.run("""
        pipeline: bad2
        inputs:
          a: {kind: table, path: data/cols.csv, required_columns: [id, patient]}
        nodes: {}
        """)
        XCTAssertTrue(missing.summary.failures[0].message.contains("data/cols.csv:1: missing column 'patient'"), missing.summary.failures[0].message)
    }

    func testCSVParserHandlesQuotesAndReportsUnclosedQuote() throws {
        let table = try CSVTable.parse("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n\"multi\nline\",2\r\n", file: "t.csv")
        XCTAssertEqual(table.rows, [["x, y", "say \"hi\""], ["multi\nline", "2"]])
        XCTAssertEqual(try CSVTable.parse(table.csvText(), file: "u.csv"), table)
        XCTAssertThrowsError(try CSVTable.parse("a,b\n1,\"open\n", file: "t.csv")) { error in
            XCTAssertEqual("\(error)", "t.csv:2:3: quoted field is never closed")
        }
    }
}
