import Foundation
import NICBasics

/// Reads a zarr v3 array (bytes codec, optionally zstd and crc32c, in any order after bytes).
/// Safe to use from several threads at once.
public final class ZarrArrayReader: Sendable {
    public let url: URL
    public let metadata: ZarrArrayMetadata

    private let root: String
    private let codec: ChunkCodec
    private let fillElement: [UInt8]

    /// Parses `url/zarr.json`; errors say what was found instead of a zarr v3 array.
    public init(at url: URL) throws {
        self.url = url
        root = url.path
        let metadataPath = url.appendingPathComponent("zarr.json").path
        guard let raw = try FileIO.read(metadataPath) else {
            if FileIO.exists(url.appendingPathComponent(".zarray").path) {
                throw ZarrError(path: root, message: "is a zarr v2 array; only zarr v3 (zarr.json) is supported")
            }
            throw ZarrError(path: metadataPath, message: "not found; expected the zarr.json of a zarr v3 array")
        }
        let json: ZarrJSON
        do {
            json = try ZarrJSON.parse(bytes: raw)
        } catch let error as ZarrError {
            throw error.at(metadataPath)
        }
        metadata = try ZarrArrayMetadata.parse(json, path: metadataPath)
        codec = ChunkCodec(metadata)
        fillElement = try metadata.dataType.elementBytes(of: metadata.fillValue)
    }

    public var chunkCounts: [Int] { metadata.chunkCounts }

    public func chunkRegion(_ chunkIndex: [Int]) -> (origin: [Int], extent: [Int]) {
        metadata.chunkRegion(chunkIndex)
    }

    public func chunkURL(_ chunkIndex: [Int]) -> URL {
        url.appendingPathComponent(metadata.chunkKey(chunkIndex))
    }

    /// Whether the chunk's file exists (an absent chunk reads as the fill value).
    public func hasChunk(at chunkIndex: [Int]) -> Bool {
        FileIO.exists(chunkURL(chunkIndex).path)
    }

