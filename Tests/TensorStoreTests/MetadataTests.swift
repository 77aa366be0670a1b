import XCTest

@testable import TensorStore

final class MetadataTests: TemporaryDirectoryTestCase {
    func testZarrJSONHasSpecNames() throws {
        let url = tmp.appendingPathComponent("a")
        _ = try ZarrArrayWriter(
            at: url, shape: [5, 7], chunkShape: [2, 3], dataType: .float32, attributes: ["unit": "m", "scale": 0.5])
        let json = try ZarrJSON.parse(String(contentsOf: url.appendingPathComponent("zarr.json"), encoding: .utf8))
        let expected: ZarrJSON = [
            "zarr_format": 3, "node_type": "array", "shape": [5, 7], "data_type": "float32",
            "chunk_grid": ["name": "regular", "configuration": ["chunk_shape": [2, 3]]],
            "chunk_key_encoding": ["name": "default", "configuration": ["separator": "/"]],
            "fill_value": 0.0,
            "codecs": [
                ["name": "bytes", "configuration": ["endian": "little"]],
                ["name": "zstd", "configuration": ["level": 3, "checksum": false]],
                ["name": "crc32c"],
            ],
            "attributes": ["unit": "m", "scale": 0.5], "dimension_names": .null,
        ]
        XCTAssertEqual(json, expected)
    }

    func testZarrJSONIsStable() throws {
        let a = tmp.appendingPathComponent("a")
        let b = tmp.appendingPathComponent("b")
        let attributes: ZarrJSON = ["z": 1, "a": ["y": 2, "b": 3], "m": [1, 2]]
        _ = try ZarrArrayWriter(at: a, shape: [3], chunkShape: [2], dataType: .int64, attributes: attributes.mapValue!)
        _ = try ZarrArrayWriter(at: b, shape: [3], chunkShape: [2], dataType: .int64, attributes: attributes.mapValue!)
        let textA = try String(contentsOf: a.appendingPathComponent("zarr.json"), encoding: .utf8)
        XCTAssertEqual(textA, try String(contentsOf: b.appendingPathComponent("zarr.json"), encoding: .utf8))
        XCTAssertTrue(textA.contains("\"fill_value\": 0,"), "integer fill value must be an integer: \(textA)")
        XCTAssertTrue(textA.contains("\"shape\": [3]"), textA)
    }

    func testMetadataRoundTripsThroughReader() throws {
        let url = tmp.appendingPathComponent("a")
        let attributes: [String: ZarrJSON] = ["axes": ["z", "y"], "n": 3, "nested": ["ok": true, "none": .null]]
        let written = try ZarrArrayWriter(
            at: url, shape: [4, 0], chunkShape: [2, 5], dataType: .float16, fillValue: -1.5, compressionLevel: 7,
            attributes: attributes)
        let reader = try ZarrArrayReader(at: url)
        XCTAssertEqual(reader.metadata, written.metadata)
        XCTAssertEqual(reader.metadata.compressionLevel, 7)
        XCTAssertEqual(reader.metadata.attributes, attributes)
        XCTAssertEqual(try Zarr.attributes(at: url), attributes)
    }

    func testFillValueSpellings() throws {
        func parse(_ json: ZarrJSON, _ type: ZarrDataType) throws -> Double {
            try ZarrArrayMetadata.parseFillValue(json, dataType: type, path: "x")
        }
        XCTAssertTrue(try parse("NaN", .float32).isNaN)
        XCTAssertEqual(try parse("Infinity", .float64), .infinity)
        XCTAssertEqual(try parse("-Infinity", .float16), -.infinity)
        XCTAssertTrue(try parse("0x7fc00000", .float32).isNaN)
        XCTAssertEqual(try parse("0x3ff0000000000000", .float64), 1.0)
        XCTAssertEqual(try parse("0xc000", .float16), -2.0)
        XCTAssertEqual(try parse("0x3c00", .float16), 1.0)
        XCTAssertEqual(try parse(.int(7), .uint8), 7)
        XCTAssertEqual(try parse(2.0, .int32), 2)
        XCTAssertThrowsError(try parse(2.5, .int32))
        XCTAssertThrowsError(try parse("NaN", .int64))
        XCTAssertThrowsError(try parse("0x3c", .float16))
        XCTAssertThrowsError(try parse(true, .float32))
    }

