import Flow
import Foundation
import ToyNodes
import XCTest

final class SchedulerTests: XCTestCase {
    var ws: Workspace!
    override func setUpWithError() throws { ws = try Workspace() }

    func testIndependentNodesOverlapWithTwoJobs() throws {
        // Each waits for the other to have started: both succeed only if they run at the same time.
        let yaml = """
        pipeline: overlap
        nodes:
          left:  {type: rendezvous, params: {partner: right}}
          right: {type: rendezvous, params: {partner: left}}
        """
        let run = try ws.run(yaml, jobs: 2)
        XCTAssertTrue(run.summary.succeeded, "\(run.summary.failures)")
        XCTAssertEqual(ExecutionLog.shared.maxConcurrent, 2)
    }

    func testJobsBoundsConcurrency() throws {
        let yaml = """
        pipeline: bounded
        nodes:
          a: {type: sleep, params: {seconds: 0.05, label: a}}
          b: {type: sleep, params: {seconds: 0.05, label: b}}
          c: {type: sleep, params: {seconds: 0.05, label: c}}
          d: {type: sleep, params: {seconds: 0.05, label: d}}
        """
        let run = try ws.run(yaml, jobs: 1)
        XCTAssertTrue(run.summary.succeeded)
        XCTAssertEqual(ExecutionLog.shared.maxConcurrent, 1)
        XCTAssertEqual(run.executed.count, 4)
    }

    func testDependenciesRunInOrder() throws {
        let yaml = """
        pipeline: order
        nodes:
          c: {type: concat, in: {a: b}}
          b: {type: concat, in: {a: a}}
          a: {type: emit, params: {value: x}}
        """
        let run = try ws.run(yaml, jobs: 2)
        XCTAssertEqual(run.executed, ["a", "b", "c"])
        XCTAssertEqual(try readText(run.summary.entries["c"]!), "x++")
    }

    func testFailureStopsDescendantsOnlyAndIsSummarised() throws {
        let yaml = """
        pipeline: isolation
        nodes:
          root: {type: emit, params: {value: r}}
          broken: {type: fail, in: {after: root}, params: {message: "disk on fire"}}
          child: {type: concat, in: {a: broken}}
          grandchild: {type: concat, in: {a: child}}
          sibling: {type: sleep, in: {after: root}, params: {seconds: 0.2, label: s}}
          after_sibling: {type: concat, in: {a: sibling}}
        """
        let run = try ws.run(yaml, jobs: 2)
        let summary = run.summary
        XCTAssertFalse(summary.succeeded)
        XCTAssertEqual(summary.failures.map(\.node), ["broken"])
        XCTAssertEqual(summary.failures.first?.message, "disk on fire")
        XCTAssertEqual(Set(summary.skipped.map(\.node)), ["child", "grandchild"])
        XCTAssertEqual(Set(summary.executed), ["root", "sibling", "after_sibling"])
        XCTAssertEqual(try readText(summary.entries["after_sibling"]!), "s+")
        XCTAssertFalse(run.executed.contains("child"))
        // No trace of the failed node in the cache: no entry, no temporary folder.
        let temporaries = try FileManager.default.contentsOfDirectory(atPath: ws.cache.temporary.path)
        XCTAssertEqual(temporaries, [])
        XCTAssertEqual(ws.cache.entries().count, 3)

        // The rerun executes only the failed node (which fails again) – completed work is kept.
        let rerun = try ws.run(yaml, jobs: 2)
        XCTAssertEqual(rerun.executed, ["broken"])
    }

    func testCancelStopsRunningNodesAndKeepsFinishedOutputs() throws {
        let yaml = """
        pipeline: cancel
        nodes:
          quick: {type: emit, params: {value: q}}
          slow: {type: sleep, in: {after: quick}, params: {seconds: 30}}
          later: {type: concat, in: {a: slow}}
        """
        let plan = try ws.plan(yaml)
        let executor = Executor(plan: plan, cache: ws.cache, jobs: 2)
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { executor.cancel() }
        let summary = executor.run()
        XCTAssertTrue(summary.interrupted)
        XCTAssertEqual(summary.executed, ["quick"])
        XCTAssertEqual(Set(summary.skipped.map(\.node)), ["slow", "later"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: ws.cache.temporary.path), [])
        XCTAssertEqual(try ws.plan(yaml).node(named: "quick")?.status, .cached)
    }
}
