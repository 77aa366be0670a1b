import Flow
import NICNodes
import Foundation
import NICBasics
import TensorStore

/// Node types for tests only: they make execution, timing, failure and crashes observable.
public enum ToyNodes {
    public static let all: [any NodeType.Type] = [Emit.self, Concat.self, Sleep.self, Rendezvous.self, Fail.self, SlowTensor.self]
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
    public static let params = [
        ParamSpec("value", .string, doc: "the text"),
        ParamSpec("repeat", .int, default: .int(1), doc: "how many times"),
        ParamSpec("scale", .float, default: .float(1), doc: "unused number, for key tests"),
        ParamSpec("tags", .list(.string), default: .list([]), doc: "unused list, for key tests"),
        ParamSpec("options", .any, default: .null, doc: "unused mapping, for key tests"),
        ParamSpec("recipe", .reference, default: .null, doc: "a YAML definition whose 'suffix' is appended"),
    ]
    public init() {}
    public func run(_ context: NodeContext) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        let suffix = context.value("recipe").mapValue?["suffix"]?.display ?? ""
        try writeText(String(repeating: context.string("value"), count: context.int("repeat")) + suffix, context)
    }
}

public struct Concat: NodeType {
    public static let name = "concat"
    public static let version = 1
    public static let summary = "Joins two texts with a separator."
    public static let inputs = [PortSpec("a", .text, doc: "first"), PortSpec("b", .text, optional: true, doc: "second")]
    public static let outputs = [PortSpec("out", .text, doc: "text.txt")]
    public static let params = [ParamSpec("separator", .string, default: .string("+"), doc: "between a and b")]
    public init() {}
    public func run(_ context: NodeContext) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        let a = try readText(try context.input("a"))
        let b = context.hasInput("b") ? try readText(try context.input("b")) : ""
        try writeText(a + context.string("separator") + b, context)
    }
}

public struct Sleep: NodeType {
    public static let name = "sleep"
    public static let version = 1
    public static let summary = "Sleeps (cancellably), then writes its label."
    public static let inputs = [PortSpec("after", .text, optional: true, doc: "runs after this")]
    public static let outputs = [PortSpec("out", .text, doc: "text.txt")]
    public static let params = [ParamSpec("seconds", .float, doc: "how long"), ParamSpec("label", .string, default: .string("slept"), doc: "written text")]
    public init() {}
    public func run(_ context: NodeContext) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        try context.sleep(seconds: context.double("seconds"))
        try writeText(context.string("label"), context)
    }
}

/// Two rendezvous nodes each wait for the other to have started: they can only both succeed if the
/// scheduler runs them at the same time. Proves overlap without timing assertions.
public struct Rendezvous: NodeType {
    public static let name = "rendezvous"
    public static let version = 1
    public static let summary = "Signals that it started and waits (up to 'timeout' s) for 'partner' to start."
    public static let outputs = [PortSpec("out", .text, doc: "text.txt")]
    public static let params = [
        ParamSpec("partner", .string, doc: "the other node's name"),
        ParamSpec("timeout", .float, default: .float(20), doc: "seconds to wait"),
    ]
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
    public func run(_ context: NodeContext) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        Self.semaphore(context.nodeName).signal()
        let partner = Self.semaphore(context.string("partner"))
        guard partner.wait(timeout: .now() + context.double("timeout")) == .success else {
            throw NodeError("partner '\(context.string("partner"))' never started while I was running")
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
    public static let params = [ParamSpec("message", .string, default: .string("planned failure"), doc: "the error")]
    public init() {}
    public func run(_ context: NodeContext) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        _ = try context.output("out")  // leave partial output behind, which must not be cached
        throw NodeError(context.string("message"))
    }
}

/// Writes a float32 zarr array chunk by chunk; `NIC_TOY_DELAY_MS` slows it down (not part of the key)
/// so a test can kill the process mid-write.
public struct SlowTensor: NodeType {
    public static let name = "slow_tensor"
    public static let version = 1
    public static let summary = "Writes a rows × 64 float32 array, value = row * 64 + column, one chunk of 'chunk_rows' at a time."
    public static let outputs = [PortSpec("tensor", .tensor, doc: "zarr array 'values'")]
    public static let params = [
        ParamSpec("rows", .int, doc: "number of rows"),
        ParamSpec("chunk_rows", .int, default: .int(16), doc: "rows per chunk"),
    ]
    public init() {}
    public func run(_ context: NodeContext) throws {
        ExecutionLog.shared.begin(context.nodeName)
        defer { ExecutionLog.shared.end() }
        let rows = context.int("rows"), chunkRows = context.int("chunk_rows"), columns = 64
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
