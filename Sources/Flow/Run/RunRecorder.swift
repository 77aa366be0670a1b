import Foundation
import NICBasics

/// Forwards run events to several observers (the terminal display, the run record, ...).
public final class ObserverGroup: RunObserver, Sendable {
    private let observers: [RunObserver]
    public init(_ observers: [RunObserver]) { self.observers = observers }
    public func nodeCached(_ name: String, entry: URL) { observers.forEach { $0.nodeCached(name, entry: entry) } }
    public func nodeStarted(_ name: String) { observers.forEach { $0.nodeStarted(name) } }
    public func nodeProgress(_ name: String, _ progress: NodeProgress) { observers.forEach { $0.nodeProgress(name, progress) } }
    public func nodeFinished(_ name: String, entry: URL, seconds: Double) { observers.forEach { $0.nodeFinished(name, entry: entry, seconds: seconds) } }
    public func nodeFailed(_ name: String, message: String, seconds: Double) { observers.forEach { $0.nodeFailed(name, message: message, seconds: seconds) } }
    public func nodeSkipped(_ name: String, reason: String) { observers.forEach { $0.nodeSkipped(name, reason: reason) } }
    public func nodeWarning(_ name: String, message: String) { observers.forEach { $0.nodeWarning(name, message: message) } }
    public func nodeJob(_ name: String, _ job: RemoteJob) { observers.forEach { $0.nodeJob(name, job) } }
    public func nodeJobCounts(_ name: String, _ counts: JobCounts) { observers.forEach { $0.nodeJobCounts(name, counts) } }
}

/// What `runs/<time>-<pipeline>/run.json` holds; also read back by `nic runs` and `nic report`.
public struct RunRecord: Codable, Sendable {
    public struct Node: Codable, Sendable {
        public var type: String
        public var key: String
        /// "cached" or "will run" at plan time, with the planner's reasons.
        public var plan: String
        public var reasons: [String]
        /// pending, running, cached, done, failed, skipped
        public var status: String
        public var started: Date?
        public var finished: Date?
        public var seconds: Double?
        public var entry: String?
        public var error: String?
        /// Input port → "node.port".
        public var inputs: [String: String]
        public var params: [String: ParamValue]
        /// The last progress seen: completed/total, stage and metrics.
        public var progress: String?
        public var metrics: [String: Double]?
        /// The node's thread budget (cores ÷ `--jobs`) and the most of its workers that ran at once.
        public var threads: Int?
        public var peakThreads: Int?
        /// What the node warned about (patients left out, ...).
        public var warnings: [String]?
        /// Under the Slurm executor: the node's job (id, log, state, queue wait and run time).
        public var job: RemoteJob?
        /// The job arrays that computed the node's missing items (`id_[0-n]`), before `job` gathered them.
        public var itemArrays: [RemoteJob]?
        /// For one instance of a matrix/foreach template: the template, its axes and this node's values
        /// on them, and (foreach over nodes) the template its item came from; reports group on these.
        public var template: String?
        public var axes: [String]?
        public var labels: [String]?
        public var source: String?
        public var from: String?
    }
    public var format = 1
    public var pipeline: String
    public var specFile: String
    public var cache: String
    /// running, done, failed, interrupted (as written; see `shownStatus` for `died`)
    public var status: String
    /// The process that writes this record: a record still "running" whose owner is gone died.
    public var owner: LockOwner?
    public var started: Date
    public var finished: Date?
    public var seconds: Double?
    public var jobs: Int
    /// Node names in topological order.
    public var order: [String]
    public var nodes: [String: Node]

    /// The status to show: `died` for a record left "running" by a process that no longer exists
    /// (killed, crashed, out of memory, lost with its machine).
    public var shownStatus: String {
        guard status == "running", let owner, case .dead = owner.liveness else { return status }
        return "died"
    }

    public var counts: (executed: Int, cached: Int, failed: Int, skipped: Int) {
        let statuses = nodes.values.map(\.status)
        return (statuses.filter { $0 == "done" }.count, statuses.filter { $0 == "cached" }.count,
                statuses.filter { $0 == "failed" }.count, statuses.filter { $0 == "skipped" }.count)
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        e.dateEncodingStrategy = .iso8601
        // Whatever number slips through, the record stays writable (a record that cannot be written
        // leaves a finished run "running", shown as died).
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return e
    }()

    public static func load(_ folder: URL) throws -> RunRecord {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return try decoder.decode(RunRecord.self, from: Data(contentsOf: folder.appendingPathComponent("run.json")))
    }

    /// Run folders under `root`, newest first.
    public static func list(in root: URL) -> [(folder: URL, record: RunRecord)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.sorted(by: >).compactMap { name in
            let folder = root.appendingPathComponent(name)
            return (try? load(folder)).map { (folder, $0) }
        }
    }
}

