import ArgumentParser
import Flow
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Write a self-contained HTML report of a run (default: the latest).")

    @Argument(help: "A run folder (runs/<time>-<pipeline>) or its name; default: the newest run.") var runName: String?
    @Option(name: .long, help: ArgumentHelp("Folder of run records (default: $NIC_RUNS, else runs/).", valueName: "dir"))
    var runs: String?

    func run() throws {
        let root = URL(fileURLWithPath: runs ?? ProcessInfo.processInfo.environment["NIC_RUNS"] ?? "runs")
        let folder: URL
        if let runName {
            let direct = URL(fileURLWithPath: runName)
            folder = FileManager.default.fileExists(atPath: direct.appendingPathComponent("run.json").path) ? direct : root.appendingPathComponent(runName)
        } else {
            guard let newest = RunRecord.list(in: root).first else { throw ValidationError("no run records in \(root.path)") }
            folder = newest.folder
        }
        let url = try HTMLReport(runFolder: folder).write()
        print(url.path)
    }
}
