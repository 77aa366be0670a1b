import CZstd

/// The codec pipeline of one array: turns a chunk's native bytes into the stored file
/// content and back, following the order of the `codecs` list.
struct ChunkCodec: Sendable {
    let dataType: ZarrDataType
    let codecs: [ZarrCodec]
    /// Decoded chunk size in bytes.
    let chunkByteCount: Int

    init(_ metadata: ZarrArrayMetadata) {
        dataType = metadata.dataType
        codecs = metadata.codecs
        chunkByteCount = metadata.chunkByteCount
    }

    private var swapsBytes: Bool {
        if case .bytes(.big) = codecs.first, dataType.byteSize > 1 { return true }
        return false
    }

    func encode(_ chunk: UnsafeRawBufferPointer) throws -> [UInt8] {
        // invariant: the one caller (ZarrArrayWriter.writeChunk) throws a located ZarrError on a wrong size first
        precondition(chunk.count == chunkByteCount)
        var current: [UInt8]? = swapsBytes ? Self.byteSwapped(chunk, elementSize: dataType.byteSize) : nil
        for codec in codecs.dropFirst() {
            let input = current
            current = try Self.withBytes(input, orElse: chunk) { bytes in
                switch codec {
                case .zstd(let level, let checksum):
                    return try Zstd.compress(bytes, level: level, checksum: checksum)
                case .crc32c:
                    var out = [UInt8](bytes)
                    withUnsafeBytes(of: CRC32C.checksum(bytes).littleEndian) { out.append(contentsOf: $0) }
                    return out
                case .bytes:
                    preconditionFailure("validated: bytes codec comes first only")
                }
            }
        }
        return current ?? [UInt8](chunk)
    }

    /// Errors carry no path; callers attribute them to the chunk file.
    func decode(_ stored: [UInt8]) throws -> [UInt8] {
        // The size each bytes->bytes codec saw when encoding, where it is knowable
        // without decoding (zstd output size is not).
        var inputSizes: [Int?] = []
        var size: Int? = chunkByteCount
        for codec in codecs.dropFirst() {
            inputSizes.append(size)
            switch codec {
            case .crc32c: size = size.map { $0 + 4 }
            default: size = nil
            }
        }

        var current = stored
        for (position, codec) in codecs.dropFirst().enumerated().reversed() {
            switch codec {
            case .crc32c:
                guard current.count >= 4 else {
                    throw ZarrError(path: "", message: "chunk is \(current.count) bytes, too short to hold a crc32c checksum")
                }
                let body = current.count - 4
                let stored = UInt32(current[body]) | UInt32(current[body + 1]) << 8
                    | UInt32(current[body + 2]) << 16 | UInt32(current[body + 3]) << 24
                let computed = current.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<body])) }
                guard stored == computed else {
                    throw ZarrError(
                        path: "",
                        message: "crc32c checksum mismatch (stored \(hex(stored)), computed \(hex(computed))): the chunk is corrupt")
                }
                current.removeLast(4)
            case .zstd:
                let expected = try inputSizes[position] ?? Self.frameContentSize(current)
                current = try Zstd.decompress(current, expectedSize: expected)
            case .bytes:
                preconditionFailure("validated: bytes codec comes first only")
            }
        }
        guard current.count == chunkByteCount else {
            throw ZarrError(path: "", message: "chunk decodes to \(current.count) bytes, expected \(chunkByteCount)")
        }
        if swapsBytes {
            current = current.withUnsafeBytes { Self.byteSwapped($0, elementSize: dataType.byteSize) }
        }
        return current
    }

    private static func withBytes<R>(
        _ array: [UInt8]?, orElse fallback: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        if let array { return try array.withUnsafeBytes(body) }
        return try body(fallback)
    }

    private static func frameContentSize(_ frame: [UInt8]) throws -> Int {
        let size = frame.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        guard size != ZSTD_CONTENTSIZE_UNKNOWN, size != ZSTD_CONTENTSIZE_ERROR, let n = Int(exactly: size) else {
            throw ZarrError(path: "", message: "zstd frame does not record its decompressed size")
        }
        return n
    }

    static func byteSwapped(_ bytes: UnsafeRawBufferPointer, elementSize: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: bytes.count) { out, count in
            var i = 0
            while i < bytes.count {
                for k in 0..<elementSize { out[i + k] = bytes[i + elementSize - 1 - k] }
                i += elementSize
            }
            count = bytes.count
        }
    }
}

private func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}
