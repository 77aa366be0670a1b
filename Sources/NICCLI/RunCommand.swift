import ArgumentParser
import Dispatch
import Flow
import Foundation
import Logging
import NICBasics

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a pipeline; only nodes whose inputs or params changed are computed.")

    @Argument(help: "The pipeline YAML file.") var file: String
    @OptionGroup var cacheOption: CacheOption
    @Option(name: .shortAndLong, help: "Nodes to run at the same time.") var jobs: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)
    @Flag(name: .long, help: "Only show the plan.") var dryRun = false
    @Option(name: .long, parsing: .upToNextOption, help: "Nodes to rerun even if cached.") var force: [String] = []
    @Flag(name: .shortAndLong, help: "Print only failures and the summary.") var quiet = false
    @Flag(name: .shortAndLong, help: "Also print cache paths and debug logs.") var verbose = false
    @Option(name: .long, help: ArgumentHelp("Folder for run records (default: $NIC_RUNS, else runs/ in the current folder).", valueName: "dir"))
    var runs: String?
    @Option(name: .long, help: "Seconds between progress lines when output is not a terminal.") var progressInterval: Double = 10
    @Option(name: .long, help: "Where nodes run: local (this process) or slurm (one sbatch job per node, on a shared cache).")
    var executor: ExecutorChoice = .local
    @Option(name: .long, help: ArgumentHelp("Executor settings (default: nic.executor.yaml beside the pipeline, else in the working folder).", valueName: "file"))
    var executorConfig: String?
    @Option(name: .long, help: "With --executor slurm: submit a failed job or array task again, up to this many times.") var retries: Int = 0

    func validate() throws {
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if quiet && verbose { throw ValidationError("--quiet and --verbose exclude each other") }
        if retries < 0 { throw ValidationError("--retries must be 0 or more") }
        if retries > 0 && executor != .slurm { throw ValidationError("--retries goes with --executor slurm (a local node that failed fails again)") }
    }

    func run() throws {
        let graph = try loadGraph(file)
        let config = try loadExecutorConfig(executorConfig, pipeline: file, needed: executor == .slurm)
        let slots = executor == .slurm ? config.slurm.maxJobs : jobs
        let cache = try cacheOption.open()
        let plan = try Planner.plan(graph, cache: cache, force: try checkedForce(force, graph: graph))
        if dryRun {
            printPlan(plan)
            printTemplates(graph.spec)
            return
        }
        let verbosity: ProgressDisplay.Verbosity = quiet ? .quiet : (verbose ? .verbose : .normal)
        let display = ProgressDisplay(verbosity: verbosity, names: plan.nodes.map(\.name),
                                      live: ProgressDisplay.stdoutIsLiveTerminal, interval: progressInterval)
        RunLogging.install(display: display, level: verbose ? .debug : (quiet ? .warning : .info))
        if !quiet {
            display.emit("pipeline '\(graph.spec.name)': \(plan.nodes.count) nodes, \(plan.nodes.count - plan.toRun.count) cached, \(plan.toRun.count) to run (\(executor == .slurm ? "Slurm jobs at once" : "jobs") \(slots), cache \(cache.root.path))")
        }
        if verbose {
            for node in plan.toRun { display.emit("  plan     \(node.name): \(node.reasons.joined(separator: "; ")) [key \(node.key.prefix(12))]") }
        }
        let runsRoot = URL(fileURLWithPath: runs ?? ProcessInfo.processInfo.environment["NIC_RUNS"] ?? "runs")
        let recorder = try RunRecorder(runsRoot: runsRoot, plan: plan, cache: cache, jobs: slots)
        let executor = Executor(plan: plan, cache: cache, jobs: slots, observer: ObserverGroup([display, recorder]))
        executor.logger = Logger(label: "nic.run")
        var slurm: SlurmRunner?
        if self.executor == .slurm {
            SlurmRunner.installLiveness()
            slurm = SlurmRunner(config: config.slurm, runFolder: recorder.folder, nic: currentExecutable(),
                                pipeline: URL(fileURLWithPath: file), cache: cache.root)
            slurm?.retries = retries
            slurm?.observer = ObserverGroup([display, recorder])
            executor.remote = slurm
            if !quiet { display.emit("executor: slurm (\(config.file ?? "default settings"); at most \(slots) jobs at once; job logs in \(recorder.folder.path)/slurm)") }
        }
        let signals = SignalTrap(onSecond: { slurm?.cancelAll(); recorder.markInterrupted() }) { executor.cancel(); slurm?.cancelAll() }
        let summary = executor.run()
        signals.release()
        recorder.finish(summary)
        display.printSummary(summary)
        if let slurm, !quiet { display.emit("slurm: \(slurm.usage)") }
        if !quiet { display.emit("run record: \(recorder.folder.path)") }
        do {
            let report = try HTMLReport(runFolder: recorder.folder).write()
            display.emit("report: \(report.path)")
        } catch {
            display.emit("report not written: \(FlowError.plainReason(error))", toStandardError: true)
        }
        RunLogging.detach()
        if summary.interrupted { throw ExitCode(ExitStatus.interrupted) }
        if !summary.succeeded { throw ExitCode(ExitStatus.failed) }
    }
}

enum ExecutorChoice: String, ExpressibleByArgument, CaseIterable {
    case local, slurm
}

/// The executor file, errors printed with their file:line like a pipeline's. Without `--executor-config`
/// and when no executor needs it, no file is read.
func loadExecutorConfig(_ explicit: String?, pipeline: String, needed: Bool) throws -> ExecutorConfig {
    guard needed || explicit != nil else { return ExecutorConfig() }
    do { return try ExecutorConfig.locate(explicit: explicit, pipeline: URL(fileURLWithPath: pipeline)) }
    catch let errors as SpecErrors {
        standardError(errors.description)
        throw ExitCode(ExitStatus.badSpec)
    }
}

/// This program's own path, for jobs that run it again on another machine (a shared file system).
func currentExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
}

/// SIGINT/SIGTERM: the first asks the run to stop cleanly (running nodes stop at their next check,
/// finished outputs stay in the cache); a second one exits at once. Temporary folders left by a hard
/// exit are removed by the next run.
final class SignalTrap {
    private var sources: [DispatchSourceSignal] = []
    private let received = Locked(0)

    init(onSecond: @escaping () -> Void = {}, onFirst: @escaping () -> Void) {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in
                guard let self else { return }
                if self.received.fetchAndIncrement() == 0 {
                    standardError("nic: \(sig == SIGINT ? "interrupt" : "terminate") received; stopping running nodes (again to exit at once)")
                    onFirst()
                } else {
                    onSecond()
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

/// swift-log goes through the live display while a run is on screen, straight to stderr otherwise.
enum RunLogging {
    private struct Route {
        var display: ProgressDisplay?
        var level: Logger.Level = .info
        var bootstrapped = false
    }

    /// Loggers are made and used on any thread, and swift-log may be bootstrapped only once.
    private static let route = Locked(Route())

    static func install(display: ProgressDisplay, level: Logger.Level) {
        route.withLock { route in
            route.display = display
            route.level = level
            guard !route.bootstrapped else { return }
            route.bootstrapped = true
            LoggingSystem.bootstrap { label in
                DisplayLogHandler(label: label, display: { RunLogging.route.withLock { $0.display } },
                                  logLevel: RunLogging.route.withLock { $0.level })
            }
        }
    }

    static func detach() {
        route.withLock { $0.display = nil }
    }
}
