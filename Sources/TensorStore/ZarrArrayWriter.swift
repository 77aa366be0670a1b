import Foundation
import NICBasics

/// Creates a zarr v3 array and writes its chunks.
///
/// Chunks are independent files, so `writeChunk` may be called for different chunks from
/// several threads at once, and only one chunk is in memory per call: arrays larger than
/// memory can be produced chunk by chunk. Chunks never written read back as the fill value.
public final class ZarrArrayWriter: Sendable {
    public let url: URL
    public let metadata: ZarrArrayMetadata

    private let root: String
    private let codec: ChunkCodec
    private let fillElement: [UInt8]
    // Folders known to exist, so that most chunk writes skip the mkdir system calls.
    private let knownDirectories = Locked<Set<String>>([])

    /// Creates the folder and its zarr.json (bytes -> zstd(compressionLevel) -> crc32c).
    /// Re-creating an array at a path that already holds one deletes its old chunks,
    /// because stale chunks of another shape would otherwise read back as data.
    public convenience init(
        at url: URL, shape: [Int], chunkShape: [Int], dataType: ZarrDataType, fillValue: Double = 0,
        compressionLevel: Int = 3, attributes: [String: ZarrJSON] = [:]
    ) throws {
        try self.init(
            at: url,
            metadata: ZarrArrayMetadata(
                shape: shape, chunkShape: chunkShape, dataType: dataType, fillValue: fillValue,
                compressionLevel: compressionLevel, attributes: attributes))
    }

    /// Creates an array with explicit metadata (any codec list the reader supports).
    public init(at url: URL, metadata: ZarrArrayMetadata) throws {
        self.url = url
        self.metadata = metadata
        root = url.path
        try metadata.validate(path: url.appendingPathComponent("zarr.json").path)
        codec = ChunkCodec(metadata)
        fillElement = try metadata.dataType.elementBytes(of: metadata.fillValue)

        try FileIO.makeDirectories(root)
        let metadataPath = url.appendingPathComponent("zarr.json").path
        if FileIO.exists(metadataPath) {
            let oldChunks = url.appendingPathComponent("c").path
            if FileIO.exists(oldChunks) {
                do {
                    try FileManager.default.removeItem(atPath: oldChunks)
                } catch {
                    throw ZarrError(path: oldChunks, message: "cannot remove the chunks of the previous array: \(error)")
                }
            }
        }
        try FileIO.writeAtomically(metadataPath, Array((metadata.json.serialized() + "\n").utf8))
        knownDirectories.withLock { _ = $0.insert(root) }
    }

    public var chunkCounts: [Int] { metadata.chunkCounts }

    /// The part of the array a chunk covers (`extent` clipped at the array's edges).
    public func chunkRegion(_ chunkIndex: [Int]) -> (origin: [Int], extent: [Int]) {
        metadata.chunkRegion(chunkIndex)
    }

    public func chunkURL(_ chunkIndex: [Int]) -> URL {
        url.appendingPathComponent(metadata.chunkKey(chunkIndex))
    }

    /// Writes one full chunk: `chunkShape` elements in C order, native (little-endian)
    /// element bytes. At the array's edges the caller pads with the fill value (or
    /// anything: zarr readers ignore the padding).
    public func writeChunk(at chunkIndex: [Int], bytes: UnsafeRawBufferPointer) throws {
        try metadata.checkChunkIndex(chunkIndex, path: root)
        let path = chunkURL(chunkIndex).path
        guard bytes.count == metadata.chunkByteCount else {
            throw ZarrError(
                path: path,
                message: "chunk \(chunkIndex) needs \(metadata.chunkByteCount) bytes (\(metadata.chunkShape) × "
                    + "\(metadata.dataType.rawValue)), got \(bytes.count)")
        }
        let encoded: [UInt8]
        do {
            encoded = try codec.encode(bytes)
        } catch let error as ZarrError {
            throw error.at(path)
        }
        try ensureDirectory(String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]))
        try FileIO.writeAtomically(path, encoded)
    }

    public func writeChunk(at chunkIndex: [Int], bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeChunk(at: chunkIndex, bytes: $0) }
    }

    /// Typed form of `writeChunk(at:bytes:)`; `T` must match the array's data type.
    public func writeChunk<T: ZarrScalar>(at chunkIndex: [Int], values: [T]) throws {
        try checkType(T.self)
        try values.withUnsafeBytes { try writeChunk(at: chunkIndex, bytes: $0) }
    }

    /// Writes the whole array from C-order values, splitting it into chunks (padding the
    /// edge chunks with the fill value). Chunks are encoded in parallel.
    public func write<T: ZarrScalar>(_ values: [T]) throws {
        try checkType(T.self)
        guard values.count == metadata.elementCount else {
            throw ZarrError(
                path: root, message: "write needs \(metadata.elementCount) values for shape \(metadata.shape), got \(values.count)")
        }
        try values.withUnsafeBytes { try writeAll($0) }
    }

    /// Untyped form of `write(_:)`: the whole array's native element bytes in C order.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        let m = metadata
        let elementSize = m.dataType.byteSize
        guard bytes.count == m.elementCount * elementSize else {
            throw ZarrError(
                path: root, message: "write needs \(m.elementCount * elementSize) bytes for shape \(m.shape), got \(bytes.count)")
        }
        let count = m.chunkCount
        guard count > 0, m.elementCount > 0 else { return }
        let failures = FirstError()
        let shared = DisjointAccess(bytes)
        DispatchQueue.concurrentPerform(iterations: count) { linear in
            if failures.hasError { return }
            let bytes = shared.pointer
            let index = m.chunkIndex(linear: linear)
            let (origin, extent) = m.chunkRegion(index)
            let size = m.chunkByteCount
            // Left uninitialized where the rows below cover the whole chunk; only edge
            // chunks need the fill value first.
            let chunk = [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                let out = UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[0..<size]))
                if extent != m.chunkShape { ChunkLayout.fill(out, with: fillElement) }
                ChunkLayout.forEachRow(arrayShape: m.shape, chunkShape: m.chunkShape, origin: origin, extent: extent) {
                    arrayOffset, chunkOffset, rowLength in
                    _ = memcpy(
                        out.baseAddress! + chunkOffset * elementSize, bytes.baseAddress! + arrayOffset * elementSize,
                        rowLength * elementSize)
                }
                count = size
            }
            do {
                try writeChunk(at: index, bytes: chunk)
            } catch {
                failures.record(error)
            }
        }
        try failures.rethrow()
    }

    private func checkType<T: ZarrScalar>(_: T.Type) throws {
        guard T.zarrDataType == metadata.dataType else {
            throw ZarrError(
                path: root,
                message: "array has data_type \(metadata.dataType.rawValue), cannot write \(T.self) (\(T.zarrDataType.rawValue))")
        }
    }

    private func ensureDirectory(_ path: String) throws {
        if knownDirectories.withLock({ $0.contains(path) }) { return }
        try FileIO.makeDirectories(path)
        knownDirectories.withLock { _ = $0.insert(path) }
    }
}
