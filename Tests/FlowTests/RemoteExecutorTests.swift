@testable import Flow
import Foundation
import NICBasics
import ToyNodes
import XCTest

/// The executor's remote path (each node run by a worker against the shared cache, as a Slurm job
/// does) without a cluster: the worker runs in-process, planning from the cache on its own.
final class RemoteExecutorTests: XCTestCase {
    /// Does what `nic worker` in a job does: plans the pipeline anew from the cache and runs one node.
    final class InProcessRunner: RemoteNodeRunner, @unchecked Sendable {
        let graph: PipelineGraph
        let cache: Cache
        let ran = Locked<[String]>([])
        init(graph: PipelineGraph, cache: Cache) {
            self.graph = graph
            self.cache = cache
        }
        func run(node: String, type: String, key: String, report: @escaping @Sendable (RemoteJob) -> Void, isCancelled: @escaping @Sendable () -> Bool) throws {
            ran.withLock { $0.append(node) }
            report(RemoteJob(id: "\(node)-job", log: "/dev/null", state: "RUNNING", submitted: Date()))
            let plan = try Planner.plan(graph, cache: cache)
            let exit = NodeWorker.run(plan: plan, node: node, cache: cache)
            XCTAssertEqual(exit.key, key, "the worker must compute the key the driver planned")
            if exit.status == "failed" { throw NodeError(exit.message ?? "failed") }
        }
    }

    let yaml = """
    pipeline: remote
    nodes:
      a: {type: emit, params: {value: x}}
      b: {type: emit, params: {value: y}}
      ab: {type: concat, in: {a: a, b: b}}
      broken: {type: fail, in: {after: a}, params: {message: "disk on fire"}}
      after_broken: {type: concat, in: {a: broken}}
    """

    func testRemoteRunGivesTheLocalKeysAndOutputs() throws {
        let local = try Workspace(), remote = try Workspace()
        let localRun = try local.run(yaml)
        let graph = try remote.graph(yaml)
        let plan = try Planner.plan(graph, cache: remote.cache)
        let runner = InProcessRunner(graph: graph, cache: remote.cache)
        let executor = Executor(plan: plan, cache: remote.cache, jobs: 4)
        executor.remote = runner
        let summary = executor.run()

        XCTAssertEqual(Set(summary.executed), ["a", "b", "ab"])
        XCTAssertEqual(summary.failures.map(\.node), ["broken"])
        XCTAssertEqual(summary.failures.first?.message, "disk on fire")
        XCTAssertEqual(summary.skipped.map(\.node), ["after_broken"])
        XCTAssertEqual(Set(runner.ran.current), ["a", "b", "ab", "broken"])
        XCTAssertEqual(Set(remote.cache.entries().map(\.key)), Set(local.cache.entries().map(\.key)))
        for node in ["a", "b", "ab"] {
            XCTAssertEqual(summary.entries[node]?.lastPathComponent, localRun.summary.entries[node]?.lastPathComponent)
            XCTAssertEqual(try String(contentsOf: summary.entries[node]!.appendingPathComponent("out/text.txt"), encoding: .utf8),
                           try String(contentsOf: localRun.summary.entries[node]!.appendingPathComponent("out/text.txt"), encoding: .utf8))
        }

        // A second run submits only the node that failed; the cached ones are not sent out again.
        let rerun = InProcessRunner(graph: graph, cache: remote.cache)
        let again = Executor(plan: try Planner.plan(graph, cache: remote.cache), cache: remote.cache, jobs: 4)
        again.remote = rerun
        _ = again.run()
        XCTAssertEqual(rerun.ran.current, ["broken"])
    }

    func testAWorkerRefusesANodeWhoseInputsAreNotCommitted() throws {
        let ws = try Workspace()
        let plan = try ws.plan(yaml)
        let exit = NodeWorker.run(plan: plan, node: "ab", cache: ws.cache)
        XCTAssertEqual(exit.status, "failed")
        XCTAssertEqual(exit.message, "inputs not in the cache: 'a', 'b' (changed or removed since the driver planned the run?)")
        XCTAssertEqual(NodeWorker.run(plan: plan, node: "nope", cache: ws.cache).message,
                       "the pipeline has no node 'nope' (changed since the driver planned it?)")
    }
}
