import Foundation
import Logging
import NICBasics

/// A failed or lost Slurm job, with what a user needs to look into it.
public struct SlurmJobError: Error, CustomStringConvertible {
    public var node: String
    public var job: String
    public var state: String
    public var log: String
    public var detail: String
    public var description: String {
        "Slurm job \(job) \(state) (log \(log))\(detail.isEmpty ? "" : ": \(detail)")"
    }
}

/// Runs a command and returns its standard output (standard error folded in on failure).
enum Command {
    struct Failed: Error, CustomStringConvertible {
        var command: String
        var status: Int32
        var output: String
        var description: String { "'\(command)' exited with status \(status): \(output.trimmingCharacters(in: .whitespacesAndNewlines))" }
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw FlowError.wrapping(error, "cannot start \(executable)") }
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: output, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw Failed(command: ([executable] + arguments).joined(separator: " "), status: process.terminationStatus,
                         output: text + String(decoding: errors, as: UTF8.self))
        }
        return text
    }
}

/// The job script of one node: `sbatch` directives from the executor config, then the same `nic`
/// binary as a worker on the same pipeline file and cache.
public struct SlurmJobScript: Equatable, Sendable {
    public var jobName: String
    public var node: String
    public var resources: SlurmResources
    public var account: String?
    public var extraFlags: [String]
    public var log: String
    public var workingFolder: String
    public var command: [String]
    /// `--array` spec (`0-99%20`) for a job array, nil for one job.
    public var array: String? = nil

    public var text: String {
        var lines = ["#!/bin/bash", "#SBATCH --job-name=\(jobName)", "#SBATCH --output=\(log)", "#SBATCH --chdir=\(workingFolder)",
                     "#SBATCH --ntasks=1"]
        if let partition = resources.partition { lines.append("#SBATCH --partition=\(partition)") }
        if let account { lines.append("#SBATCH --account=\(account)") }
        if let qos = resources.qos { lines.append("#SBATCH --qos=\(qos)") }
        if let cpus = resources.cpus { lines.append("#SBATCH --cpus-per-task=\(cpus)") }
        if let mem = resources.mem { lines.append("#SBATCH --mem=\(mem)") }
        if let time = resources.time { lines.append("#SBATCH --time=\(time)") }
        if let array { lines.append("#SBATCH --array=\(array)") }
        for flag in extraFlags { lines.append("#SBATCH \(flag)") }
        lines.append("# nic node '\(node)'")
        lines.append("exec " + command.map(Self.shellQuoted).joined(separator: " "))
        return lines.joined(separator: "\n") + "\n"
    }

