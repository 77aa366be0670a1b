import Foundation
import NICBasics
import TensorStore

/// Cross-checks TensorStore against zarr-python 3 (see scripts/zarr_interop.py, whose
/// fixture table and formulas must stay identical to the ones here).
///
/// Values are simple functions of the flat C-order index i, exactly representable in
/// their data type, so both sides compare bit for bit without tolerances.
enum ZarrInterop {
    struct Failure: Error, CustomStringConvertible {
        let problems: [String]
        var description: String {
            "zarr interop check failed (\(problems.count) problem(s)):\n" + problems.map { "  " + $0 }.joined(separator: "\n")
        }
    }

    struct Fixture {
        let name: String  // folder below the fixture root; may contain a "/" for a nested group
        let dataType: ZarrDataType
        let shape: [Int]
        let chunks: [Int]
        var fill: Double = 0
        /// Chunks that hold data; nil means all. The rest must read as the fill value.
        var writtenChunks: [[Int]]? = nil
        var attributes: [String: ZarrJSON] = [:]
        /// Written chunk by chunk from several threads instead of with one `write` call.
        var perChunk = false
    }

    static let rootAttributes: [String: ZarrJSON] = ["fixture_set": "nic-zarr-interop", "version": 1]
    static let arrayAttributes: [String: ZarrJSON] = [
        "unit": "m", "scale": 0.5, "axes": ["y", "x"], "count": 3, "flag": true, "nothing": .null,
        "nested": ["k": [1, 2.5, "s"]],
    ]

    static let fixtures: [Fixture] = [
        Fixture(name: "uint8_edge_5x7x3", dataType: .uint8, shape: [5, 7, 3], chunks: [2, 3, 2]),
        Fixture(name: "int32_edge_13x9", dataType: .int32, shape: [13, 9], chunks: [4, 4], perChunk: true),
        Fixture(name: "int64_1d_100", dataType: .int64, shape: [100], chunks: [32]),
        Fixture(name: "float16_edge_17x5", dataType: .float16, shape: [17, 5], chunks: [8, 2]),
        Fixture(name: "float32_exact_6x10x4", dataType: .float32, shape: [6, 10, 4], chunks: [3, 5, 4], perChunk: true),
        Fixture(
            name: "float64_edge_9x11_attrs", dataType: .float64, shape: [9, 11], chunks: [4, 4],
            attributes: arrayAttributes),
        Fixture(name: "float32_single_chunk_4x4", dataType: .float32, shape: [4, 4], chunks: [4, 4]),
        Fixture(name: "int32_chunk_larger_than_array_3x5", dataType: .int32, shape: [3, 5], chunks: [8, 8]),
        Fixture(name: "float64_0d", dataType: .float64, shape: [], chunks: []),
        Fixture(name: "float32_empty_3x0x2", dataType: .float32, shape: [3, 0, 2], chunks: [2, 2, 2]),
        Fixture(
            name: "float32_sparse_nan_fill_4x6", dataType: .float32, shape: [4, 6], chunks: [2, 3], fill: .nan,
            writtenChunks: [[0, 0], [1, 1]]),
        Fixture(
            name: "int64_sparse_fill_minus1_5", dataType: .int64, shape: [5], chunks: [2], fill: -1,
            writtenChunks: [[1]]),
        Fixture(name: "nested/int32_in_subgroup_10", dataType: .int32, shape: [10], chunks: [3]),
    ]

    // MARK: - Formulas

    /// Little-endian bytes of element i (flat C-order index).
    static func elementBytes(_ type: ZarrDataType, _ i: Int) -> [UInt8] {
        func le<T>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
        switch type {
        case .uint8: return [UInt8((i * 7 + 3) % 256)]
        case .int32: return le(Int32(i * 1000 - 500_000).littleEndian)
        case .int64: return le((Int64(i) * 3_000_000_000 - 7).littleEndian)
        case .float16: return le(Float16(Double(i % 1000) * 0.5 - 100).bitPattern.littleEndian)
        case .float32: return le(Float(Double(i) * 0.25 - 3.5).bitPattern.littleEndian)
        case .float64: return le((Double(i) * 0.125 - 1e6).bitPattern.littleEndian)
        }
    }

