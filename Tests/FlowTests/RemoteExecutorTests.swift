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
        func run(node: String, type: String, key: String, report: @escaping @Sendable (RemoteJob) -> Void, isCancelled: @escaping @Sendable () -> Bool) throws -> Bool {
            ran.withLock { $0.append(node) }
            report(RemoteJob(id: "\(node)-job", log: "/dev/null", state: "RUNNING", submitted: Date()))
            let plan = try Planner.plan(graph, cache: cache)
            let exit = NodeWorker.run(plan: plan, node: node, cache: cache)
            XCTAssertEqual(exit.key, key, "the worker must compute the key the driver planned")
            if exit.status == "failed" { throw NodeError(exit.message ?? "failed") }
            return exit.status == "done"
        }
        func runItems(node: String, type: String, items: [DeclaredItem], report: @escaping @Sendable (RemoteJob) -> Void, isCancelled: @escaping @Sendable () -> Bool) throws {
            let plan = try Planner.plan(graph, cache: cache)
            for item in items {
                ran.withLock { $0.append("\(node)[\(item.index)]") }
                let exit = NodeWorker.run(plan: plan, node: node, item: item.index, cache: cache)
                if exit.status == "failed" { throw NodeError(exit.message ?? "failed") }
            }
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

    func testItemsGoOutOneByOneThenTheNodeGathersThem() throws {
        let yaml = """
        pipeline: items
        nodes:
          s: {type: emit, params: {value: "!"}}
          w: {type: emit, params: {value: "a b c"}}
          words: {type: split, in: {words: w, suffix: s}}
        """
        let local = try Workspace(), remote = try Workspace()
        let localRun = try local.run(yaml)
        XCTAssertEqual(localRun.executed.filter { $0.hasPrefix("words") }, ["words", "words[a]", "words[b]", "words[c]"])
        func remoteRun(_ yaml: String) throws -> (RunSummary, [String]) {
            let graph = try remote.graph(yaml)
            let runner = InProcessRunner(graph: graph, cache: remote.cache)
            let executor = Executor(plan: try Planner.plan(graph, cache: remote.cache), cache: remote.cache, jobs: 2)
            executor.remote = runner
            return (executor.run(), runner.ran.current)
        }
        let (summary, ran) = try remoteRun(yaml)
        XCTAssertTrue(summary.succeeded)
        XCTAssertEqual(ran.filter { $0.hasPrefix("words") }, ["words[0]", "words[1]", "words[2]", "words"])
        XCTAssertEqual(try String(contentsOf: summary.entries["words"]!.appendingPathComponent("out/text.txt"), encoding: .utf8), "A!+B!+C!")
        XCTAssertEqual(Set(remote.cache.entries().map(\.key)), Set(local.cache.entries().map(\.key)), "items and entries have the local keys")

        // One word more: only its item goes out (index 3), the others are cached.
        let (more, ranMore) = try remoteRun(yaml.replacingOccurrences(of: "a b c", with: "a b c d"))
        XCTAssertTrue(more.succeeded)
        XCTAssertEqual(ranMore, ["w", "words[3]", "words"])

        // A failing item fails the node, which is then not gathered.
        let (failed, ranFailed) = try remoteRun(yaml.replacingOccurrences(of: "a b c", with: "a b x").replacingOccurrences(of: "suffix: s}", with: "suffix: s}, params: {failing: x}"))
        XCTAssertEqual(failed.failures.map(\.node), ["words"])
        XCTAssertEqual(failed.failures.first?.message, "item 'x' cannot be computed")
        XCTAssertEqual(ranFailed, ["w", "words[0]", "words[1]", "words[2]"], "params changed: every item is new; the failing one stops the gather")
    }
}
