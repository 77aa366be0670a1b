import Foundation
import Logging
import NICBasics

/// Hears what happens during a run (the CLI prints it; tests record it). Called from worker threads.
public protocol RunObserver: AnyObject, Sendable {
    func nodeCached(_ name: String, entry: URL)
    func nodeStarted(_ name: String)
    func nodeProgress(_ name: String, _ progress: NodeProgress)
    func nodeFinished(_ name: String, entry: URL, seconds: Double)
    func nodeFailed(_ name: String, message: String, seconds: Double)
    func nodeSkipped(_ name: String, reason: String)
    /// Something the user should know that did not stop the node (patients left out, say).
    func nodeWarning(_ name: String, message: String)
    /// The node runs as a job of a cluster (Slurm): its id, log and times, as they become known.
    func nodeJob(_ name: String, _ job: RemoteJob)
    /// A node's items computed as cluster jobs (array tasks): how many are queued, running and done,
    /// each time these counts change.
    func nodeJobCounts(_ name: String, _ counts: JobCounts)
}

extension RunObserver {
    public func nodeWarning(_ name: String, message: String) {}
    public func nodeJob(_ name: String, _ job: RemoteJob) {}
    public func nodeJobCounts(_ name: String, _ counts: JobCounts) {}
}

/// A node's array tasks by state: "3 queued · 2 running · 5/10 done".
public struct JobCounts: Equatable, Sendable, CustomStringConvertible {
    public var queued = 0
    public var running = 0
    /// Ended, successfully or not.
    public var done = 0
    public var failed = 0
    public var total: Int { queued + running + done }

    public init(queued: Int = 0, running: Int = 0, done: Int = 0, failed: Int = 0) {
        self.queued = queued
        self.running = running
        self.done = done
        self.failed = failed
    }

    /// Counts one job: its final state once it ended, else Slurm's current one (`gone`: no longer listed).
    mutating func add(ended: String?, state: String?, gone: Bool) {
        if let ended {
            done += 1
            if ended != "COMPLETED" { failed += 1 }
        } else if let state, SlurmRunner.terminal.contains(state) {
            done += 1
            if state != "COMPLETED" { failed += 1 }
        } else if gone {
            done += 1
        } else if state == "RUNNING" || state == "COMPLETING" {
            running += 1
        } else {
            queued += 1
        }
    }

    public var description: String {
        "\(queued) queued · \(running) running · \(done)/\(total) done" + (failed > 0 ? " (\(failed) failed)" : "")
    }
}

/// One node's job on a cluster, for the run record.
public struct RemoteJob: Codable, Sendable, Equatable {
    public var id: String
    public var log: String
    /// Slurm's state (PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, OUT_OF_MEMORY, CANCELLED, ...).
    public var state: String
    public var submitted: Date
    /// From the worker's own exit record: when it started and ended.
    public var started: Date?
    public var ended: Date?
    /// Submitted by an earlier driver (killed before it ended) and waited for by this run.
    public var adopted: Bool?
    public var queueSeconds: Double? { started.map { $0.timeIntervalSince(submitted) } }
    public var runSeconds: Double? { started.flatMap { s in ended.map { $0.timeIntervalSince(s) } } }

    public init(id: String, log: String, state: String, submitted: Date, started: Date? = nil, ended: Date? = nil, adopted: Bool? = nil) {
        self.adopted = adopted
        self.id = id
        self.log = log
        self.state = state
        self.submitted = submitted
        self.started = started
        self.ended = ended
    }
}

