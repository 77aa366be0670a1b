import Foundation
import NICBasics

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Plain POSIX file access: chunk I/O is on the hot path and runs on many threads at
/// once, where Foundation's FileManager adds overhead (and, on Linux, has had races in
/// recursive directory creation).
enum FileIO {
    private static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// The whole file, or nil when it does not exist.
    static func read(_ path: String) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT { return nil }
            throw ZarrError(path: path, message: "cannot open: \(errorText(code))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ZarrError(path: path, message: "cannot stat: \(errorText(errno))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw ZarrError(path: path, message: "expected a regular file") }
        let size = Int(info.st_size)
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            var done = 0
            while done < size {
                let n = posixRead(fd, buffer.baseAddress! + done, size - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    break
                }
                if n == 0 { break }  // shrank meanwhile: the short content fails decoding later
                done += n
            }
            count = done
        }
        if failure != 0 { throw ZarrError(path: path, message: "read failed: \(errorText(failure))") }
        return bytes
    }

    /// Writes to a temporary name in the same folder and renames it into place, so a
    /// reader sees either no file or the whole file, never a prefix. No fsync: this
    /// guards against concurrent readers, not power loss, and syncing every chunk is slow.
    static func writeAtomically(_ path: String, _ bytes: UnsafeRawBufferPointer) throws {
        // Unique per call so two writers of the same file never share a temporary.
        let tmp = "\(path).\(getpid())-\(nextTemporaryNumber()).tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ZarrError(path: tmp, message: "cannot create: \(errorText(errno))") }
        var done = 0
        while done < bytes.count {
            let n = posixWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                unlink(tmp)
                throw ZarrError(path: tmp, message: "write failed: \(errorText(code))")
            }
            done += n
        }
        guard close(fd) == 0 else {
            let code = errno
            unlink(tmp)
            throw ZarrError(path: tmp, message: "close failed: \(errorText(code))")
        }
        guard rename(tmp, path) == 0 else {
            let code = errno
            unlink(tmp)
            throw ZarrError(path: path, message: "cannot rename temporary file into place: \(errorText(code))")
        }
    }

    static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAtomically(path, $0) }
    }

    /// mkdir -p that tolerates other threads or processes creating the same folders.
    static func makeDirectories(_ path: String) throws {
        if mkdir(path, 0o755) == 0 { return }
        switch errno {
        case EEXIST:
            if isDirectory(path) { return }
            throw ZarrError(path: path, message: "exists but is not a folder")
        case ENOENT:
            let parent = (path as NSString).deletingLastPathComponent
            guard !parent.isEmpty, parent != path else {
                throw ZarrError(path: path, message: "cannot create folder: \(errorText(ENOENT))")
            }
            try makeDirectories(parent)
            if mkdir(path, 0o755) == 0 || (errno == EEXIST && isDirectory(path)) { return }
            throw ZarrError(path: path, message: "cannot create folder: \(errorText(errno))")
        default:
            throw ZarrError(path: path, message: "cannot create folder: \(errorText(errno))")
        }
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    private static let counter = Locked<UInt64>(0)

    private static func nextTemporaryNumber() -> UInt64 {
        counter.withLock { count in
            count &+= 1
            return count
        }
    }
}

// `read`/`write` are shadowed inside `FileIO` by its own static methods.
@inline(__always) private func posixRead(_ fd: Int32, _ buf: UnsafeMutableRawPointer, _ n: Int) -> Int {
    read(fd, buf, n)
}

@inline(__always) private func posixWrite(_ fd: Int32, _ buf: UnsafeRawPointer, _ n: Int) -> Int {
    write(fd, buf, n)
}
