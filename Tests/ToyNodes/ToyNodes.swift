import Flow
import NICNodes
import Foundation
import NICBasics
import TensorStore

/// Node types for tests only: they make execution, timing, failure and crashes observable.
public enum ToyNodes {
    public static let all: [any NodeType.Type] = [Emit.self, Concat.self, Sleep.self, Rendezvous.self, Fail.self, SlowTensor.self, Split.self]
    public static var registry: NodeRegistry { PathologyNodes.registry.merging(all) }
}

public extension PortType { static let text: PortType = "Text" }

/// Records executions across threads so tests can count what ran and how much overlapped.
public final class ExecutionLog: @unchecked Sendable {
    public static let shared = ExecutionLog()
    private struct Counts {
        var names: [String] = []
        var running = 0
        var maxConcurrent = 0
    }
    private let counts = Locked(Counts())

    public func reset() { counts.withLock { $0 = Counts() } }
    public var executed: [String] { counts.withLock { $0.names } }
    public var maxConcurrent: Int { counts.withLock { $0.maxConcurrent } }

    func begin(_ name: String) {
        counts.withLock { c in
            c.names.append(name)
            c.running += 1
            c.maxConcurrent = max(c.maxConcurrent, c.running)
        }
    }

    func end() { counts.withLock { $0.running -= 1 } }
}

/// Appends one line ("what pid=… job=…") to the file `NIC_TOY_TRACE` names, when set: a test counts
/// what was computed across processes (two drivers on one cache, Slurm jobs), where `ExecutionLog`
/// sees one process only.
func trace(_ what: String) {
    let env = ProcessInfo.processInfo.environment
    guard let path = env["NIC_TOY_TRACE"] else { return }
    let job = LockOwner.slurmJob(env) ?? "-"
    let line = Array("\(what) pid=\(getpid()) job=\(job)\n".utf8)
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    guard fd >= 0 else { return }
    _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }  // one short O_APPEND write: lines never interleave
    close(fd)
}

func writeText(_ text: String, _ context: NodeContext) throws {
    try Data(text.utf8).write(to: try context.output("out").appendingPathComponent("text.txt"))
}

func readText(_ folder: URL) throws -> String {
    String(decoding: try Data(contentsOf: folder.appendingPathComponent("text.txt")), as: UTF8.self)
}

public struct Emit: NodeType {
    public static let name = "emit"
    public static let version = 1
    public static let summary = "Writes its 'value' param as text."
    public static let outputs = [PortSpec("out", .text, doc: "text.txt")]
    public struct Params: NodeParams {
        @Param(doc: "the text") var value: String
        @Param(doc: "how many times", .within(0, 1000)) var `repeat` = 1
        @Param(doc: "unused number, for key tests") var scale = 1.0
        @Param(doc: "unused list, for key tests") var tags: [String] = []
        @Param(doc: "unused mapping, for key tests") var options: ParamValue = .null
        @Param(doc: "a YAML definition whose 'suffix' is appended") var recipe: Reference? = nil
        public init() {}
    }
    public init() {}
    public func run(_ context: NodeContext, _ params: Params) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        let suffix = params.recipe?.content.mapValue?["suffix"]?.display ?? ""
        trace(context.nodeName)
        try writeText(String(repeating: params.value, count: params.repeat) + suffix, context)
    }
}

public struct Concat: NodeType {
    public static let name = "concat"
    public static let version = 1
    public static let summary = "Joins two texts with a separator."
    public static let inputs = [PortSpec("a", .text, doc: "first"), PortSpec("b", .text, optional: true, doc: "second")]
    public static let outputs = [PortSpec("out", .text, doc: "text.txt")]
    public struct Params: NodeParams {
        @Param(doc: "between a and b") var separator = "+"
        public init() {}
    }
    public init() {}
    public func run(_ context: NodeContext, _ params: Params) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        let a = try readText(try context.input("a"))
        let b = context.hasInput("b") ? try readText(try context.input("b")) : ""
        trace(context.nodeName)
        try writeText(a + params.separator + b, context)
    }
}

public struct Sleep: NodeType {
    public static let name = "sleep"
    public static let version = 1
    public static let summary = "Sleeps (cancellably), then writes its label."
    public static let inputs = [PortSpec("after", .text, optional: true, doc: "runs after this")]
    public static let outputs = [PortSpec("out", .text, doc: "text.txt")]
    public struct Params: NodeParams {
        @Param(doc: "how long", .atLeast(0)) var seconds: Double
        @Param(doc: "written text") var label = "slept"
        public init() {}
    }
    public init() {}
    public func run(_ context: NodeContext, _ params: Params) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        try context.sleep(seconds: params.seconds)
        try writeText(params.label, context)
    }
}