/// Runs one node elsewhere (a Slurm job running `nic worker`) against the same cache; the job
/// commits the node's entry itself. Returns when the job ended successfully: true when it computed
/// the entry, false when it found it committed by another process; throws (with the job id and its
/// log) when it did not end well.
public protocol RemoteNodeRunner: Sendable {
    func run(node: String, type: String, key: String, report: @escaping @Sendable (RemoteJob) -> Void,
             isCancelled: @escaping @Sendable () -> Bool) throws -> Bool
    /// Computes the given items of a node that `splitsIntoItems` (one array task each), before the
    /// node itself runs and gathers them.
    func runItems(node: String, type: String, items: [DeclaredItem], report: @escaping @Sendable (RemoteJob) -> Void,
                  isCancelled: @escaping @Sendable () -> Bool) throws
}

public struct RunSummary {
    public enum Outcome: Equatable {
        case cached
        case executed
        case failed(String)
        /// Not run: an upstream node failed, or the run was interrupted first.
        case skipped(String)
    }
    public var outcomes: [String: Outcome] = [:]
    public var entries: [String: URL] = [:]
    public var seconds: [String: Double] = [:]
    public var interrupted = false
    public var wallSeconds = 0.0
    /// Per executed node: the largest thread budget it had and the most of its workers that ran at once.
    public var threads: [String: ThreadUse] = [:]

    public struct ThreadUse: Equatable, Sendable {
        public var budget: Int
        public var peak: Int
    }

    public var executed: [String] { outcomes.filter { $0.value == .executed }.map(\.key).sorted() }
    public var cached: [String] { outcomes.filter { $0.value == .cached }.map(\.key).sorted() }
    public var failures: [(node: String, message: String)] {
        outcomes.compactMap { if case .failed(let m) = $0.value { return ($0.key, m) }; return nil }.sorted { $0.node < $1.node }
    }
    public var skipped: [(node: String, reason: String)] {
        outcomes.compactMap { if case .skipped(let r) = $0.value { return ($0.key, r) }; return nil }.sorted { $0.node < $1.node }
    }
    public var succeeded: Bool { failures.isEmpty && skipped.isEmpty && !interrupted }
}

/// Runs a plan: every node whose inputs are ready starts on a Dispatch worker, at most `jobs` at a
/// time. A failure stops the failed node's descendants only; independent branches finish. `cancel()`
/// (from a signal handler) lets running nodes stop at their next cancellation check and starts nothing new.
public final class Executor: @unchecked Sendable {  // plan is read-only; observer and logger are set before run()
    public let plan: Plan
    public let cache: Cache
    public let jobs: Int
    public var observer: RunObserver?
    public var logger = Logger(label: "nic.run")
    /// Where nodes run: nil computes them in this process; a runner sends each to a cluster job.
    public var remote: RemoteNodeRunner?

    private let cancellation = Locked(false)
    private let queue = DispatchQueue(label: "nic.executor", attributes: .concurrent)
    private let state = Locked(Schedule())
    private let records: RecordKeeper
    /// The keys this run uses, so that `gc` in another process leaves them alone.
    private let lease: KeyLocks.Lease

    /// What the scheduler knows, changed only under the lock: workers finish concurrently.
    private struct Schedule {
        var summary = RunSummary()
        var running = 0
        var pending: [String] = []
        var done: [String: URL] = [:]
        /// The thread budgets of the nodes running now, in the order they started.
        var budgets: [(node: String, compute: ComputeContext)] = []

        /// Shares the cores among the running nodes; called whenever one starts or finishes.
        func rebalance() {
            let shares = ComputeContext.shares(cores: ProcessInfo.processInfo.activeProcessorCount, running: budgets.count)
            for (budget, share) in zip(budgets, shares) { budget.compute.setThreads(share) }
        }
    }

    public init(plan: Plan, cache: Cache, jobs: Int, observer: RunObserver? = nil) {
        self.plan = plan
        self.cache = cache
        self.jobs = max(1, jobs)
        self.observer = observer
        self.records = RecordKeeper(cache: cache, pipeline: plan.graph.spec.name)
        self.lease = cache.locks.lease()
    }

