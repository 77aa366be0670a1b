import Flow
import Foundation
import NICBasics
import ToyNodes
import XCTest

/// A temporary project folder with a cache, for running pipelines in-process.
final class Workspace {
    let root: URL
    let cache: Cache

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("nic-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("nodes"), withIntermediateDirectories: true)
        cache = try Cache(root: root.appendingPathComponent(".nic/cache"))
        ExecutionLog.shared.reset()
        Rendezvous.reset()
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    @discardableResult
    func write(_ relative: String, _ text: String) throws -> URL {
        let url = root.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
        return url
    }

    func graph(_ yaml: String, file: String = "pipeline.yaml") throws -> PipelineGraph {
        let url = try write(file, yaml)
        let spec = try SpecParser.parse(file: url, displayPath: file)
        return try PipelineGraph.build(spec, registry: ToyNodes.registry)
    }

    func plan(_ yaml: String) throws -> Plan {
        try Planner.plan(try graph(yaml), cache: cache)
    }

    /// Runs and returns the summary plus the node names that actually executed, in order.
    @discardableResult
    func run(_ yaml: String, jobs: Int = 2) throws -> (summary: RunSummary, executed: [String]) {
        ExecutionLog.shared.reset()
        let plan = try self.plan(yaml)
        let summary = Executor(plan: plan, cache: cache, jobs: jobs).run()
        return (summary, ExecutionLog.shared.executed)
    }

    /// The spec errors a pipeline produces, as "line:column: message".
    func errors(_ yaml: String) -> [String] {
        do {
            _ = try graph(yaml)
            return []
        } catch let errors as SpecErrors {
            return errors.errors.map { "\($0.location?.line ?? 0):\($0.location?.column ?? 0): \($0.message)" }
        } catch {
            return ["unexpected: \(error)"]
        }
    }
}

func readText(_ entry: URL, port: String = "out") throws -> String {
    String(decoding: try Data(contentsOf: entry.appendingPathComponent(port).appendingPathComponent("text.txt")), as: UTF8.self)
}
