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
    @Option(name: .long, help: ArgumentHelp("Where to write the exit record (JSON); %i stands for the item.", valueName: "file")) var exitRecord: String
    @Option(name: .long, help: ArgumentHelp("An array task: compute the item on line $SLURM_ARRAY_TASK_ID of this file (item indices, one a line), not the node.", valueName: "file"))
    var itemsFile: String?

    func run() throws {
        let started = Date()
        SlurmRunner.installLiveness()
        var exitURL = URL(fileURLWithPath: exitRecord)
        let record: WorkerExitRecord
        do {
            var item: Int?
            if let itemsFile {
                let task = ProcessInfo.processInfo.environment["SLURM_ARRAY_TASK_ID"].flatMap { Int($0) }
                let lines = try String(contentsOfFile: itemsFile, encoding: .utf8).split(separator: "\n")
                guard let task, lines.indices.contains(task), let index = Int(lines[task]) else {
                    throw ValidationError("--items-file needs SLURM_ARRAY_TASK_ID (an array task) naming one of its \(lines.count) lines")
                }
                item = index
                exitURL = URL(fileURLWithPath: exitRecord.replacingOccurrences(of: "%i", with: "\(index)"))
            }
            let graph = try loadGraph(file)
            let cache = try cacheOption.open(.existing)
            let plan = try Planner.plan(graph, cache: cache)
            record = NodeWorker.run(plan: plan, node: node, item: item, cache: cache, logger: Logger(label: "nic.worker"))
        } catch {
            record = .failed(node: node, message: FlowError.plainReason(error), started: started)
        }
        try record.write(to: exitURL)
        print("nic worker: node '\(node)'\(itemsFile == nil ? "" : " item") \(record.status)\(record.message.map { ": \($0)" } ?? "") (\(String(format: "%.1f", record.ended.timeIntervalSince(record.started))) s)")
        if record.status == "failed" { throw ExitCode(ExitStatus.failed) }
    }
}
