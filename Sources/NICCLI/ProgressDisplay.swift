import Flow
import Foundation
import Logging
import NICBasics

/// How a run shows itself. On a terminal: permanent lines for events above a live region with one
/// line per running node (bar, rate, ETA, epoch, losses), redrawn in place. Elsewhere (CI, logs):
/// plain lines only, with a progress line per node at most every `interval` seconds.
final class ProgressDisplay: RunObserver, Sendable {
    enum Verbosity: Int, Comparable {
        case quiet, normal, verbose
        static func < (a: Verbosity, b: Verbosity) -> Bool { a.rawValue < b.rawValue }
    }

    struct Running {
        var started: Date
        var progress: NodeProgress?
        /// (time, completed) samples for a rate that follows the recent pace.
        var samples: [(Date, Int)] = []
    }

    let verbosity: Verbosity
    let live: Bool
    let interval: TimeInterval
    private let width: Int
    /// Workers report, the timer redraws and events print concurrently; the screen is one.
    private let screen = Locked(Screen())
    private let timer = Locked<DispatchSourceTimer?>(nil)

    private struct Screen {
        var running: [String: Running] = [:]
        var order: [String] = []
        var drawnLines = 0
        var lastPlain: [String: Date] = [:]
    }

    init(verbosity: Verbosity, names: [String], live: Bool, interval: TimeInterval = 10) {
        self.verbosity = verbosity
        self.live = live
        self.interval = interval
        self.width = max(4, min(24, names.map(\.count).max() ?? 4))
        if live {
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now() + 0.2, repeating: 0.2)
            timer.setEventHandler { [weak self] in self?.redraw() }
            timer.resume()
            self.timer.withLock { $0 = timer }
        }
    }

    /// A terminal that understands cursor movement, unless NIC_PLAIN is set.
    static var stdoutIsLiveTerminal: Bool {
        isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
            && ProcessInfo.processInfo.environment["NIC_PLAIN"] == nil
    }

    func stop() {
        timer.withLock { timer in
            timer?.cancel()
            timer = nil
        }
        screen.withLock { clear(&$0) }
    }

    // MARK: Output

    private func terminalWidth() -> Int {
        var size = winsize()
        if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 100
    }

    private func clear(_ screen: inout Screen) {
        guard live, screen.drawnLines > 0 else { return }
        FileHandle.standardOutput.write(Data("\u{1B}[\(screen.drawnLines)F\u{1B}[J".utf8))
        screen.drawnLines = 0
    }

    /// Prints a permanent line (above the live region on a terminal).
    func emit(_ text: String, toStandardError: Bool = false) {
        screen.withLock { screen in
            clear(&screen)
            if toStandardError {
                FileHandle.standardError.write(Data((text + "\n").utf8))
            } else {
                FileHandle.standardOutput.write(Data((text + "\n").utf8))
            }
            draw(&screen)
        }
    }

    private func redraw() {
        screen.withLock { screen in
            clear(&screen)
            draw(&screen)
        }
    }

    private func draw(_ screen: inout Screen) {
        guard live, verbosity > .quiet else { return }
        let columns = terminalWidth()
        var text = ""
        var lines = 0
        for name in screen.order {
            guard let state = screen.running[name] else { continue }
            var line = "  \u{25B8} " + pad(name) + "  " + Self.describe(state, now: Date(), bar: true)
            if line.count > columns - 1 { line = String(line.prefix(columns - 2)) + "…" }
            text += line + "\n"
            lines += 1
        }
        FileHandle.standardOutput.write(Data(text.utf8))
        screen.drawnLines = lines
    }

    private func pad(_ name: String) -> String {
        name.count >= width ? name : name.padding(toLength: width, withPad: " ", startingAt: 0)
    }

    private func line(_ status: String, _ name: String, _ detail: String = "", toStandardError: Bool = false) {
        let text = "  " + status.padding(toLength: 8, withPad: " ", startingAt: 0) + " " + pad(name) + (detail.isEmpty ? "" : "  " + detail)
        emit(text, toStandardError: toStandardError)
    }

    /// "[█████░░░]  52%  1234/2400 patches  310/s  ETA 0:04  epoch 3/8  loss 0.412"
    static func describe(_ state: Running, now: Date, bar: Bool) -> String {
        let elapsed = now.timeIntervalSince(state.started)
        guard let progress = state.progress else { return "running " + duration(elapsed) }
        var parts: [String] = []
        let rate = Self.rate(state.samples)
        if let total = progress.total, total > 0 {
            let fraction = min(1, Double(progress.completed) / Double(total))
            if bar {
                let cells = 20, filled = Int((fraction * Double(cells)).rounded(.down))
                parts.append("[" + String(repeating: "█", count: filled) + String(repeating: "░", count: cells - filled) + "]")
            }
            parts.append(String(format: "%3.0f%%", fraction * 100))
            parts.append("\(progress.completed)/\(total) \(progress.unit)")
            if let rate, rate > 0 {
                parts.append(formatRate(rate, progress.unit))
                parts.append("ETA " + duration(Double(total - progress.completed) / rate))
            }
        } else {
            parts.append("\(progress.completed) \(progress.unit)")
            if let rate, rate > 0 { parts.append(formatRate(rate, progress.unit)) }
        }
        if let stage = progress.stage { parts.append(stage) }
        for key in progress.metrics.keys.sorted() { parts.append("\(key) \(formatNumber(progress.metrics[key]!))") }
        if let message = progress.message { parts.append(message) }
        parts.append(duration(elapsed))
        return parts.joined(separator: "  ")
    }

    static func rate(_ samples: [(Date, Int)]) -> Double? {
        guard let first = samples.first, let last = samples.last, last.0 > first.0 else { return nil }
        return Double(last.1 - first.1) / last.0.timeIntervalSince(first.0)
    }

    static func formatRate(_ rate: Double, _ unit: String) -> String {
        rate >= 1 ? String(format: "%.0f %@/s", rate, unit) : String(format: "%.1f s/%@", 1 / rate, singular(unit))
    }

    /// "patches" → "patch", "steps" → "step", "slides" → "slide".
    static func singular(_ unit: String) -> String {
        for suffix in ["ches", "shes", "sses", "xes"] where unit.hasSuffix(suffix) { return String(unit.dropLast(2)) }
        return unit.hasSuffix("s") ? String(unit.dropLast()) : unit
    }

    static func formatNumber(_ x: Double) -> String {
        abs(x) >= 1000 || (abs(x) < 0.001 && x != 0) ? String(format: "%.3g", x) : String(format: "%.4f", x)
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return String(format: "%.1fs", seconds) }
        if s < 3600 { return String(format: "%d:%02d", s / 60, s % 60) }
        return String(format: "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60)
    }

    // MARK: RunObserver

    func nodeCached(_ name: String, entry: URL) {
        guard verbosity > .quiet else { return }
        line("cached", name, verbosity == .verbose ? entry.path : "")
    }

    /// The last job line printed per node: a job's record is updated more often than its state changes.
    private let jobLines = Locked<[String: String]>([:])

    func nodeStarted(_ name: String) {
        screen.withLock { screen in
            screen.running[name] = Running(started: Date())
            screen.order.append(name)
        }
        if verbosity > .quiet && !live { line("start", name) }
    }

    /// A cluster job's state changes (submitted, running, ended): one line each, the log path first.
    func nodeJob(_ name: String, _ job: RemoteJob) {
        guard verbosity > .quiet else { return }
        let shown = "\(job.id) \(job.state)"
        guard jobLines.withLock({ lines in defer { lines[name] = shown }; return lines[name] != shown }) else { return }
        let adopted = job.adopted == true ? " (submitted by an earlier run, adopted)" : ""
        line("job", name, "Slurm job \(job.id) \(job.state.lowercased())\(adopted)\(job.state == "PENDING" ? " (log \(job.log))" : "")")
    }

    /// "items    grids  3 queued · 2 running · 5/10 done": the runner publishes only changes.
    func nodeJobCounts(_ name: String, _ counts: JobCounts) {
        guard verbosity > .quiet else { return }
        line("items", name, counts.description)
    }

    func nodeProgress(_ name: String, _ progress: NodeProgress) {
        let plain: String? = screen.withLock { screen in
            guard var state = screen.running[name] else { return nil }
            let now = Date()
            state.progress = progress
            state.samples.append((now, progress.completed))
            // Keep ~30 s of samples so the rate and ETA follow the current pace.
            while state.samples.count > 2, now.timeIntervalSince(state.samples[0].0) > 30 { state.samples.removeFirst() }
            screen.running[name] = state
            guard !live && verbosity > .quiet else { return nil }
            guard screen.lastPlain[name].map({ now.timeIntervalSince($0) >= interval }) ?? true else { return nil }
            screen.lastPlain[name] = now
            return Self.describe(state, now: now, bar: false)
        }
        if let plain { line("...", name, plain) }
    }

    private func finished(_ name: String) {
        screen.withLock { screen in
            screen.running[name] = nil
            screen.order.removeAll { $0 == name }
            screen.lastPlain[name] = nil
        }
    }

    func nodeFinished(_ name: String, entry: URL, seconds: Double) {
        finished(name)
        guard verbosity > .quiet else { return }
        line("done", name, Self.duration(seconds) + (verbosity == .verbose ? "  " + entry.path : ""))
    }

    func nodeFailed(_ name: String, message: String, seconds: Double) {
        finished(name)
        line("FAILED", name, message, toStandardError: true)
    }

    func nodeSkipped(_ name: String, reason: String) {
        finished(name)
        guard verbosity > .quiet else { return }
        line("skipped", name, reason)
    }

    func printSummary(_ summary: RunSummary) {
        stop()
        let failures = summary.failures
        if !failures.isEmpty {
            emit("\(failures.count) node\(failures.count == 1 ? "" : "s") failed:", toStandardError: true)
            for failure in failures { emit("  \(failure.node): \(failure.message)", toStandardError: true) }
        }
        emit(String(format: "%@: %d executed, %d cached, %d failed, %d skipped in %.2fs",
                    summary.interrupted ? "interrupted" : (summary.succeeded ? "done" : "failed"),
                    summary.executed.count, summary.cached.count, failures.count, summary.skipped.count, summary.wallSeconds))
    }
}

/// swift-log handler that prints through the display, so log lines never tear the live region.
struct DisplayLogHandler: LogHandler {
    let label: String
    let display: () -> ProgressDisplay?
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let merged = metadata.merging(explicit ?? [:]) { $1 }
        let node = merged["node"].map { "[\($0)] " } ?? ""
        let rest = merged.filter { $0.key != "node" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let text = "\(level.rawValue.uppercased()) \(node)\(message)\(rest.isEmpty ? "" : " " + rest)"
        if let display = display() { display.emit(text, toStandardError: true) }
        else { FileHandle.standardError.write(Data((text + "\n").utf8)) }
    }
}
