import CZstd
import Foundation
import NICBasics

/// One-shot zstd frames (the zarr v3 `zstd` codec).
public enum Zstd {
    /// `checksum` adds zstd's own 32-bit frame checksum (the zarr codec's "checksum" option).
    public static func compress(_ bytes: UnsafeRawBufferPointer, level: Int, checksum: Bool = false) throws -> [UInt8] {
        let bound = ZSTD_compressBound(bytes.count)
        let context = compressionContexts.take()
        defer { compressionContexts.give(context) }
        var failure: String?
        let out = [UInt8](unsafeUninitializedCapacity: bound) { buffer, count in
            // Parameters are set per call because pooled contexts are shared across levels.
            ZSTD_CCtx_reset(context, ZSTD_reset_session_and_parameters)
            ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(clamping: level))
            // The decompressed size goes into the frame header so other readers can size
            // their buffers (zarr-python's numcodecs does the same).
            ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1)
            ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, checksum ? 1 : 0)
            let r = ZSTD_compress2(context, buffer.baseAddress, bound, bytes.baseAddress, bytes.count)
            count = Self.byteCount(r, failure: &failure)
        }
        if let failure { throw ZarrError(path: "", message: "zstd compression failed: \(failure)") }
        return out
    }

    /// A zstd call's result: the bytes it wrote, or 0 with the library's name for its error in `failure`.
    private static func byteCount(_ result: Int, failure: inout String?) -> Int {
        guard ZSTD_isError(result) != 0 else { return result }
        failure = String(cString: ZSTD_getErrorName(result))
        return 0
    }

    /// Decodes one or more concatenated frames that must add up to exactly `expectedSize`
    /// bytes; any other size is an error, since a chunk's size is fixed by its metadata.
    public static func decompress(_ bytes: UnsafeRawBufferPointer, expectedSize: Int) throws -> [UInt8] {
        let context = decompressionContexts.take()
        defer { decompressionContexts.give(context) }
        var failure: String?
        // One spare byte tells "too long" apart from "exactly right".
        let capacity = expectedSize + 1
        let out = [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            let r = ZSTD_decompressDCtx(context, buffer.baseAddress, capacity, bytes.baseAddress, bytes.count)
            count = Self.byteCount(r, failure: &failure)
        }
        if let failure { throw ZarrError(path: "", message: "zstd decompression to \(expectedSize) bytes failed: \(failure)") }
        guard out.count == expectedSize else {
            throw ZarrError(
                path: "", message: "zstd data decodes to \(out.count) bytes, expected \(expectedSize)")
        }
        return out
    }

    public static func compress(_ bytes: [UInt8], level: Int, checksum: Bool = false) throws -> [UInt8] {
        try bytes.withUnsafeBytes { try compress($0, level: level, checksum: checksum) }
    }

    public static func decompress(_ bytes: [UInt8], expectedSize: Int) throws -> [UInt8] {
        try bytes.withUnsafeBytes { try decompress($0, expectedSize: expectedSize) }
    }

    // Contexts are reused because creating one per chunk costs allocations (hundreds of KB
    // at higher levels) that can dominate for small chunks.
    private static let compressionContexts = ContextPool(
        create: { ZSTD_createCCtx() }, destroy: { ZSTD_freeCCtx($0) })
    private static let decompressionContexts = ContextPool(
        create: { ZSTD_createDCtx() }, destroy: { ZSTD_freeDCtx($0) })
}

/// A lock-protected free list, so concurrent chunk writers each get a context of their own.
private final class ContextPool<Context>: @unchecked Sendable {  // contexts move between threads only through the locked list
    private let free = Locked<[Context]>([])
    private let create: () -> Context?
    private let destroy: (Context) -> Void
    private let maxKept = 16

    init(create: @escaping () -> Context?, destroy: @escaping (Context) -> Void) {
        self.create = create
        self.destroy = destroy
    }

    func take() -> Context {
        if let c = free.withLock({ $0.popLast() }) { return c }
        guard let c = create() else { fatalError("zstd: out of memory creating a context") }
        return c
    }

    func give(_ context: Context) {
        let kept = free.withLock { free in
            guard free.count < maxKept else { return false }
            free.append(context)
            return true
        }
        if !kept { destroy(context) }
    }
}