    /// Leases every key of the plan (and the items of cached entries), then looks at each cached
    /// entry again under its lock: one that `gc` removed between planning and leasing is computed
    /// again instead of trusted. Returns the nodes still cached.
    private func leaseAndRecheck() -> Set<String> {
        var keys = Set(plan.nodes.map(\.key))
        for node in plan.nodes where node.status == .cached {
            if case .valid(_, let manifest) = cache.lookup(node.key) { keys.formUnion(manifest.items ?? []) }
        }
        do { try lease.add(keys) } catch { logger.warning("\(error); a concurrent 'nic cache gc' could remove entries this run uses") }
        var cached = Set<String>()
        for node in plan.nodes where node.status == .cached {
            let held = try? cache.locks.lock(node.key, isCancelled: { self.isCancelled })
            defer { held?.release() }
            if case .valid = cache.lookup(node.key) { cached.insert(node.name) }
            else { logger.warning("node '\(node.name)': its cached output was removed since planning (by 'nic cache gc'?); computing it again") }
        }
        return cached
    }

    public func cancel() { cancellation.withLock { $0 = true } }
    public var isCancelled: Bool { cancellation.current }

    public func run() -> RunSummary {
        let start = Date()
        cache.removeAbandonedTemporaries()
        let stillCached = leaseAndRecheck()
        let group = DispatchGroup()
        state.withLock { s in
            for node in plan.nodes {
                if node.status == .cached, let entry = node.entry, stillCached.contains(node.name) {
                    s.done[node.name] = entry
                    s.summary.outcomes[node.name] = .cached
                    s.summary.entries[node.name] = entry
                    cache.touch(node.key)
                    records.remember(node, flush: false)
                    observer?.nodeCached(node.name, entry: entry)
                } else {
                    s.pending.append(node.name)
                }
            }
            records.flush()
            schedule(&s, group)
        }
        group.wait()

        cache.fileHasher.save()
        lease.release()
        return state.withLock { s in
            for name in s.pending {
                s.summary.outcomes[name] = .skipped("interrupted before it started")
                observer?.nodeSkipped(name, reason: "interrupted before it started")
            }
            s.pending.removeAll()
            s.summary.interrupted = cancellation.current
            s.summary.wallSeconds = Date().timeIntervalSince(start)
            return s.summary
        }
    }

    /// Starts every ready node while slots are free; runs under the lock (`s` is the locked state).
    private func schedule(_ s: inout Schedule, _ group: DispatchGroup) {
        var index = 0
        while index < s.pending.count {
            let name = s.pending[index]
            let node = plan.graph.node(named: name)!  // invariant: pending holds only the plan's own nodes
            // An input that failed or was skipped poisons this node.
            if let bad = node.inputs.values.first(where: { isBlocked(s.summary.outcomes[$0.node]) }) {
                s.pending.remove(at: index)
                let reason = "upstream node '\(bad.node)' did not complete"
                s.summary.outcomes[name] = .skipped(reason)
                observer?.nodeSkipped(name, reason: reason)
                index = 0  // newly skipped nodes may block others earlier in the list
                continue
            }
            let ready = node.inputs.values.allSatisfy { s.done[$0.node] != nil }
            if ready && s.running < jobs && !cancellation.current {
                s.pending.remove(at: index)
                s.running += 1
                group.enter()
                queue.async {
                    let result = self.execute(name)
                    self.state.withLock { s in
                        s.running -= 1
                        switch result {
                        case .success(let (entry, seconds, reused)):
                            s.done[name] = entry
                            s.summary.outcomes[name] = reused ? .cached : .executed
                            s.summary.entries[name] = entry
                            s.summary.seconds[name] = seconds
                        case .failure(let failure):
                            s.summary.outcomes[name] = failure.cancelled ? .skipped("interrupted") : .failed(failure.message)
                            s.summary.seconds[name] = failure.seconds
                        }
                        self.schedule(&s, group)
                    }
                    group.leave()
                }
            } else {
                index += 1
            }
        }
    }

