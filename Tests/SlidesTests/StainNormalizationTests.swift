import Foundation
@testable import Slides
import XCTest

/// Macenko and Reinhard normalisation against a numpy reimplementation of TIAToolbox's / StainTools'
/// definitions (scripts/stain_fixture.py wrote the fixture): equal within 1e-3 in optical density.
final class StainNormalizationTests: XCTestCase {
    struct Fixture: Decodable {
        struct Macenko: Decodable { var stains: [[Double]]; var max_concentrations: [Double]; var output: [Double] }
        struct Reinhard: Decodable { var mean: [Double]; var std: [Double]; var output: [Double] }
        var width: Int, height: Int
        var source: [UInt8], reference: [UInt8]
        var macenko: Macenko
        var reinhard: Reinhard
    }

    func fixture() throws -> Fixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/stain-normalisation.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func od(_ v: Double) -> Double { -log(max(v, 1) / 255) }

    func testMacenkoMatchesTheReference() throws {
        let f = try fixture()
        let target = try StainNormalization.fit(.macenko, reference: RGBImage(width: f.width, height: f.height, pixels: f.reference))
        guard case .macenko(let stains, let maxC) = target else { return XCTFail("not a Macenko target") }
        for (a, b) in zip(stains.joined(), f.macenko.stains.joined()) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        for (a, b) in zip(maxC, f.macenko.max_concentrations) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        let out = try StainNormalization.normalise(f.source, to: target)
        XCTAssertEqual(out.count, f.macenko.output.count)
        let worst = zip(out, f.macenko.output).map { abs(od($0) - od($1)) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-3)
    }

    func testReinhardMatchesTheReference() throws {
        let f = try fixture()
        let target = try StainNormalization.fit(.reinhard, reference: RGBImage(width: f.width, height: f.height, pixels: f.reference))
        guard case .reinhard(let mean, let std) = target else { return XCTFail("not a Reinhard target") }
        for (a, b) in zip(mean + std, f.reinhard.mean + f.reinhard.std) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        let out = try StainNormalization.normalise(f.source, to: target)
        let worst = zip(out, f.reinhard.output).map { abs(od($0) - od($1)) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-3)
    }

    func testNormalisingTheReferenceToItselfKeepsIt() throws {
        let f = try fixture()
        let reference = RGBImage(width: f.width, height: f.height, pixels: f.reference)
        for method in [StainNormalization.Method.reinhard] {
            let out = try StainNormalization.apply(reference, to: try StainNormalization.fit(method, reference: reference))
            XCTAssertLessThanOrEqual(zip(out.pixels, reference.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0, 1, method.rawValue)
        }
    }

    func testMacenkoOnGlassIsAnError() {
        XCTAssertThrowsError(try StainNormalization.fit(.macenko, reference: RGBImage(width: 4, height: 4, fill: 240)))
    }
}