    static func fillBytes(_ type: ZarrDataType, _ fill: Double) -> [UInt8] {
        func le<T>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
        switch type {
        case .uint8: return [UInt8(fill)]
        case .int32: return le(Int32(fill).littleEndian)
        case .int64: return le(Int64(fill).littleEndian)
        case .float16: return le(Float16(fill).bitPattern.littleEndian)
        case .float32: return le(Float(fill).bitPattern.littleEndian)
        case .float64: return le(fill.bitPattern.littleEndian)
        }
    }

    /// The whole expected array as little-endian bytes, C order.
    static func expectedBytes(_ f: Fixture) -> [UInt8] {
        let count = f.shape.reduce(1, *)
        var out: [UInt8] = []
        out.reserveCapacity(count * f.dataType.byteSize)
        let fill = fillBytes(f.dataType, f.fill)
        for i in 0..<count {
            out += isWritten(f, flatIndex: i) ? elementBytes(f.dataType, i) : fill
        }
        return out
    }

    private static func isWritten(_ f: Fixture, flatIndex: Int) -> Bool {
        guard let written = f.writtenChunks else { return true }
        var rest = flatIndex
        var chunk = [Int](repeating: 0, count: f.shape.count)
        for d in stride(from: f.shape.count - 1, through: 0, by: -1) {
            chunk[d] = (rest % f.shape[d]) / f.chunks[d]
            rest /= f.shape[d]
        }
        return written.contains(chunk)
    }

    /// One element as readable text, for mismatch messages.
    static func describe(_ type: ZarrDataType, _ bytes: ArraySlice<UInt8>) -> String {
        let b = Array(bytes)
        func load<T>(_: T.Type) -> T { b.withUnsafeBytes { $0.loadUnaligned(as: T.self) } }
        switch type {
        case .uint8: return "\(b[0])"
        case .int32: return "\(Int32(littleEndian: load(Int32.self)))"
        case .int64: return "\(Int64(littleEndian: load(Int64.self)))"
        case .float16: return "\(Float16(bitPattern: UInt16(littleEndian: load(UInt16.self))))"
        case .float32: return "\(Float(bitPattern: UInt32(littleEndian: load(UInt32.self))))"
        case .float64: return "\(Double(bitPattern: UInt64(littleEndian: load(UInt64.self))))"
        }
    }

    // MARK: - Swift writes, Python checks

    /// Writes the fixture set (a root group holding one array per fixture) into `dir`.
    /// Uses both write paths: whole-array `write` and parallel per-chunk `writeChunk`.
    static func writeFixtures(to dir: URL) throws {
        try Zarr.createGroup(at: dir, attributes: rootAttributes)
        for f in fixtures {
            let url = dir.appendingPathComponent(f.name)
            if let slash = f.name.lastIndex(of: "/") {
                try Zarr.createGroup(at: dir.appendingPathComponent(String(f.name[..<slash])))
            }
            let writer = try ZarrArrayWriter(
                at: url, shape: f.shape, chunkShape: f.chunks, dataType: f.dataType, fillValue: f.fill,
                compressionLevel: 3, attributes: f.attributes)
            let all = expectedBytes(f)
            let chunkIndices = f.writtenChunks ?? writer.metadata.allChunkIndices
            if f.writtenChunks == nil && !f.perChunk {
                try all.withUnsafeBytes { try writer.writeAll($0) }
            } else {
                // Padding edges by hand, as a streaming producer would.
                let errors = FirstError()
                DispatchQueue.concurrentPerform(iterations: chunkIndices.count) { n in
                    do {
                        let chunk = paddedChunk(all, f, writer, chunkIndices[n])
                        try chunk.withUnsafeBytes { try writer.writeChunk(at: chunkIndices[n], bytes: $0) }
                    } catch {
                        errors.record(error)
                    }
                }
                try errors.rethrow()
            }
        }
    }

