import NICBasics
import XCTest

@testable import TensorStore

final class RoundTripTests: TemporaryDirectoryTestCase {
    private var rng = SplitMix64(seed: 7)

    private func roundTrip<T: ZarrScalar & Equatable>(
        _ values: [T], shape: [Int], chunkShape: [Int], fill: Double = 0, file: StaticString = #filePath,
        line: UInt = #line
    ) throws {
        let url = tmp.appendingPathComponent("\(T.zarrDataType.rawValue)-\(shape)-\(chunkShape)")
        let writer = try ZarrArrayWriter(
            at: url, shape: shape, chunkShape: chunkShape, dataType: T.zarrDataType, fillValue: fill)
        try writer.write(values)
        let reader = try ZarrArrayReader(at: url)
        XCTAssertEqual(try reader.read(as: T.self), values, file: file, line: line)
        XCTAssertEqual(try reader.verify(), [], file: file, line: line)
        XCTAssertEqual(try reader.readBytes().count, values.count * T.zarrDataType.byteSize, file: file, line: line)
    }

    func testEveryDataTypeWithEdgeChunks() throws {
        let shape = [5, 7, 3]
        let chunks = [2, 3, 2]
        let n = 105
        try roundTrip((0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }, shape: shape, chunkShape: chunks)
        try roundTrip((0..<n).map { _ in Int32.random(in: .min ... .max, using: &rng) }, shape: shape, chunkShape: chunks)
        try roundTrip((0..<n).map { _ in Int64.random(in: .min ... .max, using: &rng) }, shape: shape, chunkShape: chunks)
        try roundTrip((0..<n).map { _ in Float16(Float.random(in: -1000...1000, using: &rng)) }, shape: shape, chunkShape: chunks)
        try roundTrip((0..<n).map { _ in Float.random(in: -1e6...1e6, using: &rng) }, shape: shape, chunkShape: chunks)
        try roundTrip((0..<n).map { _ in Double.random(in: -1e300...1e300, using: &rng) }, shape: shape, chunkShape: chunks)
    }

    func testEdgeChunksArePaddedWithFillValue() throws {
        let url = tmp.appendingPathComponent("a")
        let shape = [5, 7, 3]
        let chunks = [2, 3, 2]
        let values = (0..<105).map { Int32($0) }
        let writer = try ZarrArrayWriter(at: url, shape: shape, chunkShape: chunks, dataType: .int32, fillValue: -9)
        try writer.write(values)
        let reader = try ZarrArrayReader(at: url)
        for index in reader.metadata.allChunkIndices {
            let chunk = try reader.readChunk(at: index, as: Int32.self)
            XCTAssertEqual(chunk.count, 12, "every chunk is full size")
            XCTAssertEqual(chunk, referenceChunk(values, shape: shape, chunkShape: chunks, index: index, fill: -9), "\(index)")
        }
        // The corner chunk covers a 1x1x1 region; the rest is padding.
        XCTAssertEqual(try reader.readChunk(at: [2, 2, 1], as: Int32.self), [104] + [Int32](repeating: -9, count: 11))
    }

