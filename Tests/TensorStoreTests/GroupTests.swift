import XCTest

@testable import TensorStore

final class GroupTests: TemporaryDirectoryTestCase {
    func testCreateGroupAndFindArrays() throws {
        try Zarr.createGroup(at: tmp, attributes: ["pipeline": "demo"])
        try Zarr.createGroup(at: tmp.appendingPathComponent("sub"))
        _ = try ZarrArrayWriter(at: tmp.appendingPathComponent("b"), shape: [2], chunkShape: [2], dataType: .uint8)
        let nested = try ZarrArrayWriter(
            at: tmp.appendingPathComponent("sub/a"), shape: [4], chunkShape: [2], dataType: .uint8)
        try nested.write([UInt8]([1, 2, 3, 4]))
        try FileManager.default.createDirectory(
            at: tmp.appendingPathComponent("plain/folder"), withIntermediateDirectories: true)

        let group = try Zarr.readNodeMetadata(at: tmp)
        XCTAssertEqual(group, ["zarr_format": 3, "node_type": "group", "attributes": ["pipeline": "demo"]])
        assertZarrError(["node_type is \"group\""]) { try ZarrArrayReader(at: tmp) }

        let found = Zarr.findArrays(under: tmp).map { $0.path }
        XCTAssertEqual(found, [tmp.appendingPathComponent("b").path, tmp.appendingPathComponent("sub/a").path])
        XCTAssertEqual(Zarr.findArrays(under: tmp.appendingPathComponent("sub/a")).count, 1)
        XCTAssertEqual(Zarr.findArrays(under: tmp.appendingPathComponent("missing")), [])
    }
}
