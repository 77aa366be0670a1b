import Crypto
import Foundation
import NICBasics

enum Hashing {
    static func sha256Hex(_ string: String) -> String {
        hex(SHA256.hash(data: Data(string.utf8)))
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    /// Streams the file in 4 MiB blocks so gigapixel slides never sit in memory.
    static func sha256Hex(fileAt url: URL) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: url.path) else {
            throw FlowError("cannot open \(url.path) for hashing")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while true {
            let block = try handle.read(upToCount: 4 << 20) ?? Data()
            if block.isEmpty { break }
            hasher.update(data: block)
        }
        return hex(hasher.finalize())
    }
}

/// An error from the engine itself (I/O, cache), as opposed to one in a spec.
public struct FlowError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Content hashes of external files, remembered by (path, size, mtime, inode) so that unchanged large
/// files are not read again; any change to those four re-reads the file (never trusts mtime alone).
public final class FileHasher: Sendable {
    struct Entry: Codable {
        var size: Int64
        var mtimeNanoseconds: Int64
        var inode: UInt64
        var sha256: String
    }

    private let stateFile: URL?
    /// The state file is shared by every process on the cache: saving merges under a lock.
    private let locks: KeyLocks?
    /// Nodes hash files from several workers.
    private let state: Locked<State>

    private struct State {
        var entries: [String: Entry] = [:]
        var dirty = false
        var filesRead = 0
    }

    /// How many files were actually read (tests use it to prove the state file works).
    public var filesRead: Int { state.withLock { $0.filesRead } }

    public init(stateFile: URL?, locks: KeyLocks? = nil) {
        self.stateFile = stateFile
        self.locks = locks
        var known = State()
        if let stateFile, let data = try? Data(contentsOf: stateFile),
           let decoded = try? JSONDecoder().decode([String: Entry].self, from: data) {
            known.entries = decoded
        }
        state = Locked(known)
    }

    public func hash(fileAt url: URL) throws -> String {
        var st = stat()
        guard stat(url.path, &st) == 0 else { throw FlowError.posix(errno, "cannot read \(url.path)") }
        // A FIFO would block for ever and a device never end: only regular files have content hashes.
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FlowError("\(url.path) is not a regular file (a FIFO, device or socket)") }
        let size = Int64(st.st_size)
        let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        let inode = UInt64(st.st_ino)
        let remembered = state.withLock { $0.entries[url.path] }
        if let known = remembered, known.size == size, known.mtimeNanoseconds == mtime, known.inode == inode {
            return known.sha256
        }
        // Hashed outside the lock: a gigabyte slide must not hold up the other workers.
        let digest = try Hashing.sha256Hex(fileAt: url)
        state.withLock { s in
            s.entries[url.path] = Entry(size: size, mtimeNanoseconds: mtime, inode: inode, sha256: digest)
            s.dirty = true
            s.filesRead += 1
        }
        return digest
    }

    /// A folder's hash covers the relative path and content of every non-hidden file below it.
    public func hash(directoryAt url: URL) throws -> String {
        let files = try Self.listFiles(under: url)
        var lines = ""
        for relative in files {
            lines += relative + "\u{0}" + (try hash(fileAt: url.appendingPathComponent(relative))) + "\n"
        }
        return Hashing.sha256Hex(lines)
    }

    /// Sorted relative paths of regular files below `url`, skipping hidden files and folders.
    public static func listFiles(under url: URL) throws -> [String] {
        guard let enumerator = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey], options: [.skipsHiddenFiles]) else {
            throw FlowError("cannot list folder \(url.path)")
        }
        let basePath = url.standardizedFileURL.resolvingSymlinksInPath().path
        var result: [String] = []
        for case let file as URL in enumerator {
            guard (try? file.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            let path = file.standardizedFileURL.resolvingSymlinksInPath().path
            result.append(path.hasPrefix(basePath + "/") ? String(path.dropFirst(basePath.count + 1)) : file.lastPathComponent)
        }
        return result.sorted()
    }

    /// Writes the state file if anything was learned (atomically: a crash keeps the old file). Under
    /// the state file's lock, what other processes saved meanwhile is read back and kept, so two runs
    /// on one cache never lose each other's hashes.
    public func save() {
        state.withLock { s in
            guard s.dirty, let stateFile else { return }
            let held = try? locks?.lock("file-hashes")
            defer { held?.release() }
            var merged = (try? Data(contentsOf: stateFile)).flatMap { try? JSONDecoder().decode([String: Entry].self, from: $0) } ?? [:]
            merged.merge(s.entries) { _, mine in mine }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            guard let data = try? encoder.encode(merged) else { return }
            try? FileManager.default.createDirectory(at: stateFile.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? data.write(to: stateFile, options: .atomic)
            s.dirty = false
        }
    }
}
