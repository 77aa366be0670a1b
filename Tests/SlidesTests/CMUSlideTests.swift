import NICBasics
import Foundation
import ImageTestSupport
import XCTest
@testable import Slides

/// The real Aperio slide: metadata, pixels against OpenSlide's own tool, tissue.
final class CMUSlideTests: XCTestCase {
    func testOpensWithAperioMetadata() throws {
        let slide = try Slide(url: try cmuSlideURL())
        XCTAssertEqual(slide.vendor, "aperio")
        XCTAssertEqual(slide.resolutionSource, .metadata)
        XCTAssertEqual(slide.mppX, 0.499, accuracy: 1e-9)
        XCTAssertEqual(slide.mppY, 0.499, accuracy: 1e-9)
        XCTAssertEqual(slide.width, 2220)
        XCTAssertEqual(slide.height, 2967)
        XCTAssertEqual(slide.levels.count, 1)
        XCTAssertEqual(slide.levels[0].downsample, 1)
    }

    /// Expected pixels: `openslide-write-png` output decoded once by scripts/hed_fixture.py (RGBA,
    /// non-premultiplied). Inside the slide every pixel must match exactly; outside it OpenSlide gives
    /// alpha 0, which nic must turn into white.
    func testRegionMatchesOpenslideWritePNGPixelForPixel() throws {
        let slide = try Slide(url: try cmuSlideURL())
        for (name, x, y, w, h) in [("inside", 1000, 1200, 96, 96), ("corner", 2180, 2930, 64, 64)] {
            let expected = [UInt8](try Data(contentsOf: fixtureURL("openslide_region_\(name).rgba")))
            XCTAssertEqual(expected.count, w * h * 4)
            // 0.5 µm/px is within the 2% tolerance of 0.499: read natively, like openslide-write-png.
            let image = try slide.readRegion(x: x, y: y, width: w, height: h, mpp: 0.5)
            XCTAssertEqual(image.width, w)
            var transparent = 0, mismatches = 0
            for i in 0..<(w * h) {
                let alpha = expected[i * 4 + 3]
                let want: [UInt8] = alpha == 0 ? [255, 255, 255] : Array(expected[(i * 4)..<(i * 4 + 3)])
                if alpha == 0 { transparent += 1 } else { XCTAssertEqual(alpha, 255) }
                if Array(image.pixels[(i * 3)..<(i * 3 + 3)]) != want { mismatches += 1 }
            }
            XCTAssertEqual(mismatches, 0, "region \(name)")
            if name == "corner" { XCTAssertEqual(transparent, 64 * 64 - 40 * 37, "the corner region extends 24 × 27 px past the slide") }
        }
    }

    func testResampledReadAtCoarserResolutionIsAreaAverage() throws {
        let slide = try Slide(url: try cmuSlideURL())
        let native = try slide.readLevelRegion(level: 0, x: 1000, y: 1000, width: 64, height: 64)
        // 0.998 µm/px is exactly 2 level-0 pixels per output pixel: a 2×2 box average.
        let half = try slide.readRegion(x: 1000, y: 1000, width: 32, height: 32, mpp: 0.998, tolerance: 0)
        var maxDiff = 0
        for y in 0..<32 {
            for x in 0..<32 {
                for c in 0..<3 {
                    var sum = 0
                    for dy in 0..<2 { for dx in 0..<2 { sum += Int(native.pixels[((2 * y + dy) * 64 + 2 * x + dx) * 3 + c]) } }
                    maxDiff = max(maxDiff, abs(Int(half.pixels[(y * 32 + x) * 3 + c]) - Int((Double(sum) / 4).rounded())))
                }
            }
        }
        XCTAssertLessThanOrEqual(maxDiff, 1, "rounding only")
    }

