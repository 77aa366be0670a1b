import Foundation

/// Foundation and POSIX failures in words a user acts on ("the disk is full", "read-only"), in place
/// of `NSCocoaErrorDomain Code=640` or a bare errno.
extension FlowError {
    /// `context: what errno means`, e.g. "cannot write run.json: no space left on the device".
    public static func posix(_ code: Int32, _ context: String) -> FlowError {
        FlowError("\(context): \(plainReason(errno: code))")
    }

    /// Wraps any error from Foundation (or already plain) with what was being done.
    public static func wrapping(_ error: Error, _ context: String) -> FlowError {
        FlowError("\(context): \(plainReason(error, context: context))")
    }

    public static func plainReason(errno code: Int32) -> String {
        switch code {
        case ENOSPC: return "no space left on the device"
        case EDQUOT: return "disk quota exceeded"
        case EROFS: return "the file system is read-only"
        case EACCES, EPERM: return "permission denied"
        case ENOENT: return "no such file or folder"
        case ENOTDIR: return "a part of the path is not a folder"
        case EISDIR: return "it is a folder, not a file"
        case EEXIST: return "it already exists"
        case EMFILE, ENFILE: return "too many open files"
        case EIO: return "input/output error (a failing disk or network file system)"
        case ENAMETOOLONG: return "the name is too long"
        default: return String(cString: strerror(code))
        }
    }

    /// The sentence for an error of any kind: POSIX codes behind Foundation errors are translated,
    /// with the file they happened to when Foundation says.
    /// `context`: the text it will follow, so that a path it already names is not repeated.
    public static func plainReason(_ error: Error, context: String = "") -> String {
        if let flow = error as? FlowError { return flow.message }
        let ns = error as NSError
        guard ns.domain == NSPOSIXErrorDomain || ns.domain == NSCocoaErrorDomain else { return "\(error)" }
        let reason = foundationReason(ns, error)
        if let path = ns.userInfo[NSFilePathErrorKey] as? String ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path, !reason.contains(path), !context.contains(path) {
            return "\(path): \(reason)"
        }
        return reason
    }

    private static func foundationReason(_ ns: NSError, _ error: Error) -> String {
        if ns.domain == NSPOSIXErrorDomain { return plainReason(errno: Int32(ns.code)) }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return plainReason(errno: Int32(underlying.code))
        }
        if ns.domain == NSCocoaErrorDomain {
            switch ns.code {
            case NSFileWriteOutOfSpaceError: return plainReason(errno: ENOSPC)
            case NSFileWriteVolumeReadOnlyError: return plainReason(errno: EROFS)
            case NSFileWriteNoPermissionError, NSFileReadNoPermissionError: return plainReason(errno: EACCES)
            case NSFileNoSuchFileError, NSFileReadNoSuchFileError: return plainReason(errno: ENOENT)
            case NSFileReadCorruptFileError: return "the file is damaged or not in the expected format"
            case NSFileReadInapplicableStringEncodingError: return "the file is not UTF-8 text"
            default: break
            }
        }
        if error is DecodingError { return "not in the expected format (\(error))" }
        return "\(error)"
    }
}
