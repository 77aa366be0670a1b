import Flow
import Foundation
import NICNodes
import XCTest

/// `nic export geojson`'s writer on a GridSet read from TRIDENT-layout features: one QuPath tile per
/// patch, its square exactly over the patch's level-0 pixels, with the patch's code as measurements.
final class GridSetGeoJSONTests: XCTestCase {
    func testTilesLandOnTheirPatchesWithTheirCodes() throws {
        let ws = try InteropWorkspace()
        let dir = FeaturesSourceTests.fixtures.appendingPathComponent("trident")
        let gridSet = try ws.tridentGridSet()
        var exporter = GridSetGeoJSON()
        exporter.clusters = 4
        let folder = ws.root.appendingPathComponent("export")
        let files = try exporter.write(gridSet, to: folder, only: ["P00-0", "P03-1"])
        XCTAssertEqual(files.map(\.lastPathComponent), ["P00-0.geojson", "P03-1.geojson"])
        for file in files {
            let stem = file.deletingPathExtension().lastPathComponent
            let truth = try CSVTable.read(dir.appendingPathComponent("expected/\(stem).csv"))
            var patches: [String: Float] = [:]
            for row in truth.rows { patches["\(row[0]),\(row[1])"] = Float(row[2])! }
            let root = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [String: Any]
            XCTAssertEqual(root["type"] as? String, "FeatureCollection")
            let features = root["features"] as! [[String: Any]]
            XCTAssertEqual(features.count, patches.count)
            var seen = Set<String>()
            for feature in features {
                let ring = ((feature["geometry"] as! [String: Any])["coordinates"] as! [[[Double]]])[0]
                XCTAssertEqual(ring.count, 5)
                XCTAssertEqual(ring.first, ring.last, "closed ring")
                let x = ring[0][0], y = ring[0][1]
                XCTAssertEqual(ring[2], [x + 512, y + 512], "a 512 px square")
                let key = "\(Int(x)),\(Int(y))"
                let properties = feature["properties"] as! [String: Any]
                let measurements = properties["measurements"] as! [String: Double]
                XCTAssertEqual(Int(measurements["column"]!), Int(x) / 512)
                XCTAssertEqual(Int(measurements["row"]!), Int(y) / 512)
                guard let code0 = patches[key] else { XCTFail("\(stem): tile at \(key) is no patch"); continue }
                XCTAssertEqual(Float(measurements["code 0"]!), code0, accuracy: max(1e-3, abs(code0) * 1e-3))
                XCTAssertTrue((0..<4).contains(Int(measurements["cluster"]!)))
                XCTAssertEqual(properties["objectType"] as? String, "tile")
                seen.insert(key)
            }
            XCTAssertEqual(seen, Set(patches.keys))
        }
        // Seeded clustering: the same files again.
        let again = try exporter.write(gridSet, to: ws.root.appendingPathComponent("again"), only: ["P00-0", "P03-1"])
        XCTAssertEqual(try Data(contentsOf: again[0]), try Data(contentsOf: files[0]))
    }
}
