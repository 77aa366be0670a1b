import Foundation
import Logging
import NICBasics

/// Who holds a lock or a lease: enough for another process, on this host or another one sharing the
/// cache, to tell whether the holder is still alive.
public struct LockOwner: Codable, Sendable, Equatable {
    public var host: String
    public var pid: Int32
    /// The process's start in clock ticks after boot (`/proc/<pid>/stat`, field 22): a live process
    /// with the same pid but another start is a reused pid, not the owner.
    public var processStart: UInt64?
    public var acquired: Date
    /// The Slurm job the owner runs in: `SLURM_JOB_ID`, or for an array task `<array job id>_<task id>`
    /// (its own SLURM_JOB_ID is another number, which `squeue --jobs` does not take with a task id).
    public var slurmJob: String?
    /// Unique per lock taken, so that a release or a break never removes someone else's lock file.
    public var token: String

    public static func current() -> LockOwner {
        return LockOwner(host: Self.hostName, pid: getpid(), processStart: Self.startTicks(of: getpid()), acquired: Date(),
                         slurmJob: slurmJob(ProcessInfo.processInfo.environment), token: UUID().uuidString)
    }

    /// "123" for a job, "120_3" for task 3 of array job 120; nil outside Slurm.
    public static func slurmJob(_ env: [String: String]) -> String? {
        if let array = env["SLURM_ARRAY_JOB_ID"], let task = env["SLURM_ARRAY_TASK_ID"] { return "\(array)_\(task)" }
        return env["SLURM_JOB_ID"]
    }

    public enum Liveness: Equatable, Sendable {
        case alive
        case dead(String)
        /// On another host and no checker knows: treated as alive (never broken).
        case unknown
    }

    /// How to tell whether an owner on another host lives (the Slurm executor asks `squeue` about
    /// `slurmJob`); nil from the checker means it cannot tell.
    public static let remoteLiveness = Locked<(@Sendable (LockOwner) -> Liveness?)?>(nil)

    public var liveness: Liveness {
        guard host == Self.hostName else {
            return Self.remoteLiveness.withLock { $0 }.flatMap { $0(self) } ?? .unknown
        }
        if kill(pid, 0) != 0 && errno == ESRCH { return .dead("process \(pid) on \(host) is gone") }
        if let processStart, let now = Self.startTicks(of: pid), now != processStart {
            return .dead("process \(pid) on \(host) is gone (its pid now belongs to another process)")
        }
        return .alive
    }

    public var isAlive: Bool { if case .dead = liveness { return false } else { return true } }

    public var description: String {
        "process \(pid) on \(host)\(slurmJob.map { " (Slurm job \($0))" } ?? "") since \(ISO8601DateFormatter().string(from: acquired))"
    }

    static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    static func startTicks(of pid: Int32) -> UInt64? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may hold spaces): state is field 3, start time field 22.
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .iso8601
        return e
    }()

    static func decode(_ data: Data) -> LockOwner? {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(LockOwner.self, from: data)
    }
}

/// One lock file per cache key (an entry, an item, a pipeline record) under `<cache>/locks/`, made
/// with `O_CREAT|O_EXCL` (atomic on local and NFS v3+ file systems) and holding its owner. Several
/// processes (two runs, Slurm array tasks, `gc`) on one cache take turns on a key: the second waits
/// and then finds the entry the first committed. A lock whose owner died is broken with a log line.
public final class KeyLocks: Sendable {
    public let folder: URL
    let logger: Logger

    init(folder: URL, logger: Logger = Logger(label: "nic.locks")) {
        self.folder = folder
        self.logger = logger
    }

    func url(_ name: String) -> URL { folder.appendingPathComponent(name + ".lock") }

    /// A lock this process holds; `release()` removes its file (only if it is still ours).
    public final class Held: Sendable {
        public let name: String
        public let owner: LockOwner
        let url: URL
        private let released = Locked(false)

        init(name: String, owner: LockOwner, url: URL) {
            self.name = name
            self.owner = owner
            self.url = url
        }

        public func release() {
            guard !released.withLock({ value in defer { value = true }; return value }) else { return }
            if let data = try? Data(contentsOf: url), LockOwner.decode(data)?.token == owner.token {
                unlink(url.path)
            }
        }

        deinit { release() }
    }

    public enum Attempt {
        case acquired(Held)
        case heldBy(LockOwner?)
    }

