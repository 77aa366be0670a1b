import Foundation
import TensorStore

/// What a cache entry records about how it was made; stored as `manifest.json`, written last.
public struct EntryManifest: Codable, Sendable {
    public struct File: Codable, Sendable {
        public var path: String
        public var size: Int64
        public var sha256: String
    }
    public var format: Int = 1
    public var key: String
    public var pipeline: String
    public var node: String
    public var type: String
    public var version: Int
    public var params: [String: ParamValue]
    public var keyParams: [String: ParamValue]
    public var inputs: [String: String]
    public var created: Date
    public var seconds: Double
    public var files: [File]
    /// Per-item entries this output was assembled from (kept alive by it in `gc`).
    public var items: [String]?
}

/// The content-addressed store of node outputs: `objects/ab/<key>/` holding one folder per output port
/// and `manifest.json`. Entries appear only by an atomic rename of a finished temporary folder, so a
/// killed run never leaves a half entry that a later run would trust.
public final class Cache: Sendable {
    public let root: URL
    public var objects: URL { root.appendingPathComponent("objects") }
    public var temporary: URL { root.appendingPathComponent("tmp") }
    public var quarantine: URL { root.appendingPathComponent("corrupt") }
    public var state: URL { root.appendingPathComponent("state") }
    public let fileHasher: FileHasher

    /// Per-key lock files and the leases of live runs (`locks/`): how processes sharing this cache
    /// take turns on a key and how `gc` knows what is in use.
    public let locks: KeyLocks

    public enum Opening: Sendable {
        /// Creates the folders if needed (commands that write: run, gc).
        case create
        /// The cache must exist: a mistyped path is an error, not a new empty cache (ls, verify, output, metrics).
        case existing
        /// Looks without creating anything: a missing cache reads as empty (plan before the first run).
        case existingOrNone
    }