    private func isBlocked(_ outcome: RunSummary.Outcome?) -> Bool {
        switch outcome {
        case .failed?, .skipped?: return true
        default: return false
        }
    }

    struct Failure: Error {
        var message: String
        var seconds: Double
        var cancelled: Bool
    }

    /// Runs one node under its key's lock; when another process (a second run on this cache) was
    /// computing the same key, waits for it and reuses its entry (`reused`).
    private func execute(_ name: String) -> Result<(URL, Double, reused: Bool), Failure> {
        let nodePlan = plan.node(named: name)!  // invariant: the scheduler runs only the plan's nodes
        let node = plan.graph.node(named: name)!  // invariant: as above
        let start = Date()
        observer?.nodeStarted(name)
        var temporary: URL?
        do {
            try lease.add([nodePlan.key])
            if let remote { return try executeRemotely(nodePlan, remote, start: start) }
            let held = try cache.locks.lock(nodePlan.key, isCancelled: { self.isCancelled }) { owner in
                self.logger.info("node '\(name)': waiting for \(owner?.description ?? "another process"), which is computing the same output")
            }
            defer { held.release() }
            // Another process may have committed the entry while this one waited; a forced node is
            // computed again whatever the cache holds.
            if !nodePlan.reasons.contains("forced"), case .valid(let url, _) = cache.lookup(nodePlan.key) {
                cache.touch(nodePlan.key)
                records.remember(nodePlan)
                observer?.nodeCached(name, entry: url)
                return .success((url, Date().timeIntervalSince(start), true))
            }
            let folder = try cache.makeTemporary(for: nodePlan.key)
            temporary = folder
            let done = state.withLock { $0.done }
            let inputFolders = node.inputs.mapValues { done[$0.node]!.appendingPathComponent($0.port) }  // invariant: scheduled only when every input is done
            var nodeLogger = logger
            nodeLogger[metadataKey: "node"] = "\(name)"
            let context = NodeContext(nodeName: name, params: node.params, paths: node.paths, texts: node.texts, inputFolders: inputFolders,
                                      outputRoot: folder, threads: max(1, ProcessInfo.processInfo.activeProcessorCount / jobs),
                                      logger: nodeLogger, cancellation: cancellation, fileHasher: cache.fileHasher,
                                      itemScope: ItemScope(cache: cache, pipeline: plan.graph.spec.name, node: nodePlan.cacheKey, lease: lease),
                                      onProgress: { [weak self] progress in self?.observer?.nodeProgress(name, progress) },
                                      onWarning: { [weak self] message in self?.observer?.nodeWarning(name, message: message) })
            // The node's thread budget is current while it runs: its networks and loops keep to it.
            state.withLock { schedule in
                schedule.budgets.append((name, context.compute))
                schedule.rebalance()
            }
            defer {
                state.withLock { schedule in
                    schedule.budgets.removeAll { $0.node == name }
                    schedule.rebalance()
                    schedule.summary.threads[name] = .init(budget: context.compute.mostThreads, peak: context.compute.peakWorkers)
                }
            }
            try context.compute.run { try node.type.init().execute(context) }
            try context.checkCancellation()
            for port in node.type.outputs {
                var isDir: ObjCBool = false
                if !FileManager.default.fileExists(atPath: folder.appendingPathComponent(port.name).path, isDirectory: &isDir) || !isDir.boolValue {
                    // An optional output the node had nothing for is an empty folder its consumers can inspect.
                    if port.optional {
                        try FileManager.default.createDirectory(at: folder.appendingPathComponent(port.name), withIntermediateDirectories: true)
                        continue
                    }
                    throw NodeError("node type '\(node.type.name)' finished without writing its output '\(port.name)' (an engine bug in that node type)")
                }
            }
            let seconds = Date().timeIntervalSince(start)
            var manifest = EntryManifest(key: nodePlan.key, pipeline: plan.graph.spec.name, node: name, type: node.type.name,
                                         version: node.type.version, params: node.params, keyParams: nodePlan.keyParams,
                                         inputs: nodePlan.inputKeys, created: Date(), seconds: seconds, files: [])
            let itemKeys = context.itemKeys.current
            manifest.items = itemKeys.isEmpty ? nil : Array(Set(itemKeys)).sorted()
            let entry = try cache.commit(temporary: folder, manifest: manifest)
            records.remember(nodePlan)
            observer?.nodeFinished(name, entry: entry, seconds: seconds)
            return .success((entry, seconds, false))
        } catch {
            if let temporary { try? FileManager.default.removeItem(at: temporary) }
            let seconds = Date().timeIntervalSince(start)
            let cancelled = error is RunCancelled
            let message = cancelled ? "interrupted" : FlowError.plainReason(error)
            if cancelled { observer?.nodeSkipped(name, reason: "interrupted") }
            else { observer?.nodeFailed(name, message: message, seconds: seconds) }
            return .failure(Failure(message: message, seconds: seconds, cancelled: cancelled))
        }
    }

