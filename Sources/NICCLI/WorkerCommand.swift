import ArgumentParser
import Flow
import Foundation
import Logging

/// The body of a Slurm job (hidden): runs one node of a pipeline against the shared cache, then
/// writes its exit record for the driver. Exit status 1 when the node failed.
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run one node of a pipeline (the body of a cluster job).",
                                                    shouldDisplay: false)

    @Argument(help: "The pipeline YAML file.") var file: String
    @Option(name: .long, help: "The node to run.") var node: String
    @OptionGroup var cacheOption: CacheOption
    @Option(name: .long, help: ArgumentHelp("Where to write the exit record (JSON).", valueName: "file")) var exitRecord: String

    func run() throws {
        let exitURL = URL(fileURLWithPath: exitRecord)
        let started = Date()
        let record: WorkerExitRecord
        do {
            let graph = try loadGraph(file)
            let cache = try cacheOption.open(.existing)
            let plan = try Planner.plan(graph, cache: cache)
            record = NodeWorker.run(plan: plan, node: node, cache: cache, logger: Logger(label: "nic.worker"))
        } catch {
            record = .failed(node: node, message: FlowError.plainReason(error), started: started)
        }
        try record.write(to: exitURL)
        print("nic worker: node '\(node)' \(record.status)\(record.message.map { ": \($0)" } ?? "") (\(String(format: "%.1f", record.ended.timeIntervalSince(record.started))) s)")
        if record.status == "failed" { throw ExitCode(ExitStatus.failed) }
    }
}
