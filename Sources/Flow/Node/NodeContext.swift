import Foundation
import Logging
import NICBasics

/// Thrown inside a node when the run is being stopped (SIGINT/SIGTERM); the engine discards the
/// node's partial output.
public struct RunCancelled: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "interrupted" }
}

/// A node's failure with a message for users; any other Error works too.
public struct NodeError: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public struct NodeProgress: Sendable {
    public var completed: Int
    public var total: Int?
    public var unit: String
    public var message: String?
    /// Training state: e.g. "epoch 3/8".
    public var stage: String?
    /// Named numbers to show and record, e.g. ["loss": 0.41, "val_loss": 0.52].
    public var metrics: [String: Double]

    public init(completed: Int, total: Int? = nil, unit: String = "items", message: String? = nil,
                stage: String? = nil, metrics: [String: Double] = [:]) {
        self.completed = completed
        self.total = total
        self.unit = unit
        self.message = message
        self.stage = stage
        self.metrics = metrics
    }
}

/// What `cachedItems` does: everything (a local run, a gather job), only name the items (the
/// driver of a cluster run, to know what to submit), or compute one item (an array task).
enum ItemMode: Sendable {
    case all
    case declare
    case only(Int)
}

/// One item a node declared: its position, key and whether the cache has it.
public struct DeclaredItem: Sendable, Equatable {
    public var index: Int
    public var identity: String
    /// What a user calls it (a slide's name), for messages; the identity when the node gave none.
    public var name: String
    public var key: String
    public var cached: Bool
}

/// Thrown out of `cachedItems` to stop a node once its items are known (declare) or its one item is
/// committed (an array task): the node's gathering part does not run there.
struct ItemsDeclared: Error {
    var items: [DeclaredItem]
}
struct ItemComputed: Error {}

/// Where a node's per-item entries go, and the node's own key they are derived from.
struct ItemScope {
    let cache: Cache
    let pipeline: String
    let node: CacheKey
    var lease: KeyLocks.Lease? = nil
    var mode: ItemMode = .all
}

/// Everything a node's `run` may use: its params, its inputs' folders, folders for its outputs, and
/// ways to report progress and notice cancellation.
public final class NodeContext: Sendable {
    public let nodeName: String
    public let params: [String: ParamValue]
    public let paths: [String: URL]
    /// Referenced files' text as read when the node was keyed, by param name.
    let texts: [String: String]
    public let logger: Logger
    /// The node's thread budget for the neural core and its own loops (`concurrentMap`), and what
    /// they used. The engine re-divides the cores as nodes start and finish.
    public let compute: ComputeContext
    /// Threads this node may use now for its own data parallelism.
    public var threads: Int { compute.threads }
    let inputFolders: [String: URL]
    let outputRoot: URL
    /// Set once by the executor (a signal), read by every worker.
    let cancellation: Locked<Bool>
    let onProgress: @Sendable (NodeProgress) -> Void
    let onWarning: @Sendable (String) -> Void
    let fileHasher: FileHasher
    /// For per-item cache entries (see `cachedItem`).
    let itemScope: ItemScope?
    /// The keys of the items this node used, for its manifest (items are cached from several workers).
    let itemKeys = Locked<[String]>([])

    init(nodeName: String, params: [String: ParamValue], paths: [String: URL], texts: [String: String] = [:], inputFolders: [String: URL],
         outputRoot: URL, threads: Int, logger: Logger, cancellation: Locked<Bool>, fileHasher: FileHasher,
         itemScope: ItemScope? = nil, onProgress: @escaping @Sendable (NodeProgress) -> Void,
         onWarning: @escaping @Sendable (String) -> Void = { _ in }) {
        self.texts = texts
        self.onWarning = onWarning
        self.fileHasher = fileHasher
        self.itemScope = itemScope
        self.nodeName = nodeName
        self.params = params
        self.paths = paths
        self.inputFolders = inputFolders
        self.outputRoot = outputRoot
        self.compute = ComputeContext(threads: threads)
        self.logger = logger
        self.cancellation = cancellation
        self.onProgress = onProgress
    }

    // MARK: Inputs and outputs

    /// The folder of the upstream output connected to `port`.
    public func input(_ port: String) throws -> URL {
        guard let url = inputFolders[port] else { throw NodeError("input '\(port)' is not connected") }
        return url
    }

    public func hasInput(_ port: String) -> Bool { inputFolders[port] != nil }

