import Foundation
import Slides
import ImageTestSupport
import XCTest
@testable import Synthetic

final class TIFFWriterTests: XCTestCase {
    func testDeflateRoundTripIsExactAtEveryLevel() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("pattern.tif")
        let image = patternImage(width: 700, height: 530)
        let writer = try PyramidTIFFWriter(url: url, width: 700, height: 530, tileSize: 256, compression: .deflate, mpp: 0.5)
        try writer.write(image)

        let slide = try Slide(url: url)
        XCTAssertEqual(slide.vendor, "generic-tiff")
        XCTAssertEqual(slide.width, 700)
        XCTAssertEqual(slide.height, 530)
        XCTAssertEqual(slide.mpp, 0.5, accuracy: 1e-6)
        XCTAssertEqual(slide.levels.count, 3)
        XCTAssertEqual(slide.levels.map(\.width), [700, 350, 175])
        assertSameImage(try slide.readLevelRegion(level: 0, x: 0, y: 0, width: 700, height: 530), image)
        assertSameImage(try slide.readLevelRegion(level: 1, x: 0, y: 0, width: 350, height: 265), Resample.halve(image))
        // No leftovers of the spooled pyramid next to the file.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["pattern.tif"])
    }

    func testJPEGRoundTripIsWithinJPEGTolerance() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("pattern.tif")
        let image = patternImage(width: 600, height: 400)
        try PyramidTIFFWriter(url: url, width: 600, height: 400, compression: .jpeg(quality: 95), mpp: 0.25).write(image)
        let slide = try Slide(url: url)
        XCTAssertEqual(slide.mpp, 0.25, accuracy: 1e-6)
        let back = try slide.readLevelRegion(level: 0, x: 0, y: 0, width: 600, height: 400)
        var sumAbs = 0, maxAbs = 0
        for (a, b) in zip(image.pixels, back.pixels) {
            let d = abs(Int(a) - Int(b)); sumAbs += d; maxAbs = max(maxAbs, d)
        }
        let mean = Double(sumAbs) / Double(image.pixels.count)
        // Quality 95 with 4:2:0 chroma: small mean error; the checker's sharp blue edges give the max.
        XCTAssertLessThan(mean, 3.0)
        XCTAssertLessThan(maxAbs, 90)
    }
}
