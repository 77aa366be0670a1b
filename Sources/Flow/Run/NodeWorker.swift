import Foundation
import Logging

/// What a worker (one node run as a cluster job) leaves in the run folder when it ends, so that the
/// driver learns the outcome without Slurm's accounting database.
public struct WorkerExitRecord: Codable, Sendable, Equatable {
    /// done (computed and committed), cached (already committed by someone else), failed
    public var status: String
    public var node: String
    public var key: String
    public var message: String?
    public var host: String
    public var job: String?
    public var started: Date
    public var ended: Date

    /// A worker that failed before it could run the node (a pipeline that no longer parses, a missing cache).
    public static func failed(node: String, message: String, started: Date) -> WorkerExitRecord {
        let owner = LockOwner.current()
        return WorkerExitRecord(status: "failed", node: node, key: "", message: message, host: owner.host, job: owner.slurmJob,
                                started: started, ended: Date())
    }

    public static func read(_ url: URL) -> WorkerExitRecord? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(WorkerExitRecord.self, from: data)
    }

    public func write(to url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try LockOwner.encoder.encode(self).write(to: url, options: .atomic)
        } catch { throw FlowError.wrapping(error, "cannot write the worker's exit record \(url.path)") }
    }
}

/// Runs exactly one node of a plan in this process against the shared cache: the body of a
/// cluster job. Its inputs must be committed already (the driver submits a node only then).
public enum NodeWorker {
    public static func run(plan: Plan, node name: String, cache: Cache, observer: RunObserver? = nil,
                           logger: Logger = Logger(label: "nic.worker")) -> WorkerExitRecord {
        let start = Date()
        let owner = LockOwner.current()
        func record(_ status: String, _ message: String?) -> WorkerExitRecord {
            WorkerExitRecord(status: status, node: name, key: plan.node(named: name)?.key ?? "", message: message,
                             host: owner.host, job: owner.slurmJob, started: start, ended: Date())
        }
        guard plan.node(named: name) != nil, let graphNode = plan.graph.node(named: name) else {
            return record("failed", "the pipeline has no node '\(name)' (changed since the driver planned it?)")
        }
        let missing = graphNode.inputs.values.map(\.node).filter { plan.node(named: $0)?.status != .cached }
        if !missing.isEmpty {
            return record("failed", "inputs not in the cache: \(Set(missing).sorted().map { "'\($0)'" }.joined(separator: ", ")) (changed or removed since the driver planned the run?)")
        }
        let inputs = Set(graphNode.inputs.values.map(\.node))
        let subPlan = Plan(graph: plan.graph, nodes: plan.nodes.filter { inputs.contains($0.name) || $0.name == name })
        let executor = Executor(plan: subPlan, cache: cache, jobs: 1, observer: observer)
        executor.logger = logger
        let summary = executor.run()
        switch summary.outcomes[name] {
        case .executed?: return record("done", nil)
        case .cached?: return record("cached", nil)
        case .failed(let message)?: return record("failed", message)
        case .skipped(let reason)?: return record("failed", reason)
        case nil: return record("failed", "the node did not run")
        }
    }
}
