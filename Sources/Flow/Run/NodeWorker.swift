import Foundation
import Logging
import NICBasics

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
    /// The cores Slurm gave this job (`SLURM_CPUS_PER_TASK`), else the machine's: a job must not
    /// spread over cores another job holds. Results do not depend on it (work is cut by Compute.pieces).
    static var allocatedCores: Int {
        let machine = ProcessInfo.processInfo.activeProcessorCount
        guard let text = ProcessInfo.processInfo.environment["SLURM_CPUS_PER_TASK"], let given = Int(text), given > 0 else { return machine }
        return min(machine, given)
    }

    /// `item`: compute only that item of a node that `splitsIntoItems` (an array task), not the node.
    public static func run(plan: Plan, node name: String, item: Int? = nil, cache: Cache, observer: RunObserver? = nil,
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
        if let item {
            do {
                let inputFolders = try graphNode.inputs.mapValues { source -> URL in
                    guard let entry = plan.node(named: source.node)?.entry else { throw NodeError("input '\(source.node)' is not in the cache") }
                    return entry.appendingPathComponent(source.port)
                }
                _ = try itemPass(graphNode, plan.node(named: name)!, pipeline: plan.graph.spec.name, cache: cache,  // invariant: checked at the top
                                 inputFolders: inputFolders, mode: .only(item), lease: cache.locks.lease(), logger: logger, cancellation: Locked(false))
                return record("done", nil)
            } catch {
                return record("failed", FlowError.plainReason(error))
            }
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

    /// Runs a node that `splitsIntoItems` only as far as its items: naming them (`.declare`, on the
    /// driver) or computing one (`.only(i)`, in an array task). Its output goes to a scratch folder
    /// that is removed; its entry is committed by the gather run only.
    static func itemPass(_ node: GraphNode, _ nodePlan: NodePlan, pipeline: String, cache: Cache, inputFolders: [String: URL],
                         mode: ItemMode, lease: KeyLocks.Lease, logger: Logger, cancellation: Locked<Bool>) throws -> [DeclaredItem] {
        let scratch = try cache.makeTemporary(for: nodePlan.key + "-items")
        defer { try? FileManager.default.removeItem(at: scratch) }
        var scope = ItemScope(cache: cache, pipeline: pipeline, node: nodePlan.cacheKey, lease: lease)
        scope.mode = mode
        let context = NodeContext(nodeName: node.name, params: node.params, paths: node.paths, texts: node.texts, inputFolders: inputFolders,
                                  outputRoot: scratch, threads: NodeWorker.allocatedCores, logger: logger,
                                  cancellation: cancellation, fileHasher: cache.fileHasher, itemScope: scope, onProgress: { _ in })
        do {
            try context.compute.run { try node.type.init().execute(context) }
        } catch let declared as ItemsDeclared {
            return declared.items
        } catch is ItemComputed {
            return []
        }
        throw NodeError("node type '\(node.type.name)' says it splits into items but finished without calling cachedItems (an engine bug in that node type)")
    }
}