    /// A target finer than level 0 (0.2495 µm/px = 2× enlargement) is bilinear between pixel centres:
    /// output pixels 2i+½ ± ¼ lie a quarter pixel from source pixel i, so they are ¾·p(i) + ¼·p(i±1).
    func testEnlargingReadIsBilinear() throws {
        let slide = try Slide(url: try cmuSlideURL())
        let native = try slide.readLevelRegion(level: 0, x: 1000, y: 1000, width: 40, height: 40)
        let big = try slide.readRegion(x: 1010, y: 1010, width: 40, height: 40, mpp: 0.2495, tolerance: 0)
        var maxDiff = 0.0
        for j in 2..<18 {
            for i in 2..<18 {
                // Output (2i, 2j) is centred at source 10 + i − ¼ (in each axis, relative to the native crop).
                let sx = 10 + i, sy = 10 + j
                for c in 0..<3 {
                    func p(_ x: Int, _ y: Int) -> Double { Double(native.pixels[(y * 40 + x) * 3 + c]) }
                    let expected = 0.75 * (0.75 * p(sx, sy) + 0.25 * p(sx - 1, sy)) + 0.25 * (0.75 * p(sx, sy - 1) + 0.25 * p(sx - 1, sy - 1))
                    maxDiff = max(maxDiff, abs(Double(big.pixels[((2 * j) * 40 + 2 * i) * 3 + c]) - expected))
                }
            }
        }
        XCTAssertLessThanOrEqual(maxDiff, 1.0, "rounding only")
    }

    func testReadsFromManyThreadsAgree() throws {
        let slide = try Slide(url: try cmuSlideURL())
        let positions = (0..<64).map { ($0 % 8 * 250, $0 / 8 * 350) }
        let serial = try positions.map { try slide.readRegion(x: $0.0, y: $0.1, width: 128, height: 128, mpp: 0.5) }
        let results = try concurrentMap(positions.count, workers: 8) { i in
            try slide.readRegion(x: positions[i].0, y: positions[i].1, width: 128, height: 128, mpp: 0.5)
        }
        for i in positions.indices { assertSameImage(results[i], serial[i]) }
    }

    /// The slide is a strip of skin: by eye a third to two fifths of the field is tissue (the detector
    /// finds 34%), the rest glass, with teal ink at the edges. A band of 30–50% catches a detector that
    /// calls glass, enclosed glass or ink tissue (→ > 50%) or loses the pale, loose stroma (→ < 30%).
    func testTissueFractionIsPlausible() throws {
        let slide = try Slide(url: try cmuSlideURL())
        let mask = try TissueDetector().detect(slide)
        XCTAssertEqual(mask.width, Int((2220 * 0.499 / 4).rounded()))
        XCTAssertGreaterThan(mask.tissueFraction, 0.30)
        XCTAssertLessThan(mask.tissueFraction, 0.50)
        // The top-left corner is glass; a spot in the middle of the epidermis (level-0 (1200, 1700)) is tissue.
        XCTAssertEqual(mask.coverage(x: 0, y: 0, width: 200, height: 200), 0)
        XCTAssertEqual(mask.coverage(x: 1150, y: 1650, width: 100, height: 100), 1)
    }

    /// Grid mode's positions: every kept 128 px cell at 0.5 µm/px is mostly stained tissue, judged from
    /// its pixels alone (a pixel is stained when some channel is below 220; CMU's glass is ≈ 240 grey).
    func testGridCellsAreInsideTissue() throws {
        let slide = try Slide(url: try cmuSlideURL())
        let grid = TileGrid(slide: slide, mpp: 0.5, size: 128, mask: try TissueDetector().detect(slide))
        XCTAssertEqual(grid.columns, 17)
        XCTAssertEqual(grid.rows, 23)
        let cells = grid.tissueCells(minTissue: 0.6)
        XCTAssertGreaterThan(cells.count, 60)
        for (c, r) in cells {
            let o = grid.origin(column: c, row: r)
            let patch = try slide.readRegion(x: o.x, y: o.y, width: 128, height: 128, mpp: 0.5)
            var stained = 0
            for p in 0..<(128 * 128) where min(patch.pixels[p * 3], patch.pixels[p * 3 + 1], patch.pixels[p * 3 + 2]) < 220 { stained += 1 }
            XCTAssertGreaterThan(Double(stained) / Double(128 * 128), 0.4, "cell (\(c), \(r)) at level-0 (\(o.x), \(o.y)) looks like glass")
        }
    }
}
