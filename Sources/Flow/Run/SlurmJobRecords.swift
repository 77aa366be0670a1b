import Foundation
import Logging
import NICBasics

/// A job a driver submitted for one cache key (a node's entry or one of its items), kept in
/// `<cache>/locks/jobs/<key>.json` while the job may still run. A job that is still queued holds no
/// lock yet (its worker takes the key's lock when it starts), so without this record a driver killed
/// with SIGKILL leaves work the next run cannot see: it would submit the same work again.
public struct SubmittedJob: Codable, Sendable, Equatable {
    public var key: String
    public var node: String
    /// "123" for a node's job, "123_4" for an array task.
    public var job: String
    public var log: String
    /// Where the job's worker writes its exit record (in the submitting run's folder).
    public var exitRecord: String
    public var submitted: Date
    /// The driver that submitted it. A run that adopts the job cancels it on interrupt only when this
    /// driver is gone: a live one still waits for it.
    public var driver: LockOwner
}

/// The `SubmittedJob` records of a cache, one file per key, each written atomically.
struct SubmittedJobs: Sendable {
    let folder: URL
    let logger: Logger

    func url(_ key: String) -> URL { folder.appendingPathComponent(key + ".json") }

    func write(_ records: [SubmittedJob]) {
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for record in records { try LockOwner.encoder.encode(record).write(to: url(record.key), options: .atomic) }
        } catch {
            // Only adoption after a killed driver depends on it: the run itself goes on.
            logger.warning("cannot record submitted jobs in \(folder.path) (\(FlowError.plainReason(error))); a run after this driver is killed would submit them again")
        }
    }

    func read(_ key: String) -> SubmittedJob? {
        guard let data = try? Data(contentsOf: url(key)) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(SubmittedJob.self, from: data)
    }

    /// Removes the key's record if it still names `job` (another driver may have recorded a newer one).
    func remove(_ key: String, job: String) {
        guard read(key)?.job == job else { return }
        unlink(url(key).path)
    }
}

extension SlurmRunner {
    /// The base job id of a job or array task ("123_4" → "123").
    static func baseID(_ id: String) -> String { String(id.prefix { $0 != "_" }) }

    /// Of the keys' submitted-job records, those whose job Slurm still lists as queued or running,
    /// with its state (one `squeue` call for all of them). Records of jobs that ended are removed.
    func liveSubmissions(_ keys: [String]) -> [(record: SubmittedJob, state: String)] {
        let records = keys.compactMap { submissions.read($0) }
        guard !records.isEmpty else { return [] }
        guard let listed = queueStates(jobs: Set(records.map { Self.baseID($0.job) })) else {
            // Slurm does not answer: the jobs may live; submitting again is safe (the key's lock
            // keeps the work single), waiting on a job that cannot be seen is not.
            return []
        }
        var live: [(SubmittedJob, String)] = []
        for record in records {
            if let st = listed[record.job], !Self.terminal.contains(st) { live.append((record, st)) }
            else { submissions.remove(record.key, job: record.job) }
        }
        return live
    }

    /// One `squeue` call for the given base job ids (tasks of arrays listed one by one); nil when
    /// Slurm cannot answer. Ids Slurm has forgotten are simply absent.
    func queueStates(jobs: Set<String>) -> [String: String]? {
        guard !jobs.isEmpty else { return [:] }
        state.withLock { $0.polls += 1 }
        do {
            return Self.parseQueue(try Command.run("squeue", ["--noheader", "--array", "--states=all", "--jobs=\(jobs.sorted().joined(separator: ","))",
                                                               "--format=%i|%T"]))
        } catch let failed as Command.Failed where failed.output.contains("Invalid job id") {
            return [:]  // every one of them is gone
        } catch {
            logger.warning("squeue failed (\(FlowError.plainReason(error)))")
            return nil
        }
    }

    /// Starts watching a job an earlier driver submitted: polled with this run's jobs, counted in its
    /// progress, cancelled on interrupt when its driver is gone.
    func adopt(_ record: SubmittedJob, state st: String) -> RemoteJob {
        state.withLock { s in
            s.watched[record.job] = record.node
            s.states[record.job] = st
            s.adopted.insert(Self.baseID(record.job))
            if !record.driver.isAlive { s.orphans.insert(record.job) }
        }
        return RemoteJob(id: record.job, log: record.log, state: st, submitted: record.submitted, adopted: true)
    }
}