    /// The full decoded chunk (`chunkShape` elements, C order, little-endian), including
    /// the padding of edge chunks; the fill value when the chunk file is absent.
    public func readChunkBytes(at chunkIndex: [Int]) throws -> [UInt8] {
        try metadata.checkChunkIndex(chunkIndex, path: root)
        if let bytes = try readStoredChunk(chunkIndex) { return bytes }
        let size = metadata.chunkByteCount
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            ChunkLayout.fill(UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[0..<size])), with: fillElement)
            count = size
        }
    }

    public func readChunk<T: ZarrScalar>(at chunkIndex: [Int], as type: T.Type = T.self) throws -> [T] {
        try checkType(T.self)
        let bytes = try readChunkBytes(at: chunkIndex)
        return Self.values(bytes, as: T.self)
    }

    /// The whole array in C order. Chunks are decoded in parallel.
    public func read<T: ZarrScalar>(as type: T.Type = T.self) throws -> [T] {
        try checkType(T.self)
        let count = metadata.elementCount
        var failure: Error?
        let values = [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            do {
                try readAll(into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[0..<count])))
            } catch {
                failure = error
            }
            // Every byte was written (fill or chunk data), and ZarrScalar types are trivial.
            initialized = count
        }
        if let failure { throw failure }
        return values
    }

    /// The whole array as little-endian element bytes in C order (works for any data type).
    public func readBytes() throws -> [UInt8] {
        let size = metadata.elementCount * metadata.dataType.byteSize
        var failure: Error?
        let bytes = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            do {
                try readAll(into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[0..<size])))
            } catch {
                failure = error
            }
            initialized = size
        }
        if let failure { throw failure }
        return bytes
    }

    /// Decodes every present chunk, checking checksums and sizes, and returns the problems
    /// found (empty when the array is sound). Also reports files in the chunk folder that do
    /// not belong to the grid. Throws only if the folder cannot be listed.
    public func verify() throws -> [ZarrError] {
        let m = metadata
        let problems = Locked<[ZarrError]>([])
        DispatchQueue.concurrentPerform(iterations: m.chunkCount) { linear in
            do {
                _ = try readStoredChunk(m.chunkIndex(linear: linear))
            } catch let error as ZarrError {
                problems.withLock { $0.append(error) }
            } catch {
                let problem = ZarrError(path: chunkURL(m.chunkIndex(linear: linear)).path, message: "\(error)")
                problems.withLock { $0.append(problem) }
            }
        }
        var found = problems.current.sorted { $0.path < $1.path }
        if case .default(separator: "/") = m.chunkKeyEncoding {
            found += try strayChunkFiles()
        }
        return found
    }

    // MARK: - Internals

    /// The decoded chunk, or nil when its file is absent. Errors name the chunk file.
    private func readStoredChunk(_ chunkIndex: [Int]) throws -> [UInt8]? {
        let path = chunkURL(chunkIndex).path
        guard let stored = try FileIO.read(path) else { return nil }
        do {
            return try codec.decode(stored)
        } catch let error as ZarrError {
            throw error.at(path)
        }
    }

    /// Fills `out` with the whole array: each present chunk's region from its data, each
    /// missing chunk's region with the fill value. Every byte is written exactly once, which
    /// saves a full pass over memory compared with pre-filling.
    private func readAll(into out: UnsafeMutableRawBufferPointer) throws {
        let m = metadata
        guard m.elementCount > 0 else { return }
        let elementSize = m.dataType.byteSize
        // One chunk row of fill elements, the longest row a region can have.
        let rowBytes = (m.chunkShape.last ?? 1) * elementSize
        let fillRow = [UInt8](unsafeUninitializedCapacity: rowBytes) { buffer, count in
            ChunkLayout.fill(UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[0..<rowBytes])), with: fillElement)
            count = rowBytes
        }
        let failures = FirstError()
        let shared = DisjointAccess(out)
        DispatchQueue.concurrentPerform(iterations: m.chunkCount) { linear in
            if failures.hasError { return }
            let out = shared.pointer
            let index = m.chunkIndex(linear: linear)
            let chunk: [UInt8]?
            do {
                chunk = try readStoredChunk(index)
            } catch {
                failures.record(error)
                return
            }
            let (origin, extent) = m.chunkRegion(index)
            let source = chunk ?? fillRow
            source.withUnsafeBytes { source in
                ChunkLayout.forEachRow(arrayShape: m.shape, chunkShape: m.chunkShape, origin: origin, extent: extent) {
                    arrayOffset, chunkOffset, rowLength in
                    // Regions of different chunks are disjoint, so parallel writes never overlap.
                    _ = memcpy(
                        out.baseAddress! + arrayOffset * elementSize,
                        source.baseAddress! + (chunk == nil ? 0 : chunkOffset * elementSize),
                        rowLength * elementSize)
                }
            }
        }
        try failures.rethrow()
    }

    /// Files under `c/` whose names are not chunk keys of this grid (left-over temporaries
    /// of an interrupted writer, chunks of a differently shaped array, ...).
    private func strayChunkFiles() throws -> [ZarrError] {
        let chunkRoot = url.appendingPathComponent("c")
        guard FileIO.exists(chunkRoot.path) else { return [] }
        if metadata.rank == 0 { return [] }
        guard let enumerator = FileManager.default.enumerator(atPath: chunkRoot.path) else {
            throw ZarrError(path: chunkRoot.path, message: "cannot list the chunk folder")
        }
        let counts = metadata.chunkCounts
        var strays: [ZarrError] = []
        while let relative = enumerator.nextObject() as? String {
            let full = chunkRoot.appendingPathComponent(relative).path
            if FileIO.isDirectory(full) { continue }
            let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
            let indices = parts.compactMap { Int($0) }
            let valid = indices.count == parts.count && indices.count == counts.count
                && zip(indices, counts).allSatisfy { $0 >= 0 && $0 < $1 }
            if !valid {
                strays.append(ZarrError(path: full, message: "file is not a chunk of the \(counts) chunk grid"))
            }
        }
        return strays.sorted { $0.path < $1.path }
    }

    private func checkType<T: ZarrScalar>(_: T.Type) throws {
        guard T.zarrDataType == metadata.dataType else {
            throw ZarrError(
                path: root,
                message: "array has data_type \(metadata.dataType.rawValue), cannot read it as \(T.self) (\(T.zarrDataType.rawValue))")
        }
    }

    static func values<T>(_ bytes: [UInt8], as: T.Type) -> [T] {
        let count = bytes.count / MemoryLayout<T>.stride
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 {
                bytes.withUnsafeBytes { source in
                    _ = memcpy(buffer.baseAddress!, source.baseAddress!, count * MemoryLayout<T>.stride)
                }
            }
            initialized = count
        }
    }
}
