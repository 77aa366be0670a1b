import ArgumentParser
import Flow
import NICBasics
import NICNodes
import Foundation

/// The node types the `nic` executable knows; test tools add their own before calling `main`.
public enum NICEnvironment {
    nonisolated(unsafe) public static var registry: NodeRegistry = PathologyNodes.registry  // set in main, before any command runs
}

public struct NIC: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "nic",
        abstract: "Neural Image Compression pipelines: YAML in, cached and reproducible results out.",
        subcommands: [RunCommand.self, DoctorCommand.self, BenchCommand.self, PlanCommand.self, ValidateCommand.self, ExpandCommand.self, NodesCommand.self, OutputCommand.self, CacheCommand.self, RunsCommand.self, ReportCommand.self, MetricsCommand.self, SynthCommand.self, AugmentCommand.self, ExportCommand.self, WorkerCommand.self]
    )

    public init() {}

    /// As ParsableCommand's, but errors from Foundation (a full disk, a read-only folder) are printed
    /// as plain sentences instead of `NSCocoaErrorDomain Code=640`.
    public static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as NSError where error.domain == NSCocoaErrorDomain || error.domain == NSPOSIXErrorDomain {
            standardError("Error: \(FlowError.plainReason(error))")
            Foundation.exit(ExitStatus.failed)
        } catch {
            exit(withError: error)
        }
    }
}

struct CacheOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Cache folder (default: $NIC_CACHE, else .nic/cache in the current folder).", valueName: "dir"))
    var cache: String?

    /// Commands that only look pass `.existing` (a mistyped path is an error, not a new empty cache)
    /// or `.existingOrNone` (nothing is created; a missing cache reads as empty).
    func open(_ opening: Cache.Opening = .create) throws -> Cache {
        let path = cache ?? ProcessInfo.processInfo.environment["NIC_CACHE"] ?? ".nic/cache"
        return try Cache(root: URL(fileURLWithPath: path), opening: opening)
    }
}

/// Exit statuses: 1 a node failed or verification found damage, 2 the spec is wrong, 130 interrupted.
enum ExitStatus {
    static let failed: Int32 = 1
    static let badSpec: Int32 = 2
    static let interrupted: Int32 = 130
}

func standardError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Reads and checks a pipeline, printing every spec error on stderr.
func loadGraph(_ file: String) throws -> PipelineGraph {
    do {
        let spec = try SpecParser.parse(file: URL(fileURLWithPath: file), displayPath: file)
        return try PipelineGraph.build(spec, registry: NICEnvironment.registry)
    } catch let errors as SpecErrors {
        standardError(errors.description)
        standardError("\(file): \(errors.errors.count) error\(errors.errors.count == 1 ? "" : "s")")
        throw ExitCode(ExitStatus.badSpec)
    }
}

func printPlan(_ plan: Plan) {
    let nameWidth = max(4, plan.nodes.map(\.name.count).max() ?? 4)
    let typeWidth = max(4, plan.nodes.map(\.typeName.count).max() ?? 4)
    for node in plan.nodes {
        let status = node.status == .cached ? "cached  " : "will run"
        let reason = node.status == .cached ? String(node.key.prefix(12)) : node.reasons.joined(separator: "; ")
        print("\(node.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0))  \(node.typeName.padding(toLength: typeWidth, withPad: " ", startingAt: 0))  \(status)  \(reason)")
    }
    let toRun = plan.toRun.count
    print("\(plan.nodes.count) nodes: \(plan.nodes.count - toRun) cached, \(toRun) to run")
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validate", abstract: "Check a pipeline file without running anything.")

    @Argument(help: "The pipeline YAML file.") var file: String

    func run() throws {
        let graph = try loadGraph(file)
        print("\(file): ok (pipeline '\(graph.spec.name)', \(graph.nodes.count) nodes)")
        printTemplates(graph.spec)
    }
}

/// Each matrix/foreach node and its instances, after `validate` and `plan`.
func printTemplates(_ spec: PipelineSpec) {
    if !spec.included.isEmpty { print("includes: \(spec.included.joined(separator: ", "))") }
    for template in spec.templates {
        print("\(template.name) (\(template.location)): \(template.instances.count) instance\(template.instances.count == 1 ? "" : "s"): \(template.instances.joined(separator: ", "))")
    }
}

struct ExpandCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "expand", abstract: "Print a pipeline with includes, defaults, matrix and foreach expanded into plain nodes.")

    @Argument(help: "The pipeline YAML file.") var file: String

    func run() throws {
        let graph = try loadGraph(file)
        print(graph.spec.expandedYAML, terminator: "")
    }
}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plan", abstract: "Show which nodes are cached and which will run, and why.")

    @Argument(help: "The pipeline YAML file.") var file: String
    @OptionGroup var cacheOption: CacheOption
    @Option(name: .long, parsing: .upToNextOption, help: "Nodes to rerun even if cached.") var force: [String] = []
    @Option(name: .long, help: "slurm: also print the job script each node to run would be submitted with.") var executor: ExecutorChoice = .local
    @Option(name: .long, help: ArgumentHelp("Executor settings (default: nic.executor.yaml beside the pipeline, else in the working folder).", valueName: "file"))
    var executorConfig: String?

    func run() throws {
        let graph = try loadGraph(file)
        let config = try loadExecutorConfig(executorConfig, pipeline: file, needed: executor == .slurm)
        let cache = try cacheOption.open(.existingOrNone)
        let plan = try Planner.plan(graph, cache: cache, force: try checkedForce(force, graph: graph))
        printPlan(plan)
        printTemplates(graph.spec)
        guard executor == .slurm else { return }
        let runs = URL(fileURLWithPath: ProcessInfo.processInfo.environment["NIC_RUNS"] ?? "runs").appendingPathComponent("<run>")
        let runner = SlurmRunner(config: config.slurm, runFolder: runs, nic: currentExecutable(), pipeline: URL(fileURLWithPath: file), cache: cache.root)
        for node in plan.toRun {
            let splits = graph.node(named: node.name)?.type.splitsIntoItems == true
            print("\n# node '\(node.name)': sbatch --parsable \(runs.path)/slurm/\(SlurmRunner.safeName(node.name)).sbatch"
                  + (splits ? " (after its missing items as sbatch --array jobs of at most \(config.slurm.maxArraySize) tasks)" : ""))
            print(runner.script(node: node.name, type: node.typeName).text, terminator: "")
        }
    }
}

/// A template's name forces every instance of it.
func checkedForce(_ names: [String], graph: PipelineGraph) throws -> Set<String> {
    var forced = Set<String>()
    for name in names {
        if let template = graph.spec.templates.first(where: { $0.name == name }) { forced.formUnion(template.instances); continue }
        guard graph.node(named: name) != nil else {
            throw ValidationError("--force: no node '\(name)' in pipeline '\(graph.spec.name)'")
        }
        forced.insert(name)
    }
    return forced
}
