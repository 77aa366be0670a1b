import Foundation
import Logging
import NICBasics

/// An item's array task the driver waits for: submitted by this run or adopted from an earlier one.
private struct ItemTask {
    var item: DeclaredItem
    var job: RemoteJob
    var exit: URL
    var adopted: Bool { job.adopted == true }
}

extension SlurmRunner {
    /// The items not in the cache yet, as `sbatch --array` jobs of at most `maxArraySize` tasks
    /// (throttled to `maxJobs` at once); each task runs `nic worker --items-file` on one item. Items
    /// whose task an earlier driver submitted and Slurm still lists are waited for, not submitted
    /// again; those of them that fail go out as this run's own. Returns when all ended; throws naming
    /// every failed item, its task and its log.
    public func runItems(node: String, type: String, items: [DeclaredItem], report: @escaping @Sendable (RemoteJob) -> Void,
                         isCancelled: @escaping @Sendable () -> Bool) throws {
        let live = liveSubmissions(items.map(\.key))
        var adopted: [ItemTask] = []
        for (record, st) in live {
            guard let item = items.first(where: { $0.key == record.key }) else { continue }
            adopted.append(ItemTask(item: item, job: adopt(record, state: st), exit: URL(fileURLWithPath: record.exitRecord)))
        }
        if !adopted.isEmpty {
            logger.info("node '\(node)': \(adopted.count) of \(items.count) items are queued or running as jobs of an earlier run; waiting for them instead of submitting again")
            Self.adoptedArrays(adopted, state: { _ in "PENDING" }).forEach(report)
        }
        let adoptedKeys = Set(adopted.map(\.item.key))
        var remaining = items.filter { !adoptedKeys.contains($0.key) }
        var attempt = 0, round = 0
        while true {
            let failures = try runItemsOnce(node: node, type: type, items: remaining, adopted: adopted, round: round, report: report, isCancelled: isCancelled)
            round += 1
            // A failed task of an earlier run was that run's attempt: its item goes out as this run's own.
            let inherited = failures.filter { $0.task.adopted }.map(\.task.item)
            let own = failures.filter { !$0.task.adopted }
            adopted = []
            if failures.isEmpty { return }
            if !own.isEmpty {
                guard attempt < retries else {
                    throw NodeError("\(own.count) of \(items.count) items failed\(retries > 0 ? " after \(retries + 1) attempts" : ""):\n"
                                    + own.map { "item \($0.task.item.index) (\($0.task.item.name)): \($0.error)" }.joined(separator: "\n"))
                }
                attempt += 1
                logger.warning("node '\(node)': \(own.count) items failed; submitting them again (retry \(attempt) of \(retries))")
            }
            if !inherited.isEmpty {
                logger.warning("node '\(node)': \(inherited.count) items of an earlier run's jobs failed; submitting them")
            }
            remaining = own.map(\.task.item) + inherited
        }
    }

    /// One round of job arrays (and the adopted tasks); returns the tasks that failed, with why.
    private func runItemsOnce(node: String, type: String, items: [DeclaredItem], adopted: [ItemTask], round: Int,
                              report: @escaping @Sendable (RemoteJob) -> Void,
                              isCancelled: @escaping @Sendable () -> Bool) throws -> [(task: ItemTask, error: SlurmJobError)] {
        let safe = Self.safeName(node)
        var tasks = adopted
        var arrays: [RemoteJob] = []
        for (chunkIndex, start) in stride(from: 0, to: items.count, by: config.maxArraySize).enumerated() {
            let chunk = Array(items[start..<min(items.count, start + config.maxArraySize)])
            let name = round == 0 ? "\(chunkIndex)" : "\(chunkIndex)-retry\(round)"
            let listURL = folder.appendingPathComponent("\(safe).items-\(name).txt")
            do {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                try Data((chunk.map { "\($0.index)" }.joined(separator: "\n") + "\n").utf8).write(to: listURL)
            } catch { throw FlowError.wrapping(error, "cannot write the item list \(listURL.path)") }
            for item in chunk { try? FileManager.default.removeItem(at: itemExitURL(safe, item.index)) }
            var job = script(node: node, type: type)
            job.array = "0-\(chunk.count - 1)%\(config.maxJobs)"
            job.log = folder.appendingPathComponent("\(safe)-%A_%a.log").path
            job.command = [nic, "worker", pipeline, "--node", node, "--cache", cacheRoot, "--items-file", listURL.path,
                           "--exit-record", folder.appendingPathComponent("\(safe).item-%i.exit.json").path]
            let id = try submit(job, scriptName: "\(safe).items-\(name).sbatch", what: "the item array of node '\(node)'")
            let submitted = Date()
            var chunkTasks: [ItemTask] = []
            for (t, item) in chunk.enumerated() {
                let log = job.log.replacingOccurrences(of: "%A", with: id).replacingOccurrences(of: "%a", with: "\(t)")
                chunkTasks.append(ItemTask(item: item, job: RemoteJob(id: "\(id)_\(t)", log: log, state: "PENDING", submitted: submitted),
                                           exit: itemExitURL(safe, item.index)))
            }
            state.withLock { s in
                for task in chunkTasks { s.submitted.append(task.job.id); s.states[task.job.id] = "PENDING"; s.watched[task.job.id] = node }
            }
            let driver = LockOwner.current()
            submissions.write(chunkTasks.map { SubmittedJob(key: $0.item.key, node: node, job: $0.job.id, log: $0.job.log, exitRecord: $0.exit.path,
                                                            submitted: submitted, driver: driver) })
            tasks += chunkTasks
            let array = RemoteJob(id: "\(id)_[0-\(chunk.count - 1)]", log: job.log.replacingOccurrences(of: "%A", with: id), state: "PENDING", submitted: submitted)
            arrays.append(array)
            report(array)
        }
        publishCounts()
        var failures: [(task: ItemTask, error: SlurmJobError)] = []
        var failedPerArray: [String: Int] = [:]
        var lastEnd: [String: Date] = [:]
        for var task in tasks {
            let array = Self.baseID(task.job.id)
            defer { submissions.remove(task.item.key, job: task.job.id) }
            do { try wait(for: &task.job, exitURL: task.exit, report: { _ in }, isCancelled: isCancelled) }
            catch let error as SlurmJobError {
                failures.append((task, error))
                failedPerArray[array, default: 0] += 1
            }
            if let ended = task.job.ended { lastEnd[array] = max(lastEnd[array] ?? ended, ended) }
        }
        for var array in arrays {
            let id = Self.baseID(array.id)
            array.state = failedPerArray[id].map { "FAILED (\($0) tasks)" } ?? "COMPLETED"
            array.ended = lastEnd[id]
            report(array)
        }
        Self.adoptedArrays(adopted, state: { failedPerArray[$0].map { "FAILED (\($0) tasks)" } ?? "COMPLETED" }, ended: lastEnd).forEach(report)
        return failures
    }

    /// Adopted tasks as one record per earlier array ("123_[2,4]"), for the run record; `state` of a base id.
    private static func adoptedArrays(_ tasks: [ItemTask], state: (String) -> String, ended: [String: Date] = [:]) -> [RemoteJob] {
        Dictionary(grouping: tasks, by: { baseID($0.job.id) }).sorted { $0.key < $1.key }.map { base, group in
            let numbers = group.compactMap { Int($0.job.id.drop { $0 != "_" }.dropFirst()) }.sorted()
            return RemoteJob(id: "\(base)_[\(numbers.map(String.init).joined(separator: ","))]", log: group[0].job.log, state: state(base),
                             submitted: group[0].job.submitted, ended: ended[base], adopted: true)
        }
    }
}