    public init(root: URL, opening: Opening = .create) throws {
        self.root = root.standardizedFileURL
        locks = KeyLocks(folder: self.root.appendingPathComponent("locks"))
        var isDir: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: self.root.appendingPathComponent("objects").path, isDirectory: &isDir) && isDir.boolValue
        // A cache that is only looked at and does not exist must not be created by saving file hashes.
        let stateFile = opening == .existingOrNone && !exists ? nil : self.root.appendingPathComponent("state/file-hashes.json")
        fileHasher = FileHasher(stateFile: stateFile, locks: locks)
        switch opening {
        case .existing where !exists:
            throw FlowError("no cache at \(self.root.path) (no objects/ folder there): check --cache or NIC_CACHE")
        case .existing, .existingOrNone:
            return
        case .create:
            for dir in [objects, temporary, quarantine, state] {
                do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) }
                catch { throw FlowError.wrapping(error, "cannot create cache folder \(dir.path)") }
            }
        }
    }

    public func entryURL(_ key: String) -> URL {
        objects.appendingPathComponent(String(key.prefix(2))).appendingPathComponent(key)
    }

    public enum Lookup {
        case valid(URL, EntryManifest)
        case missing
        /// Present but not trustworthy (files missing or of the wrong size); the reason says which.
        case damaged(String)
    }

    /// A cheap check (manifest + file sizes, no hashing) fit for every plan; `verify` does the full one.
    public func lookup(_ key: String) -> Lookup {
        let url = entryURL(key)
        guard FileManager.default.fileExists(atPath: url.path) else { return .missing }
        guard let manifest = readManifest(url) else { return .damaged("manifest.json missing or unreadable") }
        for file in manifest.files {
            var st = stat()
            guard stat(url.appendingPathComponent(file.path).path, &st) == 0 else { return .damaged("\(file.path) missing") }
            if Int64(st.st_size) != file.size { return .damaged("\(file.path) has \(st.st_size) bytes, expected \(file.size)") }
        }
        return .valid(url, manifest)
    }

    /// Whether an earlier entry with this key was set aside as corrupt (for plan reasons).
    public func wasQuarantined(_ key: String) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: quarantine.path)) ?? []
        return names.contains { $0.hasPrefix(key) }
    }

    func readManifest(_ entry: URL) -> EntryManifest? {
        guard let data = try? Data(contentsOf: entry.appendingPathComponent("manifest.json")) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(EntryManifest.self, from: data)
    }

    /// Marks an entry as used now (its folder's mtime), for `gc --older-than`.
    func touch(_ key: String) {
        _ = utimes(entryURL(key).path, nil)
    }

    /// A fresh temporary folder for a node to write into; named with our pid so a later run can tell
    /// abandoned folders (dead pid) from those of a run still going.
    func makeTemporary(for key: String) throws -> URL {
        let url = temporary.appendingPathComponent("\(key.prefix(16)).\(getpid()).\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Removes temporary folders left by runs that no longer exist (killed, crashed).
    public func removeAbandonedTemporaries() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) ?? []
        for name in names {
            let parts = name.split(separator: ".")
            guard parts.count >= 3, let pid = Int32(parts[1]) else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                try? FileManager.default.removeItem(at: temporary.appendingPathComponent(name))
            }
        }
    }

    /// Seals a finished temporary folder as the entry for `manifest.key`.
    @discardableResult
    func commit(temporary folder: URL, manifest: EntryManifest) throws -> URL {
        var manifest = manifest
        manifest.files = try Self.listFilesWithHashes(in: folder)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let manifestURL = folder.appendingPathComponent("manifest.json")
        try encoder.encode(manifest).write(to: manifestURL)
        Self.fsync(path: manifestURL.path)
        Self.fsync(path: folder.path)

        let destination = entryURL(manifest.key)
        try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        if rename(folder.path, destination.path) != 0 {
            let code = errno
            guard code == EEXIST || code == ENOTEMPTY else {
                throw FlowError.posix(code, "cannot move finished output into the cache at \(destination.path)")
            }
            if case .valid = lookup(manifest.key) {
                // Another run produced the same key first; outputs are deterministic, keep theirs.
                try? FileManager.default.removeItem(at: folder)
                return destination
            }
            try setAside(manifest.key, reason: "replaced")
            guard rename(folder.path, destination.path) == 0 else {
                throw FlowError.posix(errno, "cannot move finished output into the cache at \(destination.path)")
            }
        }
        Self.fsync(path: destination.deletingLastPathComponent().path)
        return destination
    }

    /// Moves a damaged entry out of `objects/` so that nothing trusts it and the next run recomputes it.
    public func setAside(_ key: String, reason: String) throws {
        let source = entryURL(key)
        let target = quarantine.appendingPathComponent("\(key).\(Int(Date().timeIntervalSince1970)).\(reason)")
        try? FileManager.default.removeItem(at: target)
        guard rename(source.path, target.path) == 0 else {
            throw FlowError.posix(errno, "cannot move damaged entry \(source.path) aside")
        }
    }

    static func listFilesWithHashes(in folder: URL) throws -> [EntryManifest.File] {
        try FileHasher.listFiles(under: folder).filter { $0 != "manifest.json" }.map { relative in
            let url = folder.appendingPathComponent(relative)
            let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.int64Value ?? 0
            return EntryManifest.File(path: relative, size: size, sha256: try Hashing.sha256Hex(fileAt: url))
        }
    }

    static func fsync(path: String) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return }
        _ = Foundation.fsync(fd)
        close(fd)
    }

    // MARK: - Listing, verifying, collecting garbage

    public struct EntryInfo {
        public var key: String
        public var url: URL
        public var manifest: EntryManifest?
        public var bytes: Int64
        public var lastUsed: Date
    }

    public func entries() -> [EntryInfo] {
        var result: [EntryInfo] = []
        let fm = FileManager.default
        for shard in ((try? fm.contentsOfDirectory(atPath: objects.path)) ?? []).sorted() {
            let shardURL = objects.appendingPathComponent(shard)
            for key in ((try? fm.contentsOfDirectory(atPath: shardURL.path)) ?? []).sorted() {
                let url = shardURL.appendingPathComponent(key)
                let manifest = readManifest(url)
                var bytes: Int64 = manifest?.files.reduce(0) { $0 + $1.size } ?? 0
                if manifest == nil {
                    bytes = (try? FileHasher.listFiles(under: url).reduce(Int64(0)) { sum, rel in
                        sum + ((try? fm.attributesOfItem(atPath: url.appendingPathComponent(rel).path)[.size] as? NSNumber)?.int64Value ?? 0)
                    }) ?? 0
                }
                let used = (try? fm.attributesOfItem(atPath: url.path)[.modificationDate] as? Date) ?? Date.distantPast
                result.append(EntryInfo(key: key, url: url, manifest: manifest, bytes: bytes, lastUsed: used))
            }
        }
        return result
    }

    public struct VerifyProblem: CustomStringConvertible {
        public var key: String
        public var node: String?
        public var problems: [String]
        /// Why a damaged entry could not be moved aside (a read-only cache), if it could not.
        public var notSetAside: String?
        public var description: String {
            "\(key) (\(node ?? "unknown node")): " + problems.joined(separator: "; ") + (notSetAside.map { "; not set aside: \($0)" } ?? "")
        }
    }

    /// Re-reads every byte of every entry: SHA-256 of each file against the manifest, and every zarr
    /// chunk's crc32c. Damaged entries are set aside (unless `setAsideDamaged` is false) so the next
    /// run recomputes them.
    public func verify(setAsideDamaged: Bool = true) -> (checked: Int, problems: [VerifyProblem]) {
        var problems: [VerifyProblem] = []
        let all = entries()
        for entry in all {
            var found: [String] = []
            if let manifest = entry.manifest {
                let listed = Set(manifest.files.map(\.path))
                for file in manifest.files {
                    let url = entry.url.appendingPathComponent(file.path)
                    guard FileManager.default.fileExists(atPath: url.path) else { found.append("\(file.path) missing"); continue }
                    do {
                        let digest = try Hashing.sha256Hex(fileAt: url)
                        if digest != file.sha256 { found.append("\(file.path) checksum mismatch") }
                    } catch { found.append("\(file.path) unreadable: \(error)") }
                }
                let present = (try? FileHasher.listFiles(under: entry.url)) ?? []
                for extra in present where extra != "manifest.json" && !listed.contains(extra) {
                    found.append("\(extra) not in manifest")
                }
                for array in Zarr.findArrays(under: entry.url) {
                    do {
                        let reader = try ZarrArrayReader(at: array)
                        for issue in try reader.verify() { found.append("\(issue)") }
                    } catch { found.append("\(error)") }
                }
            } else {
                found.append("manifest.json missing or unreadable")
            }
            if !found.isEmpty {
                var problem = VerifyProblem(key: entry.key, node: entry.manifest?.node, problems: Array(Set(found)).sorted())
                if setAsideDamaged {
                    do { try setAside(entry.key, reason: "verify") }
                    catch { problem.notSetAside = FlowError.plainReason(error) }
                }
                problems.append(problem)
            }
        }
        return (all.count, problems)
    }

    public struct Collection {
        public var removed: [EntryInfo] = []
        /// Entries that should have gone but are held by a live run (locked or leased).
        public var inUse: [EntryInfo] = []
        /// Entries whose removal failed, with the reason (read-only cache, permission denied).
        public var failed: [(entry: EntryInfo, reason: String)] = []
    }

    /// Removes entries: those not in `keep` (when given) and/or not used since `olderThan` (when given).
    /// With both, an entry goes only if it is unreferenced *and* old. Never one that a live run holds:
    /// each entry is removed under its key's lock, after checking the live runs' leases, and moved out
    /// of `objects/` in one rename, so a run that leases it afterwards finds it gone and recomputes it.
    public func collectGarbage(keep: Set<String>?, olderThan: Date?, dryRun: Bool) -> Collection {
        var result = Collection()
        let all = entries()
        var keep = keep
        if var kept = keep {
            // Items used by a kept entry stay too.
            for entry in all where kept.contains(entry.key) { kept.formUnion(entry.manifest?.items ?? []) }
            keep = kept
        }
        let byKey = Dictionary(all.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        func leased() -> Set<String> {
            var keys = locks.leasedKeys(readOnly: dryRun)
            for key in keys { keys.formUnion(byKey[key]?.manifest?.items ?? []) }
            return keys
        }
        var inUse = leased()
        for entry in all {
            let unreferenced = keep.map { !$0.contains(entry.key) }
            let old = olderThan.map { entry.lastUsed < $0 }
            let remove: Bool
            switch (unreferenced, old) {
            case let (u?, o?): remove = u && o
            case let (u?, nil): remove = u
            case let (nil, o?): remove = o
            case (nil, nil): remove = false
            }
            guard remove else { continue }
            if dryRun {
                if inUse.contains(entry.key) || locks.liveOwner(entry.key) != nil { result.inUse.append(entry) } else { result.removed.append(entry) }
                continue
            }
            let held: KeyLocks.Held
            do {
                guard case .acquired(let lock) = try locks.tryLock(entry.key) else { result.inUse.append(entry); continue }
                held = lock
            } catch {
                result.failed.append((entry, FlowError.plainReason(error)))
                continue
            }
            defer { held.release() }
            inUse = leased()  // a run may have leased it since
            if inUse.contains(entry.key) { result.inUse.append(entry); continue }
            let doomed = temporary.appendingPathComponent("\(entry.key.prefix(16)).\(getpid()).gc")
            guard rename(entry.url.path, doomed.path) == 0 else {
                result.failed.append((entry, FlowError.plainReason(errno: errno)))
                continue
            }
            do {
                try FileManager.default.removeItem(at: doomed)
                result.removed.append(entry)
            } catch {
                result.failed.append((entry, "moved out of objects/ to \(doomed.path) but not deleted: \(FlowError.plainReason(error))"))
            }
        }
        if !dryRun, FileManager.default.fileExists(atPath: quarantine.path) {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: quarantine.path)) ?? []
            for name in names { try? FileManager.default.removeItem(at: quarantine.appendingPathComponent(name)) }
        }
        return result
    }
}
