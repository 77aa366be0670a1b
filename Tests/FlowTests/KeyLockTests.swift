@testable import Flow
import Foundation
import XCTest

/// The per-key lock files several processes share a cache with: a live owner is never broken, a dead
/// one (pid gone, or pid reused by another process) is, and shared state files lose no one's writes.
final class KeyLockTests: XCTestCase {
    var root: URL!
    var cache: Cache!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("nic-locks-\(UUID().uuidString.prefix(8))")
        cache = try Cache(root: root)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: root) }

    /// A pid that was just alive and is now gone.
    func deadPid() throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/true")
        try process.run()
        process.waitUntilExit()
        return process.processIdentifier
    }

    /// The records that let a later run adopt a killed driver's jobs: read back as written, and removed
    /// only by the job they name (a newer driver's record for the same key stays).
    func testSubmittedJobRecordsAreRemovedOnlyByTheirJob() throws {
        let jobs = SubmittedJobs(folder: root.appendingPathComponent("locks/jobs"), logger: .init(label: "test"))
        var driver = LockOwner.current()
        driver.acquired = Date(timeIntervalSince1970: 1_700_000_000)  // ISO 8601 keeps whole seconds
        let first = SubmittedJob(key: "k1", node: "grids", job: "40_3", log: "/runs/a/slurm/grids-40_3.log", exitRecord: "/runs/a/slurm/grids.item-3.exit.json",
                                 submitted: Date(timeIntervalSince1970: 1_700_000_000), driver: driver)
        jobs.write([first])
        XCTAssertEqual(jobs.read("k1"), first)
        var newer = first
        newer.job = "52_0"
        jobs.write([newer])
        jobs.remove("k1", job: "40_3")
        XCTAssertEqual(jobs.read("k1")?.job, "52_0", "an older job's end must not remove a newer record")
        jobs.remove("k1", job: "52_0")
        XCTAssertNil(jobs.read("k1"))
        XCTAssertEqual(SlurmRunner.baseID("52_0"), "52")
        XCTAssertEqual(SlurmRunner.baseID("52"), "52")
    }

    func plant(_ name: String, owner: LockOwner) throws {
        try cache.locks.createFolder()
        try LockOwner.encoder.encode(owner).write(to: cache.locks.url(name))
    }

    func testASecondTakerWaitsForTheHolder() throws {
        guard case .acquired(let held) = try cache.locks.tryLock("k") else { return XCTFail("first taker must get the lock") }
        guard case .heldBy(let owner) = try cache.locks.tryLock("k") else { return XCTFail("a held lock must not be taken twice") }
        XCTAssertEqual(owner?.pid, getpid())
        XCTAssertEqual(owner?.token, held.owner.token)
        XCTAssertNotNil(owner?.processStart)
        held.release()
        let relocked = try cache.locks.lock("k")
        relocked.release()
        XCTAssertFalse(FileManager.default.fileExists(atPath: cache.locks.url("k").path))
    }

    func testADeadOwnersLockIsBroken() throws {
        var owner = LockOwner.current()
        owner.pid = try deadPid()
        owner.processStart = nil
        try plant("k", owner: owner)
        XCTAssertEqual(owner.liveness, .dead("process \(owner.pid) on \(owner.host) is gone"))
        guard case .acquired(let held) = try cache.locks.tryLock("k") else { return XCTFail("a dead owner's lock must be broken") }
        XCTAssertEqual(held.owner.pid, getpid())
        held.release()
    }

    func testAReusedPidIsNotTheOwner() throws {
        var owner = LockOwner.current()
        owner.token = "someone else"
        owner.processStart = (owner.processStart ?? 0) + 12345  // this pid, but a process that started at another time
        try plant("k", owner: owner)
        guard case .acquired = try cache.locks.tryLock("k") else { return XCTFail("a reused pid must not keep the lock") }
    }

    func testALiveOwnersLockIsNeverBroken() throws {
        var owner = LockOwner.current()
        owner.token = "another thread of this live process"
        try plant("k", owner: owner)
        for _ in 0..<3 {
            guard case .heldBy(let holder) = try cache.locks.tryLock("k") else { return XCTFail("a live owner's lock was broken") }
            XCTAssertEqual(holder?.token, owner.token)
        }
        // An owner on another host that nobody can check counts as alive too.
        owner.host = "elsewhere.example"
        owner.pid = try deadPid()
        try plant("k2", owner: owner)
        guard case .heldBy = try cache.locks.tryLock("k2") else { return XCTFail("a lock from another host was broken") }
    }

    func testLeasesOfLiveRunsProtectEntriesFromGc() throws {
        let key = String(repeating: "ab", count: 32)
        let folder = try cache.makeTemporary(for: key)
        try Data("x".utf8).write(to: folder.appendingPathComponent("f.txt"))
        try cache.commit(temporary: folder, manifest: EntryManifest(key: key, pipeline: "p", node: "n", type: "t", version: 1, params: [:],
                                                                    keyParams: [:], inputs: [:], created: Date(), seconds: 0, files: []))
        let lease = cache.locks.lease()
        try lease.add([key])
        var result = cache.collectGarbage(keep: [], olderThan: nil, dryRun: false)
        XCTAssertEqual(result.inUse.map(\.key), [key])
        XCTAssertTrue(result.removed.isEmpty)

        // A lease left by a dead run protects nothing.
        lease.release()
        var dead = LockOwner.current()
        dead.pid = try deadPid()
        dead.processStart = nil
        try FileManager.default.createDirectory(at: cache.locks.leaseFolder, withIntermediateDirectories: true)
        try LockOwner.encoder.encode(KeyLocks.LeaseRecord(owner: dead, keys: [key])).write(to: cache.locks.leaseFolder.appendingPathComponent("dead.json"))
        result = cache.collectGarbage(keep: [], olderThan: nil, dryRun: false)
        XCTAssertEqual(result.removed.map(\.key), [key])
        XCTAssertFalse(FileManager.default.fileExists(atPath: cache.locks.leaseFolder.appendingPathComponent("dead.json").path))
    }

    func testFileHashesSavedByTwoProcessesAreMerged() throws {
        let a = root.appendingPathComponent("a.txt"), b = root.appendingPathComponent("b.txt")
        try Data("a".utf8).write(to: a)
        try Data("b".utf8).write(to: b)
        let state = root.appendingPathComponent("state/file-hashes.json")
        // Two hashers that loaded the same (empty) state, as two processes would.
        let first = FileHasher(stateFile: state, locks: cache.locks), second = FileHasher(stateFile: state, locks: cache.locks)
        _ = try first.hash(fileAt: a)
        _ = try second.hash(fileAt: b)
        first.save()
        second.save()
        let third = FileHasher(stateFile: state, locks: cache.locks)
        _ = try third.hash(fileAt: a)
        _ = try third.hash(fileAt: b)
        XCTAssertEqual(third.filesRead, 0, "both hashes were remembered")
    }
}
