import ArgumentParser
import Flow
import Foundation

struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runs", abstract: "List run records, newest first.")

    @Option(name: .long, help: ArgumentHelp("Folder of run records (default: $NIC_RUNS, else runs/).", valueName: "dir"))
    var runs: String?
    @Option(name: .shortAndLong, help: "Show at most this many.") var limit: Int = 20

    func run() throws {
        let root = URL(fileURLWithPath: runs ?? ProcessInfo.processInfo.environment["NIC_RUNS"] ?? "runs")
        let all = RunRecord.list(in: root)
        if all.isEmpty {
            print("no run records in \(root.path)")
            return
        }
        print("run                                   status       executed cached failed skipped  time")
        for (folder, record) in all.prefix(limit) {
            let c = record.counts
            let time = record.seconds.map { ProgressDisplay.duration($0) } ?? "-"
            print("\(folder.lastPathComponent.padding(toLength: 36, withPad: " ", startingAt: 0))  \(record.shownStatus.padding(toLength: 11, withPad: " ", startingAt: 0))  \(String(format: "%8d %6d %6d %7d", c.executed, c.cached, c.failed, c.skipped))  \(time)")
        }
        if all.count > limit { print("(\(all.count - limit) older; --limit to see more)") }
    }
}
