import NICBasics
import Foundation
import NICNodes
import Stats
import XCTest

final class GridCropsTests: XCTestCase {
    func bruteForceDistance(_ mask: [Bool], _ h: Int, _ w: Int) -> [Float] {
        var background: [(Int, Int)] = []
        for y in -1...h { for x in -1...w where y < 0 || x < 0 || y >= h || x >= w || !mask[y * w + x] { background.append((y, x)) } }
        return (0..<(h * w)).map { i in
            let y = i / w, x = i % w
            return Float(background.map { Double(($0.0 - y) * ($0.0 - y) + ($0.1 - x) * ($0.1 - x)) }.min()!.squareRoot())
        }
    }

    func testDistanceTransformMatchesBruteForce() {
        var rng = SplitMix64(seed: 4)
        for (h, w) in [(1, 1), (5, 9), (12, 7), (20, 20)] {
            let mask = (0..<(h * w)).map { _ in rng.next() % 5 != 0 }
            let fast = GridCrops.distanceToBackground(mask: mask, height: h, width: w)
            let slow = bruteForceDistance(mask, h, w)
            for i in fast.indices { XCTAssertEqual(fast[i], slow[i], accuracy: 1e-5, "\(h)x\(w) at \(i)") }
        }
    }

    func testCentresFollowDistanceAndAvoidBackground() {
        let h = 30, w = 30
        let mask = (0..<(h * w)).map { i in (i / w) >= 5 && (i / w) < 25 && (i % w) >= 5 && (i % w) < 25 }
        let distance = GridCrops.distanceToBackground(mask: mask, height: h, width: w)
        var rng = SplitMix64(seed: 1)
        let centres = GridCrops.sampleCentres(weights: distance, width: w, count: 2000, using: &rng)!
        XCTAssertTrue(centres.allSatisfy { mask[$0.y * w + $0.x] })
        let inner = centres.filter { $0.y >= 10 && $0.y < 20 && $0.x >= 10 && $0.x < 20 }.count
        // The inner 10×10 holds 1/4 of the tissue cells but a larger share of the distance mass.
        let innerMass = (10..<20).flatMap { y in (10..<20).map { distance[y * w + $0] } }.reduce(0, +)
        let expected = Double(innerMass / distance.reduce(0, +))
        XCTAssertGreaterThan(expected, 0.25)
        XCTAssertEqual(Double(inner) / 2000, expected, accuracy: 0.04)
        var empty = SplitMix64(seed: 1)
        XCTAssertNil(GridCrops.sampleCentres(weights: [0, 0], width: 2, count: 1, using: &empty))
    }

    func testCropPadsWithZeros() {
        let h = 3, w = 4, c = 2
        let grid = (0..<(h * w * c)).map { Float($0 + 1) }
        var out = [Float](repeating: -1, count: 4 * 4 * c)
        grid.withUnsafeBufferPointer { g in
            out.withUnsafeMutableBufferPointer { o in GridCrops.crop(g, height: h, width: w, channels: c, centre: (0, 0), size: 4, into: o) }
        }
        // Window rows -2..1, cols -2..1: only grid cells (0,0),(0,1),(1,0),(1,1) land at window (2,2),(2,3),(3,2),(3,3).
        XCTAssertEqual(out[(2 * 4 + 2) * c], 1)
        XCTAssertEqual(out[(2 * 4 + 3) * c + 1], 4)
        XCTAssertEqual(out[(3 * 4 + 2) * c], Float((1 * w + 0) * c + 1))
        XCTAssertEqual(out.filter { $0 != 0 }.count, 8)
    }
}