    /// How the output connected to `port` was made (its cache entry's manifest: type, params and the
    /// keys of its own inputs), so a node can record the provenance of what it consumed; nil when the
    /// input is not a cache entry.
    public func inputOrigin(_ port: String) -> EntryManifest? {
        guard let url = inputFolders[port] else { return nil }
        let data: Data
        do { data = try Data(contentsOf: url.deletingLastPathComponent().appendingPathComponent("manifest.json")) } catch { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(EntryManifest.self, from: data)
    }

    /// SHA-256 (hex) of a string, for fingerprints nodes record.
    public static func sha256(_ string: String) -> String { Hashing.sha256Hex(string) }

    /// The folder to write output `port` into (created on first use).
    public func output(_ port: String) throws -> URL {
        let url = outputRoot.appendingPathComponent(port)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }


    /// SHA-256 of an external file, from the cache's (path, size, mtime, inode) memory when unchanged.
    public func contentHash(of url: URL) throws -> String {
        try fileHasher.hash(fileAt: url)
    }

    // MARK: Per-item caching

    /// Caches one item of a node's work (one slide of a cohort) as its own entry, so that a rerun after
    /// the collection changed (a slide added) recomputes only new items. The item's key covers this
    /// node's type, version and params, its inputs except `excludingInputs` (the collection the items
    /// come from), and `identity` (say, the slide's content hash). Returns the item's folder in the
    /// cache; `produce` fills a fresh folder when the item is not cached. Safe from several threads.
    public func cachedItem(_ identity: String, excludingInputs: Set<String> = [], produce: (URL) throws -> Void) throws -> (folder: URL, reused: Bool) {
        guard let scope = itemScope else { throw NodeError("per-item caching is not available here") }
        let itemKey = scope.node.item(identity, excludingInputs: excludingInputs)
        let key = itemKey.hex
        itemKeys.withLock { $0.append(key) }
        try scope.lease?.add([key])
        // Another process (a second run, a Slurm array task) may be computing this very item: wait for it.
        let held = try scope.cache.locks.lock(key, isCancelled: { self.isCancelled }) { owner in
            self.logger.info("item \(identity.prefix(40)): waiting for \(owner?.description ?? "another process"), which is computing it")
        }
        defer { held.release() }
        if case .valid(let url, _) = scope.cache.lookup(key) {
            scope.cache.touch(key)
            return (url, true)
        }
        let start = Date()
        let folder = try scope.cache.makeTemporary(for: key)
        do {
            try produce(folder)
            try checkCancellation()
        } catch {
            try? FileManager.default.removeItem(at: folder)
            throw error
        }
        let manifest = EntryManifest(key: key, pipeline: scope.pipeline, node: "\(nodeName)[\(identity.prefix(40))]", type: itemKey.type,
                                     version: itemKey.version, params: params, keyParams: itemKey.params, inputs: itemKey.inputs,
                                     created: Date(), seconds: Date().timeIntervalSince(start), files: [])
        return (try scope.cache.commit(temporary: folder, manifest: manifest), false)
    }

    /// A node's whole list of items at once (the per-slide work of a cohort), so that an executor can
    /// compute them anywhere (locally one after the other, on a cluster as one job array) before the
    /// node gathers them: `produce(i, folder)` fills item `i`'s fresh folder. Returns every item's
    /// folder in the cache, in order. `names` (a slide's file name, say) name the items in messages;
    /// they do not enter keys. Node types that call this declare `splitsIntoItems`.
    public func cachedItems(_ identities: [String], names: [String]? = nil, excludingInputs: Set<String> = [],
                            produce: (Int, URL) throws -> Void) throws -> [(folder: URL, reused: Bool)] {
        guard let scope = itemScope else { throw NodeError("per-item caching is not available here") }
        switch scope.mode {
        case .all:
            return try identities.enumerated().map { index, identity in
                try cachedItem(identity, excludingInputs: excludingInputs) { try produce(index, $0) }
            }
        case .declare:
            let items = identities.enumerated().map { index, identity in
                let key = scope.node.item(identity, excludingInputs: excludingInputs).hex
                var cached = false
                if case .valid = scope.cache.lookup(key) { cached = true }
                let name = names.flatMap { $0.indices.contains(index) ? $0[index] : nil } ?? String(identity.prefix(60))
                return DeclaredItem(index: index, identity: identity, name: name, key: key, cached: cached)
            }
            throw ItemsDeclared(items: items)
        case .only(let index):
            guard identities.indices.contains(index) else {
                throw NodeError("item \(index) asked for, but the node has \(identities.count) items now (its inputs changed since the driver planned?)")
            }
            _ = try cachedItem(identities[index], excludingInputs: excludingInputs) { try produce(index, $0) }
            throw ItemComputed()
        }
    }

    /// Hard-links (or, across file systems, copies) every file of `source` into `destination`, so an
    /// output can include cached items without duplicating their bytes.
    public func link(contentsOf source: URL, into destination: URL) throws {
        let fm = FileManager.default
        for relative in try FileHasher.listFiles(under: source) where relative != "manifest.json" {
            let target = destination.appendingPathComponent(relative)
            try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            if Foundation.link(source.appendingPathComponent(relative).path, target.path) != 0 {
                try fm.copyItem(at: source.appendingPathComponent(relative), to: target)
            }
        }
    }

    // MARK: Progress and cancellation

    public var isCancelled: Bool { cancellation.current }

    /// Logs a warning and keeps it in the run record (node `warnings` in run.json).
    public func warn(_ message: String) {
        logger.warning("\(message)")
        onWarning(message)
    }

    public func checkCancellation() throws {
        if cancellation.current { throw RunCancelled() }
    }

    public func progress(_ completed: Int, of total: Int? = nil, unit: String = "items", message: String? = nil,
                         stage: String? = nil, metrics: [String: Double] = [:]) {
        onProgress(NodeProgress(completed: completed, total: total, unit: unit, message: message, stage: stage, metrics: metrics))
    }

    /// Sleeps, waking early (and throwing) if the run is cancelled.
    public func sleep(seconds: Double) throws {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            try checkCancellation()
            Thread.sleep(forTimeInterval: min(0.02, max(0, end.timeIntervalSinceNow)))
        }
        try checkCancellation()
    }
}
