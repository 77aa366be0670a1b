import Foundation
import XCTest

/// Several `nic` processes on one cache (runs, `gc`), runs that die, and file systems that fill up
/// or turn read-only: real processes, real signals, real (tmpfs) file systems.
final class SharedCacheTests: XCTestCase {
    var kit: Kit!
    override func setUpWithError() throws { kit = try Kit() }

    func waitForOutput(_ running: Kit.Running, _ text: String) {
        kit.waitFor("'\(text)' in the output") {
            ((try? String(contentsOf: running.stdout, encoding: .utf8)) ?? "").contains(text)
        }
    }

    func testGcBesideALiveRunRemovesOnlyWhatNoRunUses() throws {
        try kit.write("other.yaml", "pipeline: other\nnodes:\n  z: {type: emit, params: {value: z}}\n")
        try kit.write("live.yaml", """
        pipeline: live
        nodes:
          a: {type: emit, params: {value: a}}
          s: {type: sleep, in: {after: a}, params: {seconds: 4}}
          c: {type: concat, in: {a: a, b: s}}
        """)
        XCTAssertEqual(try kit.run(["run", "other.yaml"]).status, 0)
        try kit.write("first.yaml", "pipeline: live\nnodes:\n  a: {type: emit, params: {value: a}}\n")
        XCTAssertEqual(try kit.run(["run", "first.yaml"]).status, 0)

        let live = try kit.start(["run", "live.yaml"])
        waitForOutput(live, "start    s")
        // Everything is older than "0 s ago": only the entries of the live run may stay.
        let gc = try kit.run(["cache", "gc", "--older-than", "0s"])
        XCTAssertEqual(gc.status, 0, gc.stderr)
        XCTAssertTrue(gc.stdout.contains("removed") && gc.stdout.contains("other/z"), gc.stdout)
        XCTAssertTrue(gc.stdout.contains("live/a") && gc.stdout.contains("in use"), gc.stdout)
        XCTAssertTrue(gc.stdout.contains("in 1 entries; 1 in use by running nic processes kept"), gc.stdout)

        let result = live.wait()
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let output = try kit.run(["output", "live.yaml", "c"])
        let text = try String(contentsOfFile: output.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + "/text.txt", encoding: .utf8)
        XCTAssertEqual(text, "a+slept")
        XCTAssertEqual(try kit.run(["cache", "verify"]).status, 0)
        // With the run over, its lease is gone: the same gc now removes its entries.
        let after = try kit.run(["cache", "gc", "--older-than", "0s"])
        XCTAssertTrue(after.stdout.contains("in 3 entries"), after.stdout)
    }