    static func shellQuoted(_ word: String) -> String {
        let safe = word.allSatisfy { $0.isLetter || $0.isNumber || "/._-=:+,@%".contains($0) }
        return safe && !word.isEmpty ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

/// The Slurm executor's side of the driver: each node that must run becomes one `sbatch` job
/// running `nic worker` on the shared cache; the driver polls all of its jobs with one `squeue` call
/// per round (backing off), and learns each outcome from the exit record the worker writes into the
/// run folder, so that completion never depends on Slurm's accounting database.
public final class SlurmRunner: RemoteNodeRunner, @unchecked Sendable {  // mutable state only under `state`
    public let config: SlurmConfig
    /// `<run folder>/slurm`: job scripts, logs and exit records.
    public let folder: URL
    /// One name for every job of this run: `squeue -n` finds them all, `scancel -n` stops them all.
    public let jobName: String
    let nic: String
    let pipeline: String
    let cacheRoot: String
    let workingFolder: String
    let logger: Logger
    /// Times a failed job or array task is submitted again (`nic run --retries`).
    public var retries = 0

    struct State {
        var states: [String: String] = [:]
        var lastPoll = Date.distantPast
        var interval = 0.5
        var polls = 0
        var sbatchCalls = 0
        var submitted: [String] = []
        /// Jobs not listed by `squeue` at the last polls, by how many polls in a row.
        var missing: [String: Int] = [:]
        /// Every job and array task the run waits for (its own and adopted ones), with its node.
        var watched: [String: String] = [:]
        /// The final state of each job the run saw end.
        var ended: [String: String] = [:]
        /// Base ids of jobs adopted from earlier drivers (polled by id: they carry another run's name).
        var adopted: Set<String> = []
        /// Adopted jobs whose driver is gone: this run cancels them on interrupt.
        var orphans: Set<String> = []
        /// The item counts last published per node.
        var published: [String: JobCounts] = [:]
    }
    let state = Locked(State())
    private let polling = NSLock()
    /// Jobs submitted per cache key, so that a later run can adopt them (`<cache>/locks/jobs`).
    let submissions: SubmittedJobs
    /// Hears the item counts of each node (queued, running, done) when they change.
    public var observer: RunObserver?

    public init(config: SlurmConfig, runFolder: URL, nic: String, pipeline: URL, cache: URL, logger: Logger = Logger(label: "nic.slurm")) {
        self.config = config
        self.folder = runFolder.appendingPathComponent("slurm")
        self.jobName = "nic-" + runFolder.lastPathComponent
        self.nic = nic
        self.pipeline = pipeline.standardizedFileURL.path
        self.cacheRoot = cache.standardizedFileURL.path
        self.workingFolder = FileManager.default.currentDirectoryPath
        self.logger = logger
        self.submissions = SubmittedJobs(folder: cache.appendingPathComponent("locks/jobs"), logger: logger)
    }

    /// The number of `squeue` calls made so far (one per round, whatever the number of jobs).
    public var squeueCalls: Int { state.withLock { $0.polls } }
    public var jobIDs: [String] { state.withLock { $0.submitted } }
    /// What this run asked of Slurm: `sbatch` calls, jobs and array tasks submitted, `squeue` rounds.
    public var usage: String {
        state.withLock { s in
            let tasks = s.submitted.filter { $0.contains("_") }.count
            return "\(s.sbatchCalls) sbatch calls (\(s.submitted.count - tasks) jobs, \(tasks) array tasks), \(s.polls) squeue calls"
        }
    }

    public func script(node: String, type: String) -> SlurmJobScript {
        let safe = Self.safeName(node)
        return SlurmJobScript(jobName: jobName, node: node, resources: config.resources(node: node, type: type), account: config.account,
                              extraFlags: config.sbatchFlags, log: folder.appendingPathComponent("\(safe)-%j.log").path,
                              workingFolder: workingFolder,
                              command: [nic, "worker", pipeline, "--node", node, "--cache", cacheRoot,
                                        "--exit-record", exitRecordURL(safe).path])
    }

    func exitRecordURL(_ safeNode: String) -> URL { folder.appendingPathComponent("\(safeNode).exit.json") }

    public func run(node: String, type: String, key: String, report: @escaping @Sendable (RemoteJob) -> Void,
                    isCancelled: @escaping @Sendable () -> Bool) throws -> Bool {
        let job = script(node: node, type: type)
        let safe = Self.safeName(node)
        let exitURL = exitRecordURL(safe)
        if let earlier = try waitForEarlierJob(node: node, key: key, report: report, isCancelled: isCancelled) { return earlier.status == "done" }
        var earlier: [String] = []
        var attempt = 0
        while true {
            try? FileManager.default.removeItem(at: exitURL)
            let id = try submit(job, scriptName: "\(safe).sbatch", what: "the job of node '\(node)'")
            var remote = RemoteJob(id: id, log: job.log.replacingOccurrences(of: "%j", with: id), state: "PENDING", submitted: Date())
            state.withLock { $0.submitted.append(id); $0.states[id] = "PENDING"; $0.watched[id] = node }
            submissions.write([SubmittedJob(key: key, node: node, job: id, log: remote.log, exitRecord: exitURL.path, submitted: remote.submitted,
                                            driver: LockOwner.current())])
            defer { submissions.remove(key, job: id) }
            report(remote)
            do {
                return try wait(for: &remote, exitURL: exitURL, report: report, isCancelled: isCancelled).status == "done"
            } catch var error as SlurmJobError {
                guard attempt < retries else {
                    if !earlier.isEmpty { error.detail += "; earlier attempts: " + earlier.joined(separator: "; ") }
                    throw error
                }
                logger.warning("node '\(node)': \(error); submitting it again (retry \(attempt + 1) of \(retries))")
                earlier.append("job \(id) \(error.state)")
                attempt += 1
            }
        }
    }

    /// A job an earlier driver submitted for this key and Slurm still lists as queued or running:
    /// waited for instead of submitting again. Its exit record when it ended well; nil when there was
    /// none, or it failed (then this run submits its own).
    private func waitForEarlierJob(node: String, key: String, report: @escaping @Sendable (RemoteJob) -> Void,
                                   isCancelled: @escaping @Sendable () -> Bool) throws -> WorkerExitRecord? {
        guard let (record, st) = liveSubmissions([key]).first else { return nil }
        logger.info("node '\(node)': Slurm job \(record.job) of an earlier run (log \(record.log)) is \(st.lowercased()); waiting for it instead of submitting again")
        var remote = adopt(record, state: st)
        report(remote)
        defer { submissions.remove(key, job: record.job) }
        do {
            return try wait(for: &remote, exitURL: URL(fileURLWithPath: record.exitRecord), report: report, isCancelled: isCancelled)
        } catch let error as SlurmJobError {
            logger.warning("node '\(node)': the earlier run's \(error); submitting the node again")
            return nil
        }
    }

    func itemExitURL(_ safeNode: String, _ index: Int) -> URL { folder.appendingPathComponent("\(safeNode).item-\(index).exit.json") }

    public static func safeName(_ node: String) -> String {
        String(node.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
    }

    /// Writes the script and submits it; returns the job id.
    func submit(_ job: SlurmJobScript, scriptName: String, what: String) throws -> String {
        let scriptURL = folder.appendingPathComponent(scriptName)
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data(job.text.utf8).write(to: scriptURL)
        } catch { throw FlowError.wrapping(error, "cannot write the job script \(scriptURL.path)") }
        let output: String
        do { output = try Command.run("sbatch", ["--parsable", scriptURL.path]) }
        catch { throw NodeError("sbatch refused \(what): \(FlowError.plainReason(error)) (script \(scriptURL.path))") }
        // --parsable prints "id" or "id;cluster".
        guard let id = output.split(separator: "\n").last.map({ String($0.split(separator: ";")[0]).trimmingCharacters(in: .whitespaces) }), !id.isEmpty, id.allSatisfy(\.isNumber) else {
            throw NodeError("sbatch printed no job id for \(what): \(output)")
        }
        state.withLock { $0.sbatchCalls += 1 }
        logger.debug("\(what): submitted as Slurm job \(id)")
        return id
    }

    /// Waits until the job (or array task) ended; returns its worker's exit record if it succeeded,
    /// throws otherwise.
    @discardableResult
    func wait(for remote: inout RemoteJob, exitURL: URL, report: @Sendable (RemoteJob) -> Void, isCancelled: () -> Bool) throws -> WorkerExitRecord {
        let id = remote.id
        var shown = remote.state
        while true {
            if isCancelled() {
                cancelAll()
                throw RunCancelled()
            }
            pollIfDue()
            let (current, gone) = state.withLock { ($0.states[id] ?? "PENDING", ($0.missing[id] ?? 0) >= 2) }
            if current != shown {
                shown = current
                remote.state = current
                report(remote)
            }
            let exit = WorkerExitRecord.read(exitURL)
            if Self.terminal.contains(current) || gone || (exit != nil && current != "RUNNING" && current != "COMPLETING") {
                var final = current
                if !Self.terminal.contains(current) {
                    // Ended between two polls (its exit record is there) or left the queue unseen.
                    final = exit.map { $0.status == "failed" ? "FAILED" : "COMPLETED" } ?? accountingState(id) ?? "ENDED"
                }
                let changed = final != shown || remote.started != exit?.started
                remote.state = final
                state.withLock { $0.ended[id] = final }
                publishCounts()
                remote.started = exit?.started
                remote.ended = exit?.ended
                if changed { report(remote) }
                if let exit, exit.status == "done" || exit.status == "cached" { return exit }
                // A worker that failed says why in its exit record; one that was killed (time, memory,
                // scancel) wrote none, and its log's tail is what there is.
                let tail = exit == nil ? Self.tail(remote.log) : ""
                throw SlurmJobError(node: exit?.node ?? "", job: id, state: Self.plain(final), log: remote.log,
                                    detail: (exit?.message ?? "it ended without an exit record (killed, or the node's machine lost?)")
                                        + (tail.isEmpty ? "" : "; last lines of its log:\n" + tail))
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    static let terminal: Set<String> = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"]

    static func plain(_ state: String) -> String {
        switch state {
        case "COMPLETED": return "completed"
        case "FAILED": return "failed"
        case "CANCELLED": return "was cancelled"
        case "TIMEOUT": return "ran out of time"
        case "OUT_OF_MEMORY": return "ran out of memory"
        case "NODE_FAIL": return "lost its node"
        case "ENDED": return "left the queue"
        default: return state.lowercased()
        }
    }

    /// One `squeue` call for all jobs of the run, at most once per interval; the interval backs off
    /// (×1.5 per round) to `pollSeconds`.
    private func pollIfDue() {
        guard polling.try() else { return }  // another waiter is polling for everyone
        defer { polling.unlock() }
        let due = state.withLock { s in Date().timeIntervalSince(s.lastPoll) >= s.interval }
        guard due else { return }
        var listed: [String: String]
        do {
            let output = try Command.run("squeue", ["--noheader", "--array", "--states=all", "--name=\(jobName)", "--format=%i|%T"])
            listed = Self.parseQueue(output)
        } catch {
            logger.warning("squeue failed (\(FlowError.plainReason(error))); trying again")
            state.withLock { s in s.lastPoll = Date(); s.polls += 1 }
            return
        }
        // Adopted jobs carry an earlier run's name: one more call, by id, for all of them.
        let adopted = state.withLock { $0.adopted }
        if !adopted.isEmpty {
            guard let more = queueStates(jobs: adopted) else {
                state.withLock { s in s.lastPoll = Date(); s.polls += 1 }
                return
            }
            listed.merge(more) { a, _ in a }
        }
        state.withLock { s in
            s.polls += 1
            s.lastPoll = Date()
            s.interval = min(config.pollSeconds, s.interval * 1.5)
            for id in s.watched.keys {
                if let st = listed[id] { s.states[id] = st; s.missing[id] = nil }
                else { s.missing[id, default: 0] += 1 }
            }
        }
        publishCounts()
    }

    /// Each node's array tasks by state, published to the observer when they changed since last time.
    func publishCounts() {
        guard let observer else { return }
        let changed: [(String, JobCounts)] = state.withLock { s in
            var counts: [String: JobCounts] = [:]
            for (id, node) in s.watched where id.contains("_") {
                counts[node, default: JobCounts()].add(ended: s.ended[id], state: s.states[id], gone: (s.missing[id] ?? 0) >= 2)
            }
            let changed = counts.filter { s.published[$0.key] != $0.value }.sorted { $0.key < $1.key }
            for (node, c) in changed { s.published[node] = c }
            return changed
        }
        for (node, counts) in changed { observer.nodeJobCounts(node, counts) }
    }

    /// `squeue --format=%i|%T` lines → job id → state.
    static func parseQueue(_ output: String) -> [String: String] {
        var states: [String: String] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2 { states[parts[0]] = parts[1] }
        }
        return states
    }

    /// `sacct`'s state of a job that left the queue, when accounting is there; nil otherwise.
    private func accountingState(_ id: String) -> String? {
        guard let output = try? Command.run("sacct", ["--noheader", "--parsable2", "--jobs=\(id)", "--format=State", "-X"]) else { return nil }
        return output.split(separator: "\n").first.map { String($0.split(separator: " ")[0]) }
    }

    static func tail(_ path: String, lines: Int = 15) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Cancels every job of the run (one `scancel` by the run's job name), and the adopted jobs whose
    /// own driver is gone (by id).
    public func cancelAll() {
        let (own, orphans) = state.withLock { (!$0.submitted.isEmpty, $0.orphans.sorted()) }
        if own { _ = try? Command.run("scancel", ["--name=\(jobName)"]) }
        if !orphans.isEmpty { _ = try? Command.run("scancel", orphans) }
    }

    /// Tells `KeyLocks` whether a lock held by a Slurm job on another host is still alive: a job
    /// `squeue` no longer lists (or lists as ended) is dead. Answers are kept for a few seconds.
    public static func installLiveness() {
        let memory = Locked<[String: (Date, LockOwner.Liveness?)]>([:])
        LockOwner.remoteLiveness.withLock { hook in
            hook = { owner in
                guard let job = owner.slurmJob else { return nil }
                if let (when, answer) = memory.withLock({ $0[job] }), Date().timeIntervalSince(when) < 5 { return answer }
                let answer: LockOwner.Liveness?
                do {
                    let st = try Command.run("squeue", ["--noheader", "--jobs=\(job)", "--format=%T"]).trimmingCharacters(in: .whitespacesAndNewlines)
                    answer = st.isEmpty || terminal.contains(st) ? .dead("Slurm job \(job) is no longer running") : .alive
                } catch let failed as Command.Failed where failed.output.contains("Invalid job id") {
                    answer = .dead("Slurm job \(job) is unknown to Slurm (ended long ago)")
                } catch {
                    answer = nil  // no Slurm here, or its controller does not answer: cannot tell
                }
                memory.withLock { $0[job] = (Date(), answer) }
                return answer
            }
        }
    }
}
