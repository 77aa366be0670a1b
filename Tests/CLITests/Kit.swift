import Foundation
import XCTest

/// Runs the `nic-testkit` executable (nic + toy node types) in a scratch project folder.
final class Kit {
    let root: URL
    var cacheDir: URL { root.appendingPathComponent(".nic/cache") }

    static var binary: URL {
        // To measure another build (say main's, for a before/after table).
        if let path = ProcessInfo.processInfo.environment["NIC_TESTKIT_BINARY"] { return URL(fileURLWithPath: path) }
        // The test bundle sits next to the package's executables in the build folder.
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent("nic-testkit")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return URL(fileURLWithPath: ".build/debug/nic-testkit")
    }

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("nic-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("nodes"), withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func write(_ relative: String, _ text: String) throws {
        let url = root.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    struct Running {
        let process: Process
        let stdout: URL
        let stderr: URL
        func wait() -> Result {
            process.waitUntilExit()
            return Result(status: process.terminationStatus,
                          reason: process.terminationReason,
                          stdout: (try? String(contentsOf: stdout, encoding: .utf8)) ?? "",
                          stderr: (try? String(contentsOf: stderr, encoding: .utf8)) ?? "")
        }
    }

    struct Result {
        let status: Int32
        let reason: Process.TerminationReason
        let stdout: String
        let stderr: String
    }

    /// `wrapper`: a command to run nic under (say `timeout 60 prlimit --as=…`), so that a runaway
    /// case fails alone instead of taking the machine's memory or hanging the suite.
    func start(_ arguments: [String], environment: [String: String] = [:], wrapper: [String] = []) throws -> Running {
        let process = Process()
        if let tool = wrapper.first {
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = wrapper.dropFirst() + [Kit.binary.path] + arguments
        } else {
            process.executableURL = Kit.binary
            process.arguments = arguments
        }
        process.currentDirectoryURL = root
        var env = ProcessInfo.processInfo.environment
        env["NIC_CACHE"] = cacheDir.path
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let id = UUID().uuidString.prefix(8)
        let out = root.appendingPathComponent(".out-\(id)"), err = root.appendingPathComponent(".err-\(id)")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        return Running(process: process, stdout: out, stderr: err)
    }

    @discardableResult
    func run(_ arguments: [String], environment: [String: String] = [:], wrapper: [String] = []) throws -> Result {
        try start(arguments, environment: environment, wrapper: wrapper).wait()
    }

    /// Polls until `condition` holds (fails the test after `timeout` seconds).
    func waitFor(_ what: String, timeout: Double = 60, _ condition: () -> Bool) {
        let end = Date().addingTimeInterval(timeout)
        while !condition() {
            if Date() > end { XCTFail("timed out waiting for \(what)"); return }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    func files(under relative: String) -> [String] {
        let url = root.appendingPathComponent(relative)
        guard let e = FileManager.default.enumerator(atPath: url.path) else { return [] }
        return e.compactMap { $0 as? String }
    }
}