    func testTwoRunsOfOnePipelineComputeEachKeyOnce() throws {
        try kit.write("p.yaml", """
        pipeline: twice
        nodes:
          s: {type: sleep, params: {seconds: 2}}
          c: {type: concat, in: {a: s}}
        """)
        let first = try kit.start(["run", "p.yaml"])
        let second = try kit.start(["run", "p.yaml"])
        let results = [first.wait(), second.wait()]
        for r in results { XCTAssertEqual(r.status, 0, r.stdout + r.stderr) }
        let executed = results.map { r -> Int in
            guard let range = r.stdout.range(of: #"done: (\d+) executed"#, options: .regularExpression) else { return -1 }
            return Int(r.stdout[range].split(separator: " ")[1]) ?? -1
        }
        XCTAssertEqual(executed.reduce(0, +), 2, "each of the 2 nodes computed by exactly one run: \(results.map(\.stdout))")
        let record = try String(contentsOf: kit.cacheDir.appendingPathComponent("state/pipelines/twice.json"), encoding: .utf8)
        XCTAssertTrue(record.contains("\"s\"") && record.contains("\"c\""), record)
    }

    func testOneInterruptStopsALongBootstrap() throws {
        var csv = "patient,fold,score,prediction\n"
        for i in 0..<300 { csv += "p\(i),\(i % 4),\(Double(i % 17) / 3),\(Double((i * 7) % 23) / 5)\n" }
        try kit.write("predictions.csv", csv)
        try kit.write("p.yaml", """
        pipeline: long
        inputs:
          predicted: {kind: predictions, path: predictions.csv, task: regression, target: [score], prediction: [prediction]}
        nodes:
          judged: {type: evaluator, in: {predictions: predicted}, params: {bootstrap: 1000000}}
        """)
        let running = try kit.start(["run", "p.yaml"])
        waitForOutput(running, "start    judged")
        Thread.sleep(forTimeInterval: 0.5)
        kill(running.process.processIdentifier, SIGINT)
        // Without a check between resamples the node would run for many minutes.
        kit.waitFor("the run to stop after one interrupt", timeout: 30) { !running.process.isRunning }
        if running.process.isRunning { kill(running.process.processIdentifier, SIGKILL) }
        let result = running.wait()
        XCTAssertEqual(result.status, 130, result.stdout + result.stderr)
        XCTAssertFalse(try kit.run(["plan", "p.yaml"]).stdout.contains("judged  evaluator  cached"), "a stopped bootstrap is not cached")
    }

    func testAKilledRunIsShownAsDied() throws {
        try kit.write("p.yaml", "pipeline: doomed\nnodes:\n  s: {type: sleep, params: {seconds: 120}}\n")
        let running = try kit.start(["run", "p.yaml"])
        waitForOutput(running, "start    s")
        kill(running.process.processIdentifier, SIGKILL)
        _ = running.wait()
        let runs = try kit.run(["runs"])
        let line = runs.stdout.split(separator: "\n").first { $0.contains("-doomed") }
        XCTAssertTrue(line?.contains("died") == true, runs.stdout)
    }

    // MARK: File systems that fill up or are read-only (tmpfs; skipped where mounting is not allowed)

    func mountTmpfs(_ relative: String, size: String) throws -> URL {
        let url = kit.root.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        guard shell("/bin/mount", "-t", "tmpfs", "-o", "size=\(size)", "tmpfs", url.path) == 0 else {
            throw XCTSkip("cannot mount a tmpfs here (needs root); fault injection skipped")
        }
        addTeardownBlock { _ = self.shell("/bin/umount", "-l", url.path) }
        return url
    }

    @discardableResult
    func shell(_ tool: String, _ arguments: String...) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Fills a file system to the last byte.
    func fill(_ folder: URL) {
        let handle = FileHandle(forWritingAtPath: { let p = folder.appendingPathComponent("filler").path; FileManager.default.createFile(atPath: p, contents: nil); return p }())
        let block = Data(count: 4096)
        while (try? handle?.write(contentsOf: block)) != nil {}
        try? handle?.close()
    }

    func testFullDiskUnderTheRunsFolderDoesNotStopTheRun() throws {
        let runs = try mountTmpfs("fullruns", size: "1m")
        try kit.write("p.yaml", "pipeline: full\nnodes:\n  s: {type: sleep, params: {seconds: 2}}\n  c: {type: concat, in: {a: s}}\n")
        let running = try kit.start(["run", "p.yaml", "--runs", runs.path])
        waitForOutput(running, "start    s")
        fill(runs)
        let result = running.wait()
        XCTAssertEqual(result.reason, .exit, result.stderr)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stderr.contains("no space left on the device"), result.stderr)
        XCTAssertFalse(result.stderr.contains("NSCocoaErrorDomain"), result.stderr)
    }

    func testFullDiskUnderTheCacheFailsTheNodeAndCommitsNothing() throws {
        let cache = try mountTmpfs("fullcache", size: "256k")
        try kit.write("p.yaml", "pipeline: big\nnodes:\n  t: {type: slow_tensor, params: {rows: 4000, chunk_rows: 64}}\n")
        let result = try kit.run(["run", "p.yaml", "--cache", cache.path])
        XCTAssertEqual(result.status, 1, result.stdout + result.stderr)
        XCTAssertTrue(result.stderr.lowercased().contains("no space left on"), result.stderr)
        XCTAssertFalse(result.stderr.contains("NSCocoaErrorDomain"), result.stderr)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: cache.appendingPathComponent("objects").path)) ?? []
        XCTAssertEqual(entries, [], "nothing committed")
    }

    func testGcAndVerifyOnAReadOnlyCacheSayWhatTheyDidNotDo() throws {
        let cache = try mountTmpfs("rocache", size: "4m")
        try kit.write("p.yaml", "pipeline: ro\nnodes:\n  a: {type: emit, params: {value: a}}\n")
        XCTAssertEqual(try kit.run(["run", "p.yaml", "--cache", cache.path]).status, 0)
        // Damage the entry (same size, other byte) so that verify has something to set aside.
        let text = try XCTUnwrap(FileManager.default.enumerator(atPath: cache.path)?.compactMap { $0 as? String }.first { $0.hasSuffix("text.txt") })
        try Data("b".utf8).write(to: cache.appendingPathComponent(text))
        XCTAssertEqual(shell("/bin/mount", "-o", "remount,ro", cache.path), 0)
        let verify = try kit.run(["cache", "verify", "--cache", cache.path])
        XCTAssertEqual(verify.status, 1, verify.stderr)
        XCTAssertTrue(verify.stderr.contains("not set aside:") && verify.stderr.contains("read-only"), verify.stderr)
        XCTAssertFalse(verify.stderr.contains("set aside in"), verify.stderr)
        let gc = try kit.run(["cache", "gc", "--older-than", "0s", "--cache", cache.path])
        XCTAssertEqual(gc.status, 1, gc.stdout + gc.stderr)
        XCTAssertTrue(gc.stdout.contains("freed 0 B in 0 entries"), gc.stdout)
        XCTAssertTrue(gc.stderr.contains("read-only"), gc.stderr)
        let ls = try kit.run(["cache", "ls", "--cache", cache.path])
        XCTAssertTrue(ls.stdout.contains("1 entries"), ls.stdout)
    }
}
