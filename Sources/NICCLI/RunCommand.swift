import ArgumentParser
import Dispatch
import Flow
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a pipeline; only nodes whose inputs or params changed are computed.")

    @Argument(help: "The pipeline YAML file.") var file: String
    @OptionGroup var cacheOption: CacheOption
    @Option(name: .shortAndLong, help: "Nodes to run at the same time.") var jobs: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)
    @Flag(name: .long, help: "Only show the plan.") var dryRun = false
    @Option(name: .long, parsing: .upToNextOption, help: "Nodes to rerun even if cached.") var force: [String] = []
    @Flag(name: .shortAndLong, help: "Print only failures and the summary.") var quiet = false

    func validate() throws {
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
    }

    func run() throws {
        let graph = try loadGraph(file)
        let cache = try cacheOption.open()
        let plan = try Planner.plan(graph, cache: cache, force: try checkedForce(force, graph: graph))
        if dryRun {
            printPlan(plan)
            return
        }
        let printer = RunPrinter(quiet: quiet, names: plan.nodes.map(\.name))
        if !quiet {
            print("pipeline '\(graph.spec.name)': \(plan.nodes.count) nodes, \(plan.nodes.count - plan.toRun.count) cached, \(plan.toRun.count) to run (jobs \(jobs), cache \(cache.root.path))")
        }
        let executor = Executor(plan: plan, cache: cache, jobs: jobs, observer: printer)
        let signals = SignalTrap { executor.cancel() }
        let summary = executor.run()
        signals.release()
        printer.printSummary(summary)
        if summary.interrupted { throw ExitCode(ExitStatus.interrupted) }
        if !summary.succeeded { throw ExitCode(ExitStatus.failed) }
    }
}

/// SIGINT/SIGTERM: the first asks the run to stop cleanly (running nodes stop at their next check,
/// finished outputs stay in the cache); a second one exits at once. Temporary folders left by a hard
/// exit are removed by the next run.
final class SignalTrap {
    private var sources: [DispatchSourceSignal] = []
    private var count = 0
    private let lock = NSLock()

    init(onFirst: @escaping () -> Void) {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                self.lock.lock()
                self.count += 1
                let n = self.count
                self.lock.unlock()
                if n == 1 {
                    standardError("nic: \(sig == SIGINT ? "interrupt" : "terminate") received; stopping running nodes (again to exit at once)")
                    onFirst()
                } else {
                    _exit(ExitStatus.interrupted)
                }
            }
            source.resume()
            sources.append(source)
        }
    }

    func release() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

/// Line-oriented progress for now: one line per event, with periodic progress lines.
final class RunPrinter: RunObserver, @unchecked Sendable {
    private let quiet: Bool
    private let width: Int
    private let lock = NSLock()
    private var lastProgress: [String: Date] = [:]

    init(quiet: Bool, names: [String]) {
        self.quiet = quiet
        self.width = max(4, names.map(\.count).max() ?? 4)
    }

    private func line(_ status: String, _ name: String, _ detail: String = "") {
        lock.lock()
        defer { lock.unlock() }
        let text = "  \(status.padding(toLength: 8, withPad: " ", startingAt: 0)) \(name.padding(toLength: width, withPad: " ", startingAt: 0))  \(detail)"
        print(text.trimmingCharacters(in: .whitespaces).isEmpty ? "" : "  " + text.dropFirst(2).description)
        fflush(stdout)
    }

    func nodeCached(_ name: String, entry: URL) { if !quiet { line("cached", name, entry.path) } }
    func nodeStarted(_ name: String) { if !quiet { line("start", name) } }
    func nodeProgress(_ name: String, _ progress: NodeProgress) {
        guard !quiet else { return }
        lock.lock()
        let now = Date()
        let due = lastProgress[name].map { now.timeIntervalSince($0) >= 5 } ?? true
        if due { lastProgress[name] = now }
        lock.unlock()
        guard due else { return }
        let total = progress.total.map { " / \($0)" } ?? ""
        line("...", name, "\(progress.completed)\(total) \(progress.unit)\(progress.message.map { " – \($0)" } ?? "")")
    }
    func nodeFinished(_ name: String, entry: URL, seconds: Double) {
        if !quiet { line("done", name, String(format: "%.2fs  %@", seconds, entry.path)) }
    }
    func nodeFailed(_ name: String, message: String, seconds: Double) { line("FAILED", name, message) }
    func nodeSkipped(_ name: String, reason: String) { if !quiet { line("skipped", name, reason) } }

    func printSummary(_ summary: RunSummary) {
        let failures = summary.failures
        if !failures.isEmpty {
            standardError("\(failures.count) node\(failures.count == 1 ? "" : "s") failed:")
            for failure in failures { standardError("  \(failure.node): \(failure.message)") }
        }
        let skipped = summary.skipped
        print(String(format: "%@: %d executed, %d cached, %d failed, %d skipped in %.2fs",
                     summary.interrupted ? "interrupted" : (summary.succeeded ? "done" : "failed"),
                     summary.executed.count, summary.cached.count, failures.count, skipped.count, summary.wallSeconds))
    }
}