    func testChunkFilesHaveSpecKeys() throws {
        let url = tmp.appendingPathComponent("a")
        let writer = try ZarrArrayWriter(at: url, shape: [3, 5], chunkShape: [2, 2], dataType: .uint8)
        try writer.write([UInt8](repeating: 1, count: 15))
        for i in 0..<2 {
            for j in 0..<3 {
                XCTAssertTrue(FileManager.default.fileExists(atPath: url.appendingPathComponent("c/\(i)/\(j)").path))
            }
        }
        XCTAssertEqual(writer.chunkURL([1, 2]).path, url.appendingPathComponent("c/1/2").path)
        let leftovers = try FileManager.default.subpathsOfDirectory(atPath: url.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(leftovers, [])
    }

    func testZeroDimensionalArray() throws {
        let url = tmp.appendingPathComponent("scalar")
        let writer = try ZarrArrayWriter(at: url, shape: [], chunkShape: [], dataType: .float64)
        XCTAssertEqual(writer.chunkCounts, [])
        XCTAssertEqual(writer.metadata.chunkCount, 1)
        XCTAssertEqual(writer.chunkRegion([]).extent, [])
        try writer.write([42.5])
        XCTAssertTrue(FileManager.default.fileExists(atPath: url.appendingPathComponent("c").path))
        let reader = try ZarrArrayReader(at: url)
        XCTAssertEqual(try reader.read(as: Double.self), [42.5])
        XCTAssertEqual(try reader.readChunk(at: [], as: Double.self), [42.5])
        XCTAssertEqual(try reader.verify(), [])
    }

    func testEmptyArrayHasNoChunks() throws {
        let url = tmp.appendingPathComponent("empty")
        let writer = try ZarrArrayWriter(at: url, shape: [3, 0, 4], chunkShape: [2, 2, 2], dataType: .float32)
        XCTAssertEqual(writer.chunkCounts, [2, 0, 2])
        XCTAssertEqual(writer.metadata.chunkCount, 0)
        try writer.write([Float]())
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.appendingPathComponent("c").path))
        assertZarrError(["outside the chunk grid"]) { try writer.writeChunk(at: [0, 0, 0], values: [Float](repeating: 0, count: 8)) }
        let reader = try ZarrArrayReader(at: url)
        XCTAssertEqual(try reader.read(as: Float.self), [])
        XCTAssertEqual(try reader.verify(), [])
    }

    func testSingleChunkAndChunkLargerThanArray() throws {
        try roundTrip((0..<16).map { Float($0) }, shape: [4, 4], chunkShape: [4, 4])
        try roundTrip((0..<15).map { Int64($0) }, shape: [3, 5], chunkShape: [8, 8])
        try roundTrip((0..<1000).map { UInt8(truncatingIfNeeded: $0) }, shape: [1000], chunkShape: [1])
    }

    func testMissingChunksReadAsFillValue() throws {
        let url = tmp.appendingPathComponent("sparse")
        let writer = try ZarrArrayWriter(at: url, shape: [4, 4], chunkShape: [2, 2], dataType: .float32, fillValue: .nan)
        try writer.writeChunk(at: [1, 0], values: [Float](repeating: 5, count: 4))
        let reader = try ZarrArrayReader(at: url)
        XCTAssertFalse(reader.hasChunk(at: [0, 0]))
        XCTAssertTrue(reader.hasChunk(at: [1, 0]))
        let all = try reader.read(as: Float.self)
        for (i, v) in all.enumerated() {
            let (row, col) = (i / 4, i % 4)
            if row >= 2 && col < 2 { XCTAssertEqual(v, 5) } else { XCTAssertTrue(v.isNaN, "\(i): \(v)") }
        }
        XCTAssertTrue(try reader.readChunk(at: [0, 1], as: Float.self).allSatisfy(\.isNaN))
        XCTAssertEqual(try reader.verify(), [])
    }

    func testConcurrentChunkWrites() throws {
        let url = tmp.appendingPathComponent("parallel")
        let shape = [33, 40, 6]
        let chunks = [4, 8, 6]
        let values = (0..<shape.reduce(1, *)).map { Double($0) * 0.5 }
        let writer = try ZarrArrayWriter(at: url, shape: shape, chunkShape: chunks, dataType: .float64)
        let indices = writer.metadata.allChunkIndices
        XCTAssertEqual(indices.count, 9 * 5)
        let failures = FirstError()
        // More threads than cores, each writing its own chunks in its own order.
        let group = DispatchGroup()
        for t in 0..<8 {
            DispatchQueue.global().async(group: group) {
                for index in indices.enumerated().filter({ $0.offset % 8 == t }).map(\.element).reversed() {
                    let chunk = referenceChunk(values, shape: shape, chunkShape: chunks, index: index, fill: 0)
                    do { try writer.writeChunk(at: index, values: chunk) } catch { failures.record(error) }
                }
            }
        }
        group.wait()
        try failures.rethrow()
        let reader = try ZarrArrayReader(at: url)
        XCTAssertEqual(try reader.read(as: Double.self), values)
        XCTAssertEqual(try reader.verify(), [])
    }

    func testRawByteChunkWrite() throws {
        let url = tmp.appendingPathComponent("raw")
        let writer = try ZarrArrayWriter(at: url, shape: [2, 2], chunkShape: [2, 2], dataType: .int32)
        let values: [Int32] = [1, -2, 3, Int32.max]
        try values.withUnsafeBytes { try writer.writeChunk(at: [0, 0], bytes: $0) }
        let reader = try ZarrArrayReader(at: url)
        XCTAssertEqual(try reader.readChunkBytes(at: [0, 0]), values.withUnsafeBytes { Array($0) })
        XCTAssertEqual(try reader.read(as: Int32.self), values)
    }

    func testChunkCountAndRegionHelpers() throws {
        let writer = try ZarrArrayWriter(
            at: tmp.appendingPathComponent("geom"), shape: [5, 7, 3], chunkShape: [2, 3, 2], dataType: .uint8)
        XCTAssertEqual(writer.chunkCounts, [3, 3, 2])
        XCTAssertEqual(writer.metadata.chunkCount, 18)
        XCTAssertEqual(writer.chunkRegion([0, 0, 0]).origin, [0, 0, 0])
        XCTAssertEqual(writer.chunkRegion([0, 0, 0]).extent, [2, 3, 2])
        XCTAssertEqual(writer.chunkRegion([2, 2, 1]).origin, [4, 6, 2])
        XCTAssertEqual(writer.chunkRegion([2, 2, 1]).extent, [1, 1, 1])
        XCTAssertEqual(writer.chunkRegion([1, 2, 0]).extent, [2, 1, 2])
        XCTAssertEqual(writer.metadata.allChunkIndices.first, [0, 0, 0])
        XCTAssertEqual(writer.metadata.allChunkIndices[1], [0, 0, 1])
        XCTAssertEqual(writer.metadata.allChunkIndices.last, [2, 2, 1])
        XCTAssertEqual(writer.metadata.chunkKey([2, 0, 1]), "c/2/0/1")
        let exact = try ZarrArrayWriter(
            at: tmp.appendingPathComponent("exact"), shape: [4, 6], chunkShape: [2, 3], dataType: .uint8)
        XCTAssertEqual(exact.chunkCounts, [2, 2])
        XCTAssertEqual(exact.chunkRegion([1, 1]).extent, [2, 3])
    }

    func testWrongTypesAndSizesAreRejected() throws {
        let url = tmp.appendingPathComponent("typed")
        let writer = try ZarrArrayWriter(at: url, shape: [4], chunkShape: [2], dataType: .float32)
        assertZarrError(["float32", "Double"]) { try writer.write([Double](repeating: 0, count: 4)) }
        assertZarrError(["4 values"]) { try writer.write([Float](repeating: 0, count: 3)) }
        assertZarrError(["needs 8 bytes", "c/0"]) { try writer.writeChunk(at: [0], values: [Float](repeating: 0, count: 3)) }
        assertZarrError(["outside the chunk grid"]) { try writer.writeChunk(at: [2], values: [Float](repeating: 0, count: 2)) }
        assertZarrError(["outside the chunk grid"]) { try writer.writeChunk(at: [0, 0], values: [Float](repeating: 0, count: 2)) }
        try writer.write([Float](repeating: 1, count: 4))
        let reader = try ZarrArrayReader(at: url)
        assertZarrError(["data_type float32", "Int32"]) { try reader.read(as: Int32.self) }
        assertZarrError(["data_type float32"]) { try reader.readChunk(at: [0], as: UInt8.self) }
    }

    func testRecreatingAnArrayDropsOldChunks() throws {
        let url = tmp.appendingPathComponent("again")
        try ZarrArrayWriter(at: url, shape: [4], chunkShape: [2], dataType: .uint8).write([UInt8]([1, 2, 3, 4]))
        let second = try ZarrArrayWriter(at: url, shape: [4], chunkShape: [2], dataType: .uint8, fillValue: 9)
        try second.writeChunk(at: [1], values: [UInt8]([7, 8]))
        XCTAssertEqual(try ZarrArrayReader(at: url).read(as: UInt8.self), [9, 9, 7, 8])
    }

    func testBigEndianAndUncompressedArraysAreReadable() throws {
        let values = (0..<10).map { Int32($0 * 1000 - 3) }
        for codecs: [ZarrCodec] in [
            [.bytes(endian: .big), .zstd(level: 1, checksum: true)],
            [.bytes(endian: .little)],
            [.bytes(endian: .little), .crc32c, .zstd(level: 3, checksum: false)],
            [.bytes(endian: .big), .zstd(level: 3, checksum: false), .zstd(level: 1, checksum: false), .crc32c],
        ] {
            let url = tmp.appendingPathComponent("codecs-\(codecs.count)-\(UUID().uuidString)")
            let metadata = ZarrArrayMetadata(shape: [10], chunkShape: [4], dataType: .int32, codecs: codecs)
            try ZarrArrayWriter(at: url, metadata: metadata).write(values)
            let reader = try ZarrArrayReader(at: url)
            XCTAssertEqual(reader.metadata.codecs, codecs)
            XCTAssertEqual(try reader.read(as: Int32.self), values, "\(codecs)")
            XCTAssertEqual(try reader.verify(), [])
        }
    }
}