    private static func paddedChunk(_ all: [UInt8], _ f: Fixture, _ writer: ZarrArrayWriter, _ index: [Int]) -> [UInt8] {
        let size = f.dataType.byteSize
        let (origin, extent) = writer.chunkRegion(index)
        let chunkCount = f.chunks.reduce(1, *)
        var out = [UInt8]()
        out.reserveCapacity(chunkCount * size)
        let fill = fillBytes(f.dataType, f.fill)
        for k in 0..<chunkCount {
            var rest = k
            var flat = 0
            var inside = true
            var local = [Int](repeating: 0, count: f.shape.count)
            for d in stride(from: f.shape.count - 1, through: 0, by: -1) {
                local[d] = rest % f.chunks[d]
                rest /= f.chunks[d]
            }
            for d in 0..<f.shape.count {
                if local[d] >= extent[d] { inside = false; break }
                flat = flat * f.shape[d] + origin[d] + local[d]
            }
            out += inside ? Array(all[flat * size..<(flat + 1) * size]) : fill
        }
        return out
    }

    // MARK: - Python writes, Swift checks

    /// Reads the arrays `zarr_interop.py write` produced in `dir` and compares them with the
    /// formulas; prints one line per array, throws `Failure` listing every mismatch.
    static func checkPythonWritten(at dir: URL) throws {
        var problems: [String] = []
        var passed = 0
        do {
            let attributes = try Zarr.attributes(at: dir)
            if attributes != rootAttributes {
                problems.append("(root group): attributes \(ZarrJSON.map(attributes)), expected \(ZarrJSON.map(rootAttributes))")
            }
        } catch {
            problems.append("(root group): \(error)")
        }
        for f in fixtures {
            let found = checkOne(f, at: dir.appendingPathComponent(f.name))
            if found.isEmpty {
                passed += 1
                print("ok    \(f.name)  \(f.dataType.rawValue) shape=\(f.shape) chunks=\(f.chunks)")
            } else {
                for p in found { print("FAIL  \(f.name)  \(p)") }
                problems += found.map { "\(f.name): \($0)" }
            }
        }
        print("\(passed) passed, \(fixtures.count - passed) failed")
        if !problems.isEmpty { throw Failure(problems: problems) }
    }

    private static func checkOne(_ f: Fixture, at url: URL) -> [String] {
        var problems: [String] = []
        let reader: ZarrArrayReader
        do {
            reader = try ZarrArrayReader(at: url)
        } catch {
            return ["cannot open: \(error)"]
        }
        let m = reader.metadata
        if m.dataType != f.dataType { problems.append("data_type \(m.dataType.rawValue), expected \(f.dataType.rawValue)") }
        if m.shape != f.shape { problems.append("shape \(m.shape), expected \(f.shape)") }
        if m.chunkShape != f.chunks { problems.append("chunk shape \(m.chunkShape), expected \(f.chunks)") }
        if !(m.fillValue == f.fill || (m.fillValue.isNaN && f.fill.isNaN)) {
            problems.append("fill_value \(m.fillValue), expected \(f.fill)")
        }
        let hasZstd = m.codecs.contains { if case .zstd = $0 { return true } else { return false } }
        if !hasZstd || !m.codecs.contains(.crc32c) {
            problems.append("codecs \(m.codecs) lack zstd or crc32c, so this fixture does not test them")
        }
        if m.attributes != f.attributes {
            problems.append("attributes \(ZarrJSON.map(m.attributes)), expected \(ZarrJSON.map(f.attributes))")
        }
        if !problems.isEmpty { return problems }

        do {
            let verifyProblems = try reader.verify()
            problems += verifyProblems.map { "verify: \($0)" }
        } catch {
            problems.append("verify failed: \(error)")
        }
        do {
            let got = try reader.readBytes()
            let want = expectedBytes(f)
            let size = f.dataType.byteSize
            if got.count != want.count {
                problems.append("read \(got.count) bytes, expected \(want.count)")
            } else if got != want {
                let bad = (0..<want.count / size).filter { got[$0 * size..<($0 + 1) * size] != want[$0 * size..<($0 + 1) * size] }
                let i = bad[0]
                problems.append(
                    "\(bad.count) of \(want.count / size) values differ; first at flat index \(i): got "
                        + "\(describe(f.dataType, got[i * size..<(i + 1) * size])), expected "
                        + "\(describe(f.dataType, want[i * size..<(i + 1) * size]))")
            }
        } catch {
            problems.append("read failed: \(error)")
        }
        return problems
    }
}