/// Two rendezvous nodes each wait for the other to have started: they can only both succeed if the
/// scheduler runs them at the same time. Proves overlap without timing assertions.
public struct Rendezvous: NodeType {
    public static let name = "rendezvous"
    public static let version = 1
    public static let summary = "Signals that it started and waits (up to 'timeout' s) for 'partner' to start."
    public static let outputs = [PortSpec("out", .text, doc: "text.txt")]
    public struct Params: NodeParams {
        @Param(doc: "the other node's name") var partner: String
        @Param(doc: "seconds to wait", .positive) var timeout = 20.0
        public init() {}
    }
    static let semaphores = Locked<[String: DispatchSemaphore]>([:])
    static func semaphore(_ name: String) -> DispatchSemaphore {
        semaphores.withLock { all in
            if let s = all[name] { return s }
            let s = DispatchSemaphore(value: 0)
            all[name] = s
            return s
        }
    }
    public static func reset() { semaphores.withLock { $0 = [:] } }
    public init() {}
    public func run(_ context: NodeContext, _ params: Params) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        Self.semaphore(context.nodeName).signal()
        let partner = Self.semaphore(params.partner)
        guard partner.wait(timeout: .now() + params.timeout) == .success else {
            throw NodeError("partner '\(params.partner)' never started while I was running")
        }
        partner.signal()  // leave it signalled for the partner's own check
        try writeText("met", context)
    }
}

public struct Fail: NodeType {
    public static let name = "fail"
    public static let version = 1
    public static let summary = "Always fails with 'message'."
    public static let inputs = [PortSpec("after", .text, optional: true, doc: "runs after this")]
    public static let outputs = [PortSpec("out", .text, doc: "never written")]
    public struct Params: NodeParams {
        @Param(doc: "the error") var message = "planned failure"
        public init() {}
    }
    public init() {}
    public func run(_ context: NodeContext, _ params: Params) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        _ = try context.output("out")  // leave partial output behind, which must not be cached
        throw NodeError(params.message)
    }
}

/// Writes a float32 zarr array chunk by chunk; `NIC_TOY_DELAY_MS` slows it down (not part of the key)
/// so a test can kill the process mid-write.
public struct SlowTensor: NodeType {
    public static let name = "slow_tensor"
    public static let version = 1
    public static let summary = "Writes a rows × 64 float32 array, value = row * 64 + column, one chunk of 'chunk_rows' at a time."
    public static let outputs = [PortSpec("tensor", .tensor, doc: "zarr array 'values'")]
    public struct Params: NodeParams {
        @Param(doc: "number of rows", .atLeast(1)) var rows: Int
        @Param(doc: "rows per chunk", .atLeast(1)) var chunkRows = 16
        public init() {}
    }
    public init() {}
    public func run(_ context: NodeContext, _ params: Params) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        let rows = params.rows, chunkRows = params.chunkRows, columns = 64
        let delay = Double(ProcessInfo.processInfo.environment["NIC_TOY_DELAY_MS"] ?? "0") ?? 0
        let writer = try ZarrArrayWriter(at: try context.output("tensor").appendingPathComponent("values"),
                                         shape: [rows, columns], chunkShape: [chunkRows, columns], dataType: .float32)
        for chunk in 0..<writer.chunkCounts[0] {
            try context.checkCancellation()
            var values = [Float](repeating: 0, count: chunkRows * columns)
            for r in 0..<chunkRows where chunk * chunkRows + r < rows {
                for c in 0..<columns { values[r * columns + c] = Float((chunk * chunkRows + r) * columns + c) }
            }
            try writer.writeChunk(at: [chunk, 0], values: values)
            context.progress(chunk + 1, of: writer.chunkCounts[0], unit: "chunks")
            if delay > 0 { try context.sleep(seconds: delay / 1000) }
        }
    }
}

/// Splits into items (one per word of `words`, each upper-cased with the input text as a suffix),
/// then gathers them into one text: the engine's item fan-out without pathology.
public struct Split: NodeType {
    public static let name = "split"
    public static let version = 1
    public static let summary = "One cached item per word of the 'words' text, gathered with '+'."
    public static let splitsIntoItems = true
    public static let inputs = [PortSpec("words", .text, doc: "the items, separated by spaces (not in the items' keys)"),
                                PortSpec("suffix", .text, doc: "appended to every item")]
    public static let outputs = [PortSpec("out", .text, doc: "text.txt")]
    public struct Params: NodeParams {
        @Param(doc: "a word that fails its item") var failing = ""
        @Param(doc: "seconds each item takes", .within(0, 600)) var itemSeconds = 0.0
        public init() {}
    }
    public init() {}
    public func run(_ context: NodeContext, _ params: Params) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        let suffix = try readText(try context.input("suffix"))
        let words = try readText(try context.input("words")).split(separator: " ").map(String.init)
        let items = try context.cachedItems(words, excludingInputs: ["words"]) { index, folder in
            let word = words[index]
            if word == params.failing { throw NodeError("item '\(word)' cannot be computed") }
            ExecutionLog.shared.begin("\(context.nodeName)[\(word)]")
            ExecutionLog.shared.end()
            try context.sleep(seconds: params.itemSeconds)
            trace("\(context.nodeName)[\(word)]")
            try Data((word.uppercased() + suffix).utf8).write(to: folder.appendingPathComponent("text.txt"))
        }
        trace(context.nodeName)  // the gather: reached only where the node runs whole
        try writeText(try items.map { try readText($0.folder) }.joined(separator: "+"), context)
    }
}