/// Writes `runs/<UTC time>-<pipeline>/`: the spec as written, the resolved spec, `run.json` (per-node
/// status, timings, cache hit or miss, reasons, errors; rewritten atomically as the run goes),
/// `events.jsonl` (progress with metrics, for curves) and `outputs/<node>` links to cache entries.
public final class RunRecorder: RunObserver, Sendable {
    public let folder: URL
    private let events: FileHandle?
    /// Nodes report from several workers; the record, the events file and its rate limit change together.
    private let state: Locked<State>
    private let writeFailed = Locked(false)

    private struct State {
        var record: RunRecord
        var lastEvent: [String: (Date, String?)] = [:]
    }

    public init(runsRoot: URL, plan: Plan, cache: Cache, jobs: Int, now: Date = Date()) throws {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        let safeName = String(plan.graph.spec.name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        var folder = runsRoot.appendingPathComponent("\(formatter.string(from: now))-\(safeName)")
        var n = 2
        while FileManager.default.fileExists(atPath: folder.path) {
            folder = runsRoot.appendingPathComponent("\(formatter.string(from: now))-\(safeName)-\(n)")
            n += 1
        }
        self.folder = folder
        do {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent("outputs"), withIntermediateDirectories: true)
        } catch {
            throw FlowError.wrapping(error, "cannot create run record folder \(folder.path)")
        }
        do { try Data(plan.graph.spec.source.utf8).write(to: folder.appendingPathComponent("pipeline.yaml")) }
        catch { throw FlowError.wrapping(error, "cannot write the run record in \(folder.path)") }

        var nodes: [String: RunRecord.Node] = [:]
        for node in plan.nodes {
            let graphNode = plan.graph.node(named: node.name)!  // invariant: plan nodes come from this graph
            nodes[node.name] = RunRecord.Node(
                type: node.typeName, key: node.key, plan: node.status == .cached ? "cached" : "will run", reasons: node.reasons,
                status: "pending", started: nil, finished: nil, seconds: nil, entry: nil, error: nil,
                inputs: graphNode.inputs.mapValues { "\($0.node).\($0.port)" }, params: node.params, progress: nil, metrics: nil,
                template: graphNode.spec.instance?.template, axes: graphNode.spec.instance?.axes,
                labels: graphNode.spec.instance?.labels, source: graphNode.spec.instance?.source,
                from: graphNode.spec.instance?.from)
        }
        // Includes and templates: the plain pipeline they stand for, beside the file as written.
        if !plan.graph.spec.included.isEmpty || !plan.graph.spec.templates.isEmpty {
            do { try Data(plan.graph.spec.expandedYAML.utf8).write(to: folder.appendingPathComponent("expanded.yaml")) }
            catch { throw FlowError.wrapping(error, "cannot write the run record in \(folder.path)") }
        }
        let record = RunRecord(pipeline: plan.graph.spec.name, specFile: plan.graph.spec.file, cache: cache.root.path,
                           status: "running", owner: LockOwner.current(), started: now, finished: nil, seconds: nil, jobs: jobs,
                           order: plan.nodes.map(\.name), nodes: nodes)
        // The resolved spec: every node with its type, version, typed params (defaults filled in) and key.
        let resolved: ParamValue = .map([
            "pipeline": .string(plan.graph.spec.name),
            "file": .string(plan.graph.spec.file),
            "base": .string(plan.graph.spec.baseDirectory.path),
            "nodes": .list(plan.nodes.map { node in
                let graphNode = plan.graph.node(named: node.name)!  // invariant: plan nodes come from this graph
                return .map([
                    "name": .string(node.name), "type": .string(node.typeName), "version": .int(node.version),
                    "key": .string(node.key), "params": .map(node.params),
                    "inputs": .map(graphNode.inputs.mapValues { .string("\($0.node).\($0.port)") }),
                ])
            }),
        ])
        do { try RunRecord.encoder.encode(resolved).write(to: folder.appendingPathComponent("resolved.json")) }
        catch { throw FlowError.wrapping(error, "cannot write the run record in \(folder.path)") }
        let eventsURL = folder.appendingPathComponent("events.jsonl")
        _ = FileManager.default.createFile(atPath: eventsURL.path, contents: nil)
        events = FileHandle(forWritingAtPath: eventsURL.path)
        state = Locked(State(record: record))
        write(record)
    }

    private func write(_ record: RunRecord) {
        do { try RunRecord.encoder.encode(record).write(to: folder.appendingPathComponent("run.json"), options: .atomic) }
        catch { noteWriteFailure(error, "run.json") }
    }

    /// For a hard exit (a second Ctrl-C): the record says how the run ended.
    public func markInterrupted() {
        state.withLock { s in
            s.record.status = "interrupted"
            s.record.finished = Date()
            write(s.record)
        }
    }

    private func event(_ name: String, _ kind: String, _ extra: [String: ParamValue] = [:]) {
        var fields = extra
        fields["time"] = .float((Date().timeIntervalSince1970 * 1000).rounded() / 1000)
        fields["node"] = .string(name)
        fields["event"] = .string(kind)
        // A full disk must not stop the run: events are a record for curves, not results.
        do { try events?.write(contentsOf: Data((ParamValue.map(fields).canonicalJSON + "\n").utf8)) }
        catch { noteWriteFailure(error, "events.jsonl") }
    }