    func testNonFiniteFillValueIsWrittenAsSpecString() throws {
        let url = tmp.appendingPathComponent("a")
        _ = try ZarrArrayWriter(at: url, shape: [2], chunkShape: [2], dataType: .float32, fillValue: .nan)
        let json = try Zarr.readNodeMetadata(at: url)
        XCTAssertEqual(json["fill_value"], "NaN")
        XCTAssertTrue(try ZarrArrayReader(at: url).metadata.fillValue.isNaN)
    }

    func testInvalidWriterArguments() {
        let url = tmp.appendingPathComponent("a")
        assertZarrError(["chunk shape", "rank"]) {
            try ZarrArrayWriter(at: url, shape: [4, 4], chunkShape: [2], dataType: .uint8)
        }
        assertZarrError(["positive"]) { try ZarrArrayWriter(at: url, shape: [4], chunkShape: [0], dataType: .uint8) }
        assertZarrError(["negative"]) { try ZarrArrayWriter(at: url, shape: [-1], chunkShape: [1], dataType: .uint8) }
        assertZarrError(["fill value", "uint8"]) {
            try ZarrArrayWriter(at: url, shape: [4], chunkShape: [2], dataType: .uint8, fillValue: 300)
        }
        assertZarrError(["fill value", "int32"]) {
            try ZarrArrayWriter(at: url, shape: [4], chunkShape: [2], dataType: .int32, fillValue: 0.5)
        }
    }

    // MARK: bad zarr.json

    private func reader(for text: String) throws -> ZarrArrayReader {
        let url = tmp.appendingPathComponent("bad")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try text.write(to: url.appendingPathComponent("zarr.json"), atomically: true, encoding: .utf8)
        return try ZarrArrayReader(at: url)
    }

    private let valid = """
        {"zarr_format": 3, "node_type": "array", "shape": [4], "data_type": "float32",
         "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
         "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
         "fill_value": 0.0, "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
         "attributes": {}}
        """

    func testValidMinimalMetadataIsAccepted() throws {
        XCTAssertEqual(try reader(for: valid).metadata.shape, [4])
    }

    func testBadMetadataGivesClearErrors() throws {
        let cases: [(String, [String])] = [
            ("not json", ["zarr.json", "invalid JSON"]),
            ("[]", ["zarr.json", "JSON object"]),
            (valid.replacingOccurrences(of: "\"zarr_format\": 3", with: "\"zarr_format\": 2"), ["zarr_format", "expected 3"]),
            (#"{"zarr_format": 3, "node_type": "group", "attributes": {}}"#, ["node_type is \"group\"", "expected \"array\""]),
            (valid.replacingOccurrences(of: "float32", with: "complex64"), ["unsupported data_type \"complex64\""]),
            (valid.replacingOccurrences(of: #"{"name": "bytes", "configuration": {"endian": "little"}}"#,
                with: #"{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "gzip", "configuration": {"level": 5}}"#),
                ["unsupported codec \"gzip\""]),
            (valid.replacingOccurrences(of: #"{"name": "bytes", "configuration": {"endian": "little"}}"#,
                with: #"{"name": "sharding_indexed", "configuration": {}}"#), ["unsupported codec \"sharding_indexed\""]),
            (valid.replacingOccurrences(of: #", "configuration": {"endian": "little"}"#, with: ""), ["endian"]),
            (valid.replacingOccurrences(of: "\"regular\"", with: "\"rectilinear\""), ["chunk_grid"]),
            (valid.replacingOccurrences(of: "[2]", with: "[2, 2]"), ["rank"]),
            (valid.replacingOccurrences(of: "\"shape\": [4]", with: "\"shape\": [-4]"), ["shape"]),
            (valid.replacingOccurrences(of: "\"fill_value\": 0.0,", with: ""), ["fill_value"]),
            (valid.replacingOccurrences(of: "0.0", with: "\"zero\""), ["fill_value", "float32"]),
            (valid.replacingOccurrences(of: "\"attributes\": {}", with: "\"storage_transformers\": [{\"name\": \"x\"}]"),
                ["storage_transformers"]),
        ]
        for (text, fragments) in cases {
            assertZarrError(fragments) { try reader(for: text) }
        }
    }

    func testMissingAndV2ArraysAreExplained() throws {
        let empty = tmp.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        assertZarrError(["zarr.json", "not found"]) { try ZarrArrayReader(at: empty) }
        try "{}".write(to: empty.appendingPathComponent(".zarray"), atomically: true, encoding: .utf8)
        assertZarrError(["zarr v2"]) { try ZarrArrayReader(at: empty) }
    }
}
