import Foundation
import NICBasics

/// What the planner decided for one node.
public struct NodePlan {
    public enum Status: Equatable {
        case cached
        case willRun
    }
    public let name: String
    public let typeName: String
    public let version: Int
    public let key: String
    public let status: Status
    /// Why it will run ("no cached output", "params changed: lr", "input 'encoder' changed", ...).
    public let reasons: [String]
    public let params: [String: ParamValue]
    public let keyParams: [String: ParamValue]
    /// Input port → the key of the upstream output it reads ("<key>/<port>").
    public let inputKeys: [String: String]
    /// The cache entry when cached.
    public let entry: URL?

    /// What `key` was computed from.
    public var cacheKey: CacheKey { CacheKey(type: typeName, version: version, params: keyParams, inputs: inputKeys) }
}

public struct Plan {
    public let graph: PipelineGraph
    public let nodes: [NodePlan]
    public func node(named name: String) -> NodePlan? { nodes.first { $0.name == name } }
    public var toRun: [NodePlan] { nodes.filter { $0.status == .willRun } }
}

/// The last keys a pipeline's nodes had, so the planner can say *what* changed since.
struct PipelineRecord: Codable {
    struct Node: Codable {
        var key: String
        var type: String
        var version: Int
        /// Canonical JSON per param: JSON numbers lose the int/float distinction, strings do not.
        var params: [String: String]
        var keyParams: [String: String]
        var inputs: [String: String]
    }
    var nodes: [String: Node] = [:]
}

public enum Planner {
    /// Computes every node's cache key (a Merkle hash over type, version, params by content and input
    /// keys) and whether its output is already in `cache`.
    public static func plan(_ graph: PipelineGraph, cache: Cache, force: Set<String> = []) throws -> Plan {
        let record = loadRecord(cache: cache, pipeline: graph.spec.name)
        var keys: [String: String] = [:]
        var plans: [NodePlan] = []
        defer { cache.fileHasher.save() }
        for node in graph.nodes {
            var keyParams = node.params
            for param in node.type.params where param.checks.contains(where: \.unkeyedAtDefault) && keyParams[param.name] == param.defaultValue {
                keyParams.removeValue(forKey: param.name)
            }
            for param in node.type.params {
                guard let url = node.paths[param.name] else { continue }
                switch param.type {
                case .file: keyParams[param.name] = .string("sha256:" + (try cache.fileHasher.hash(fileAt: url)))
                case .directory: keyParams[param.name] = .string("sha256:" + (try cache.fileHasher.hash(directoryAt: url)))
                case .definitions: keyParams[param.name] = .string("sha256:" + DefinitionFolder.hash(of: DefinitionFolder.files(param: param.name, in: node.texts)))
                default: break  // references already hold their parsed content
                }
            }
            var inputKeys: [String: String] = [:]
            for (port, source) in node.inputs { inputKeys[port] = keys[source.node]! + "/" + source.port }  // invariant: nodes are planned in topological order, inputs first
            let key = CacheKey(type: node.type.name, version: node.type.version, params: keyParams, inputs: inputKeys).hex
            keys[node.name] = key

            var status = NodePlan.Status.willRun
            var reasons: [String] = []
            var entry: URL?
            switch cache.lookup(key) {
            case .valid(let url, _):
                if force.contains(node.name) { reasons = ["forced"] } else { status = .cached; entry = url }
            case .damaged(let why):
                reasons = ["cached output damaged: \(why)"]
            case .missing:
                if cache.wasQuarantined(key) { reasons = ["cached output was corrupt and set aside"] }
                else { reasons = changeReasons(node: node, keyParams: keyParams, inputKeys: inputKeys, key: key, previous: record.nodes[node.name]) }
            }
            plans.append(NodePlan(name: node.name, typeName: node.type.name, version: node.type.version, key: key,
                                  status: status, reasons: reasons, params: node.params, keyParams: keyParams,
                                  inputKeys: inputKeys, entry: entry))
        }
        return Plan(graph: graph, nodes: plans)
    }