    /// Says once on stderr that the record could not be written (a full disk, a read-only runs folder).
    private func noteWriteFailure(_ error: Error, _ file: String) {
        let first = writeFailed.withLock { failed in defer { failed = true }; return !failed }
        if first {
            let context = "nic: cannot write \(folder.appendingPathComponent(file).path)"
            FileHandle.standardError.write(Data("\(context): \(FlowError.plainReason(error, context: context)); the run goes on, its record is incomplete\n".utf8))
        }
    }

    private func update(_ name: String, _ change: (inout RunRecord.Node) -> Void) {
        state.withLock { s in
            if var node = s.record.nodes[name] {
                change(&node)
                s.record.nodes[name] = node
            }
            write(s.record)
        }
    }

    private func link(_ name: String, to entry: URL) {
        let link = folder.appendingPathComponent("outputs").appendingPathComponent(name)
        try? FileManager.default.removeItem(at: link)
        try? FileManager.default.createSymbolicLink(at: link, withDestinationURL: entry)
    }

    public func nodeCached(_ name: String, entry: URL) {
        link(name, to: entry)
        update(name) { $0.status = "cached"; $0.entry = entry.path }
    }

    public func nodeStarted(_ name: String) {
        state.withLock { _ in event(name, "start") }
        update(name) { $0.status = "running"; $0.started = Date() }
    }

    public func nodeProgress(_ name: String, _ progress: NodeProgress) {
        let due = state.withLock { s in
            // Every change of stage (epoch) is kept for curves; plain counts at most once a second.
            let now = Date()
            let last = s.lastEvent[name]
            let due = last == nil || last!.1 != progress.stage || now.timeIntervalSince(last!.0) >= 1 || progress.completed == progress.total  // invariant: `last` is non-nil past the `== nil ||`
            if due {
                s.lastEvent[name] = (now, progress.stage)
                var extra: [String: ParamValue] = ["completed": .int(progress.completed), "unit": .string(progress.unit)]
                if let total = progress.total { extra["total"] = .int(total) }
                if let stage = progress.stage { extra["stage"] = .string(stage) }
                if let message = progress.message { extra["message"] = .string(message) }
                // A score that could not be computed (NaN) is left out: JSON has no NaN, and an unwritable
                // record would make a finished run look like one that died.
                let finite = progress.metrics.filter { $0.value.isFinite }
                if !finite.isEmpty { extra["metrics"] = .map(finite.mapValues { .float($0) }) }
                event(name, "progress", extra)
            }
            return due
        }
        guard due else { return }
        update(name) { node in
            node.progress = "\(progress.completed)\(progress.total.map { "/\($0)" } ?? "") \(progress.unit)\(progress.stage.map { ", \($0)" } ?? "")"
            let finite = progress.metrics.filter { $0.value.isFinite }
            if !finite.isEmpty { node.metrics = finite }
        }
    }

    public func nodeFinished(_ name: String, entry: URL, seconds: Double) {
        link(name, to: entry)
        state.withLock { _ in event(name, "done", ["seconds": .float(seconds)]) }
        update(name) { $0.status = "done"; $0.finished = Date(); $0.seconds = seconds; $0.entry = entry.path }
    }

    public func nodeFailed(_ name: String, message: String, seconds: Double) {
        state.withLock { _ in event(name, "failed", ["message": .string(message)]) }
        update(name) { $0.status = "failed"; $0.finished = Date(); $0.seconds = seconds; $0.error = message }
    }

    public func nodeSkipped(_ name: String, reason: String) {
        update(name) { $0.status = "skipped"; $0.error = reason }
    }

    public func nodeWarning(_ name: String, message: String) {
        state.withLock { _ in event(name, "warning", ["message": .string(message)]) }
        update(name) { $0.warnings = ($0.warnings ?? []) + [message] }
    }

    public func nodeJob(_ name: String, _ job: RemoteJob) {
        state.withLock { _ in event(name, "job", ["id": .string(job.id), "state": .string(job.state)]) }
        update(name) { node in
            if job.id.contains("_[") { node.itemArrays = (node.itemArrays ?? []).filter { $0.id != job.id } + [job] }
            else { node.job = job }
        }
    }

    /// Seals the record with the run's outcome.
    public func finish(_ summary: RunSummary) {
        state.withLock { s in
            s.record.status = summary.interrupted ? "interrupted" : (summary.succeeded ? "done" : "failed")
            s.record.finished = Date()
            s.record.seconds = summary.wallSeconds
            for (name, use) in summary.threads {
                s.record.nodes[name]?.threads = use.budget
                s.record.nodes[name]?.peakThreads = use.peak
            }
            write(s.record)
            try? events?.close()
        }
    }
}