    /// The job takes the key's lock itself. A live holder (a job of an earlier driver that was
    /// killed, another run) is waited for and its entry adopted instead of submitting again.
    private func executeRemotely(_ nodePlan: NodePlan, _ remote: RemoteNodeRunner, start: Date) throws -> Result<(URL, Double, reused: Bool), Failure> {
        let name = nodePlan.name
        if let owner = cache.locks.liveOwner(nodePlan.key) {
            logger.info("node '\(name)': \(owner.description) is computing it already; waiting for it")
            let held = try cache.locks.lock(nodePlan.key, isCancelled: { self.isCancelled })
            held.release()
        }
        if case .valid(let url, _) = cache.lookup(nodePlan.key) {
            cache.touch(nodePlan.key)
            records.remember(nodePlan)
            observer?.nodeCached(name, entry: url)
            return .success((url, Date().timeIntervalSince(start), true))
        }
        let graphNode = plan.graph.node(named: name)!  // invariant: the scheduler runs only the plan's nodes
        if graphNode.type.splitsIntoItems {
            // Which items the node has and which the cache lacks, from the node's own code run here
            // in declare mode; the missing ones go out as one job array.
            let done = state.withLock { $0.done }
            let inputFolders = graphNode.inputs.mapValues { done[$0.node]!.appendingPathComponent($0.port) }  // invariant: scheduled only when every input is done
            let items = try NodeWorker.itemPass(graphNode, nodePlan, pipeline: plan.graph.spec.name, cache: cache, inputFolders: inputFolders,
                                                mode: .declare, lease: lease, logger: logger, cancellation: cancellation)
            let missing = items.filter { !$0.cached }
            if !missing.isEmpty {
                logger.info("node '\(name)': \(missing.count) of \(items.count) items not in the cache yet")
                try remote.runItems(node: name, type: nodePlan.typeName, items: missing,
                                    report: { [weak self] job in self?.observer?.nodeJob(name, job) }, isCancelled: { [weak self] in self?.isCancelled ?? true })
            }
        }
        let computed = try remote.run(node: name, type: nodePlan.typeName, key: nodePlan.key,
                                      report: { [weak self] job in self?.observer?.nodeJob(name, job) }, isCancelled: { [weak self] in self?.isCancelled ?? true })
        guard case .valid(let url, _) = cache.lookup(nodePlan.key) else {
            throw NodeError("the job ended without committing the node's output to the cache")
        }
        let seconds = Date().timeIntervalSince(start)
        records.remember(nodePlan)
        // A job that found the entry committed (by another run on this cache) computed nothing.
        if computed { observer?.nodeFinished(name, entry: url, seconds: seconds) } else { observer?.nodeCached(name, entry: url) }
        return .success((url, seconds, !computed))
    }
}