    static func changeReasons(node: GraphNode, keyParams: [String: ParamValue], inputKeys: [String: String],
                              key: String, previous: PipelineRecord.Node?) -> [String] {
        guard let previous, previous.key != key else { return ["no cached output"] }
        if previous.type != node.type.name { return ["type changed: \(previous.type) → \(node.type.name)"] }
        var reasons: [String] = []
        if previous.version != node.type.version {
            reasons.append("implementation version changed: \(previous.version) → \(node.type.version)")
        }
        var changedParams: [String] = []
        var changedFiles: [String] = []
        for name in Set(keyParams.keys).union(previous.keyParams.keys).sorted() where keyParams[name]?.canonicalJSON != previous.keyParams[name] {
            if node.paths[name] != nil, previous.params[name] == node.params[name]?.canonicalJSON {
                changedFiles.append("\(name) (\(node.params[name]?.display ?? node.paths[name]!.path))")
            } else if node.paths[name] != nil, case .reference = node.type.params.first(where: { $0.name == name })?.type {
                changedFiles.append("\(name) (\(node.paths[name]!.path))")
            } else {
                changedParams.append(name)
            }
        }
        if !changedParams.isEmpty { reasons.append("params changed: " + changedParams.joined(separator: ", ")) }
        if !changedFiles.isEmpty { reasons.append("file changed: " + changedFiles.joined(separator: ", ")) }
        for port in Set(inputKeys.keys).union(previous.inputs.keys).sorted() where inputKeys[port] != previous.inputs[port] {
            reasons.append("input '\(port)' changed")
        }
        return reasons.isEmpty ? ["no cached output"] : reasons
    }

    static func recordURL(cache: Cache, pipeline: String) -> URL {
        let safe = pipeline.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }
        return cache.state.appendingPathComponent("pipelines").appendingPathComponent(String(safe) + ".json")
    }

    static func loadRecord(cache: Cache, pipeline: String) -> PipelineRecord {
        guard let data = try? Data(contentsOf: recordURL(cache: cache, pipeline: pipeline)),
              let record = try? JSONDecoder().decode(PipelineRecord.self, from: data) else { return PipelineRecord() }
        return record
    }
}

/// Remembers, per pipeline, the key each node last had when it succeeded or was found cached.
/// Several processes may run the same pipeline on one cache: each write re-reads the record under
/// its lock and changes only the nodes this run learned about, so no run loses another's.
final class RecordKeeper: Sendable {
    private let url: URL
    private let lockName: String
    private let locks: KeyLocks
    /// What this run learned (only these nodes are written over the record on disk).
    private let learned = Locked<[String: PipelineRecord.Node]>([:])

    init(cache: Cache, pipeline: String) {
        url = Planner.recordURL(cache: cache, pipeline: pipeline)
        lockName = "record-" + url.deletingPathExtension().lastPathComponent
        locks = cache.locks
    }

    /// `flush: false` batches cached nodes into one write; executed nodes are written at once so that a
    /// killed run still remembers what it finished.
    func remember(_ plan: NodePlan, flush: Bool = true) {
        learned.withLock { learned in
            learned[plan.name] = PipelineRecord.Node(key: plan.key, type: plan.typeName, version: plan.version,
                                                     params: plan.params.mapValues(\.canonicalJSON),
                                                     keyParams: plan.keyParams.mapValues(\.canonicalJSON), inputs: plan.inputKeys)
            if flush { write(learned) }
        }
    }

    func flush() {
        learned.withLock { write($0) }
    }

    /// Called under `learned`'s lock, so two workers never interleave their writes; the file lock
    /// does the same for other processes.
    private func write(_ learned: [String: PipelineRecord.Node]) {
        guard !learned.isEmpty else { return }
        let held = try? locks.lock(lockName)
        defer { held?.release() }
        var record = (try? Data(contentsOf: url)).flatMap { try? JSONDecoder().decode(PipelineRecord.self, from: $0) } ?? PipelineRecord()
        record.nodes.merge(learned) { _, mine in mine }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        if let data = try? encoder.encode(record) { try? data.write(to: url, options: .atomic) }
    }
}
