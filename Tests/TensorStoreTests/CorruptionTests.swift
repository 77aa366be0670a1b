import XCTest

@testable import TensorStore

final class CorruptionTests: TemporaryDirectoryTestCase {
    private func makeArray() throws -> URL {
        let url = tmp.appendingPathComponent("arr")
        let writer = try ZarrArrayWriter(at: url, shape: [6, 6], chunkShape: [3, 3], dataType: .float32)
        try writer.write((0..<36).map { Float($0) })
        return url
    }

    private func modify(_ url: URL, _ change: (inout [UInt8]) -> Void) throws {
        var bytes = [UInt8](try Data(contentsOf: url))
        change(&bytes)
        try Data(bytes).write(to: url)
    }

    func testFlippedByteIsDetectedByVerifyAndRead() throws {
        let url = try makeArray()
        let chunk = url.appendingPathComponent("c/1/0")
        try modify(chunk) { $0[$0.count / 2] ^= 0x40 }

        let reader = try ZarrArrayReader(at: url)
        let problems = try reader.verify()
        XCTAssertEqual(problems.count, 1)
        XCTAssertEqual(problems.first?.path, chunk.path)
        XCTAssertTrue(problems.first?.message.contains("crc32c") ?? false, "\(problems)")

        assertZarrError([chunk.path, "crc32c checksum mismatch"]) { try reader.read(as: Float.self) }
        assertZarrError([chunk.path, "crc32c"]) { try reader.readChunkBytes(at: [1, 0]) }
        // Other chunks stay readable.
        XCTAssertEqual(try reader.readChunk(at: [0, 0], as: Float.self), [0, 1, 2, 6, 7, 8, 12, 13, 14])
    }

    func testFlippedChecksumByteIsDetected() throws {
        let url = try makeArray()
        let chunk = url.appendingPathComponent("c/0/1")
        try modify(chunk) { $0[$0.count - 1] ^= 0x01 }
        XCTAssertEqual(try ZarrArrayReader(at: url).verify().map(\.path), [chunk.path])
    }

    func testTruncatedAndEmptyChunksAreDetected() throws {
        let url = try makeArray()
        let truncated = url.appendingPathComponent("c/0/0")
        let empty = url.appendingPathComponent("c/1/1")
        try modify(truncated) { $0.removeLast(3) }
        try modify(empty) { $0.removeAll() }
        let problems = try ZarrArrayReader(at: url).verify()
        XCTAssertEqual(problems.map(\.path), [truncated.path, empty.path])
    }

    func testValidChecksumButWrongSizeIsDetected() throws {
        let url = try makeArray()
        let chunk = url.appendingPathComponent("c/0/0")
        // A well-formed chunk of the wrong size: correct crc, correct zstd, 8 floats instead of 9.
        var frame = try Zstd.compress([UInt8](repeating: 0, count: 32), level: 3)
        withUnsafeBytes(of: CRC32C.checksum(frame).littleEndian) { frame.append(contentsOf: $0) }
        try Data(frame).write(to: chunk)
        let problems = try ZarrArrayReader(at: url).verify()
        XCTAssertEqual(problems.map(\.path), [chunk.path])
        XCTAssertTrue(problems[0].message.contains("expected 36"), problems[0].message)
    }

    func testStrayFilesAreReported() throws {
        let url = try makeArray()
        let stray = url.appendingPathComponent("c/0/0.123-1.tmp")
        let outside = url.appendingPathComponent("c/5/0")
        try Data([1]).write(to: stray)
        try FileManager.default.createDirectory(at: outside.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data([1]).write(to: outside)
        let problems = try ZarrArrayReader(at: url).verify()
        XCTAssertEqual(Set(problems.map(\.path)), [stray.path, outside.path])
    }
}
