import Foundation
import TensorStore
import XCTest

final class CLITests: XCTestCase {
    var kit: Kit!
    override func setUpWithError() throws { kit = try Kit() }

    let simple = """
    pipeline: simple
    nodes:
      a: {type: emit, params: {value: x, repeat: 2}}
      b: {type: concat, in: {a: a}}
      c: {type: emit, params: {value: c}}
    """

    func testValidateReportsLocatedErrorsWithStatus2() throws {
        try kit.write("p.yaml", "pipeline: p\nnodes:\n  a: {type: emitt, params: {value: x}}\n")
        let result = try kit.run(["validate", "p.yaml"])
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("p.yaml:3:13: error: node 'a': unknown node type 'emitt' (did you mean 'emit'?)"), result.stderr)
        try kit.write("ok.yaml", simple)
        let ok = try kit.run(["validate", "ok.yaml"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("ok (pipeline 'simple', 3 nodes)"))
    }

    func testRunRerunAndPlanReasons() throws {
        try kit.write("p.yaml", simple)
        let first = try kit.run(["run", "p.yaml"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("done: 3 executed, 0 cached"), first.stdout)
        let again = try kit.run(["run", "p.yaml"])
        XCTAssertTrue(again.stdout.contains("done: 0 executed, 3 cached"), again.stdout)

        try kit.write("p.yaml", simple.replacingOccurrences(of: "repeat: 2", with: "repeat: 4"))
        let plan = try kit.run(["plan", "p.yaml"])
        XCTAssertEqual(plan.status, 0)
        let lines = plan.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("a ") && $0.contains("will run  params changed: repeat") }, plan.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("b ") && $0.contains("will run  input 'a' changed") }, plan.stdout)
        XCTAssertTrue(lines.contains { $0.hasPrefix("c ") && $0.contains("cached") }, plan.stdout)
        let dry = try kit.run(["run", "--dry-run", "p.yaml"])
        XCTAssertEqual(dry.stdout, plan.stdout)
        let rerun = try kit.run(["run", "p.yaml"])
        XCTAssertTrue(rerun.stdout.contains("done: 2 executed, 1 cached"), rerun.stdout)

        let output = try kit.run(["output", "p.yaml", "b"])
        let text = try String(contentsOfFile: output.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + "/text.txt", encoding: .utf8)
        XCTAssertEqual(text, "xxxx+")
    }

    func testFailingNodeGivesSummaryAndStatus1() throws {
        try kit.write("p.yaml", """
        pipeline: failing
        nodes:
          a: {type: fail, params: {message: "no such slide: s9"}}
          b: {type: concat, in: {a: a}}
          c: {type: emit, params: {value: c}}
        """)
        let result = try kit.run(["run", "p.yaml"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("1 node failed:\n  a: no such slide: s9"), result.stderr)
        XCTAssertTrue(result.stdout.contains("failed: 1 executed, 0 cached, 1 failed, 1 skipped"), result.stdout)
    }

    func testSigkillMidWriteLeavesNothingTrustedAndRerunCompletes() throws {
        try kit.write("p.yaml", """
        pipeline: crash
        nodes:
          t: {type: slow_tensor, params: {rows: 4000, chunk_rows: 16}}
        """)
        let running = try kit.start(["run", "p.yaml"], environment: ["NIC_TOY_DELAY_MS": "40"])
        // Kill once several chunks are on disk in the node's temporary folder.
        kit.waitFor("chunks being written") {
            kit.files(under: ".nic/cache/tmp").filter { $0.contains("/c/") && !$0.hasSuffix(".tmp") }.count >= 4
        }
        kill(running.process.processIdentifier, SIGKILL)
        let killed = running.wait()
        XCTAssertEqual(killed.reason, .uncaughtSignal)
        XCTAssertEqual(kit.files(under: ".nic/cache/objects").filter { $0.hasSuffix("manifest.json") }, [], "a killed run must not leave an entry")

        let plan = try kit.run(["plan", "p.yaml"])
        XCTAssertTrue(plan.stdout.contains("will run  no cached output"), plan.stdout)
        let rerun = try kit.run(["run", "p.yaml"])
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertTrue(rerun.stdout.contains("done: 1 executed"), rerun.stdout)
        XCTAssertEqual(kit.files(under: ".nic/cache/tmp"), [], "the abandoned temporary folder is cleaned up")
        let verify = try kit.run(["cache", "verify"])
        XCTAssertEqual(verify.status, 0, verify.stderr)
        XCTAssertTrue(verify.stdout.contains("verified 1 entries"), verify.stdout)

        let output = try kit.run(["output", "p.yaml", "t"])
        let reader = try ZarrArrayReader(at: URL(fileURLWithPath: output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).appendingPathComponent("values"))
        let values = try reader.read(as: Float.self)
        XCTAssertEqual(values.count, 4000 * 64)
        XCTAssertEqual(values[3999 * 64 + 63], Float(3999 * 64 + 63))
    }

    func testFlippedByteReportedByVerifyAndRecomputed() throws {
        try kit.write("p.yaml", """
        pipeline: flip
        nodes:
          t: {type: slow_tensor, params: {rows: 64, chunk_rows: 16}}
          e: {type: emit, params: {value: e}}
        """)
        XCTAssertEqual(try kit.run(["run", "p.yaml"]).status, 0)
        let chunk = kit.files(under: ".nic/cache/objects").first { $0.hasSuffix("tensor/values/c/2/0") }!
        let url = kit.cacheDir.appendingPathComponent("objects").appendingPathComponent(chunk)
        var bytes = [UInt8](try Data(contentsOf: url))
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: url)

        let verify = try kit.run(["cache", "verify"])
        XCTAssertEqual(verify.status, 1)
        let key = chunk.split(separator: "/")[1]
        XCTAssertTrue(verify.stderr.contains("damaged: \(key) (t):"), verify.stderr)
        XCTAssertTrue(verify.stderr.contains("tensor/values/c/2/0"), verify.stderr)
        let rerun = try kit.run(["run", "p.yaml"])
        XCTAssertTrue(rerun.stdout.contains("done: 1 executed, 1 cached"), rerun.stdout)
        XCTAssertEqual(try kit.run(["cache", "verify"]).status, 0)
    }

    func testSigintStopsCleanlyKeepingCompletedOutputs() throws {
        try kit.write("p.yaml", """
        pipeline: interrupt
        nodes:
          quick: {type: emit, params: {value: q}}
          slow: {type: sleep, in: {after: quick}, params: {seconds: 120}}
        """)
        let running = try kit.start(["run", "p.yaml", "--jobs", "2"])
        kit.waitFor("the slow node to start") {
            ((try? String(contentsOf: running.stdout, encoding: .utf8)) ?? "").contains("start    slow")
        }
        kill(running.process.processIdentifier, SIGINT)
        let result = running.wait()
        XCTAssertEqual(result.status, 130, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("interrupted: 1 executed"), result.stdout)
        XCTAssertEqual(kit.files(under: ".nic/cache/tmp"), [])
        let plan = try kit.run(["plan", "p.yaml"])
        XCTAssertTrue(plan.stdout.contains("quick  emit   cached"), plan.stdout)
        XCTAssertTrue(plan.stdout.contains("slow   sleep  will run"), plan.stdout)
    }

    func testNodesListsPortsAndParams() throws {
        let result = try kit.run(["nodes"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.contains("table (v1) – Reads a CSV file"), result.stdout)
        XCTAssertTrue(result.stdout.contains("    path: file path, required – the CSV file"), result.stdout)
        XCTAssertTrue(result.stdout.contains("    a: Text – first"), result.stdout)
        XCTAssertTrue(result.stdout.contains("    repeat: int, in [0, 1000], default 1 – how many times"), result.stdout)
    }

    func testRunRecordsAndRunsListing() throws {
        try kit.write("p.yaml", simple)
        XCTAssertEqual(try kit.run(["run", "p.yaml"]).status, 0)
        try kit.write("f.yaml", "pipeline: broken\nnodes:\n  a: {type: fail, params: {message: boom}}\n")
        XCTAssertEqual(try kit.run(["run", "f.yaml"]).status, 1)
        let folders = try FileManager.default.contentsOfDirectory(atPath: kit.root.appendingPathComponent("runs").path).sorted()
        XCTAssertEqual(folders.count, 2, "\(folders)")
        let simpleRun = kit.root.appendingPathComponent("runs").appendingPathComponent(folders.first { $0.hasSuffix("-simple") }!)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: simpleRun.appendingPathComponent("run.json"))) as! [String: Any]
        XCTAssertEqual(json["status"] as? String, "done")
        let nodes = json["nodes"] as! [String: [String: Any]]
        XCTAssertEqual(Set(nodes.keys), ["a", "b", "c"])
        XCTAssertEqual(nodes["b"]?["status"] as? String, "done")
        XCTAssertEqual(nodes["b"]?["inputs"] as? [String: String], ["a": "a.out"])
        XCTAssertNotNil(nodes["b"]?["seconds"] as? Double)
        XCTAssertEqual(try String(contentsOf: simpleRun.appendingPathComponent("pipeline.yaml"), encoding: .utf8), simple)
        // outputs/<node> links to the cache entry.
        let linked = try String(contentsOf: simpleRun.appendingPathComponent("outputs/a/out/text.txt"), encoding: .utf8)
        XCTAssertEqual(linked, "xx")
        let events = try String(contentsOf: simpleRun.appendingPathComponent("events.jsonl"), encoding: .utf8)
        XCTAssertEqual(events.split(separator: "\n").filter { $0.contains("\"event\":\"done\"") }.count, 3)

        let listing = try kit.run(["runs"])
        let lines = listing.stdout.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.contains("-broken") && $0.contains("failed") }, listing.stdout)
        XCTAssertTrue(lines.contains { $0.contains("-simple") && $0.contains("done") }, listing.stdout)
    }

    func testCacheLsAndGc() throws {
        try kit.write("p.yaml", simple)
        XCTAssertEqual(try kit.run(["run", "p.yaml"]).status, 0)
        let ls = try kit.run(["cache", "ls"])
        XCTAssertTrue(ls.stdout.contains("3 entries"), ls.stdout)
        XCTAssertTrue(ls.stdout.contains("simple/a"), ls.stdout)
        try kit.write("q.yaml", simple.replacingOccurrences(of: "value: c", with: "value: d"))
        let gc = try kit.run(["cache", "gc", "q.yaml"])
        XCTAssertEqual(gc.status, 0, gc.stderr)
        XCTAssertTrue(gc.stdout.contains("removed") && gc.stdout.contains("simple/c"), gc.stdout)
        XCTAssertTrue(try kit.run(["cache", "ls"]).stdout.contains("2 entries"))
        XCTAssertNotEqual(try kit.run(["cache", "gc"]).status, 0, "gc without pipelines or age must refuse")
    }
}