    /// One try: takes the lock, or says who holds it (nil: a lock file still being written). A dead
    /// owner's lock is broken (logged) and the try repeated.
    public func tryLock(_ name: String) throws -> Attempt {
        for _ in 0..<8 {
            let owner = LockOwner.current()
            let path = url(name).path
            let fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0o644)
            if fd >= 0 {
                // invariant: LockOwner has only strings, numbers and a date, which always encode
                let data = (try? LockOwner.encoder.encode(owner)) ?? Data()
                let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                let code = errno
                close(fd)
                guard written == data.count else {
                    unlink(path)
                    throw FlowError.posix(code, "cannot write lock file \(path)")
                }
                return .acquired(Held(name: name, owner: owner, url: url(name)))
            }
            let code = errno
            if code == ENOENT {
                try createFolder()
                continue
            }
            guard code == EEXIST else { throw FlowError.posix(code, "cannot create lock file \(path)") }
            guard let holder = readOwner(name) else {
                // Created but not yet written, or left empty by an owner killed in between.
                if let age = fileAge(path), age > 30 { breakLock(name, expected: nil, reason: "an empty lock file \(Int(age)) s old") ; continue }
                return .heldBy(nil)
            }
            if case .dead(let reason) = holder.liveness {
                breakLock(name, expected: holder.token, reason: reason)
                continue
            }
            return .heldBy(holder)
        }
        return .heldBy(readOwner(name))
    }

    /// Takes the lock, waiting (polling with back-off up to a second) while a live owner holds it.
    /// `onWait` is called once, with the holder, when the lock is busy.
    public func lock(_ name: String, isCancelled: () -> Bool = { false }, onWait: (LockOwner?) -> Void = { _ in }) throws -> Held {
        var delay = 0.01
        var told = false
        while true {
            switch try tryLock(name) {
            case .acquired(let held): return held
            case .heldBy(let owner):
                if !told { onWait(owner); told = true }
                if isCancelled() { throw RunCancelled() }
                Thread.sleep(forTimeInterval: delay)
                delay = min(1, delay * 1.5)
            }
        }
    }

    /// Runs `body` holding the lock.
    public func withLock<T>(_ name: String, isCancelled: () -> Bool = { false }, _ body: () throws -> T) throws -> T {
        let held = try lock(name, isCancelled: isCancelled)
        defer { held.release() }
        return try body()
    }

    /// The live owner of `name`'s lock, if any (no lock is taken or broken).
    public func liveOwner(_ name: String) -> LockOwner? {
        guard let owner = readOwner(name) else { return nil }
        return owner.isAlive ? owner : nil
    }

    func readOwner(_ name: String) -> LockOwner? {
        guard let data = try? Data(contentsOf: url(name)), !data.isEmpty else { return nil }
        return LockOwner.decode(data)
    }

    /// Moves the file aside first, so that of two processes breaking the same dead lock only one
    /// removes it, and a fresh lock taken meanwhile by a third is put back.
    private func breakLock(_ name: String, expected token: String?, reason: String) {
        let path = url(name).path
        let aside = path + ".broken.\(getpid()).\(UUID().uuidString.prefix(8))"
        guard rename(path, aside) == 0 else { return }
        let moved = (try? Data(contentsOf: URL(fileURLWithPath: aside))).flatMap(LockOwner.decode)
        if moved?.token != token {
            _ = link(aside, path)  // not the lock we judged dead: give it back (fails if yet another was taken)
        } else {
            logger.warning("broke the lock on \(name): its owner died (\(reason))")
        }
        unlink(aside)
    }

    private func fileAge(_ path: String) -> Double? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Date().timeIntervalSince1970 - Double(st.st_mtim.tv_sec)
    }

    func createFolder() throws {
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        catch { throw FlowError.wrapping(error, "cannot create lock folder \(folder.path)") }
    }

    // MARK: Leases: the keys a live run uses

    /// The keys a run reads or writes, in `<cache>/locks/runs/<token>.json`: `gc` keeps them while
    /// the run lives. Written before the run relies on a key (the executor re-checks cached entries
    /// after leasing them, so an entry `gc` removed just before is recomputed, not trusted).
    public final class Lease: Sendable {
        let url: URL
        let owner: LockOwner
        private let keys = Locked<Set<String>>([])

        init(url: URL, owner: LockOwner) {
            self.url = url
            self.owner = owner
        }

        public func add<S: Sequence>(_ new: S) throws where S.Element == String {
            try keys.withLock { keys in
                let before = keys.count
                keys.formUnion(new)
                guard keys.count != before else { return }
                let record = LeaseRecord(owner: owner, keys: keys.sorted())
                do {
                    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try LockOwner.encoder.encode(record).write(to: url, options: .atomic)
                } catch { throw FlowError.wrapping(error, "cannot record the run's cache keys in \(url.path)") }
            }
        }

        public func release() { unlink(url.path) }
        deinit { release() }
    }

    struct LeaseRecord: Codable {
        var owner: LockOwner
        var keys: [String]
    }

    var leaseFolder: URL { folder.appendingPathComponent("runs") }

    public func lease() -> Lease {
        let owner = LockOwner.current()
        return Lease(url: leaseFolder.appendingPathComponent(owner.token + ".json"), owner: owner)
    }

    /// Keys leased by live runs; leases of dead runs are removed (logged) unless `readOnly`.
    public func leasedKeys(readOnly: Bool = false) -> Set<String> {
        var keys = Set<String>()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: leaseFolder.path)) ?? []
        for name in names where name.hasSuffix(".json") {
            let file = leaseFolder.appendingPathComponent(name)
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            guard let data = try? Data(contentsOf: file), let record = try? decoder.decode(LeaseRecord.self, from: data) else { continue }
            if case .dead(let reason) = record.owner.liveness {
                if !readOnly {
                    logger.info("removed the lease of a run that died (\(reason))")
                    unlink(file.path)
                }
                continue
            }
            keys.formUnion(record.keys)
        }
        return keys
    }
}
