import Foundation
import Synthetic
import ImageTestSupport
import XCTest
@testable import Slides

final class BadInputTests: XCTestCase {
    func assertSlideError(_ kind: SlideError.Kind, path: String, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
        do {
            try body()
            XCTFail("expected a \(kind) error", file: file, line: line)
        } catch let error as SlideError {
            XCTAssertEqual(error.kind, kind, error.description, file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix(path), "the message names the file: \(error)", file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    func testMissingSlide() throws {
        let path = "/nonexistent/slide.svs"
        assertSlideError(.notFound, path: path) { _ = try Slide(path: path) }
    }

    func testTextFileNamedSVS() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("notes.svs")
        try "patient 12: re-scan requested\n".write(to: url, atomically: true, encoding: .utf8)
        assertSlideError(.unsupportedFormat, path: url.path) { _ = try Slide(url: url) }
    }

    /// A slide cut short (an interrupted copy) fails when opened or, at the latest, when the missing
    /// part is read — never silently returns pixels.
    func testTruncatedSlides() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let svs = try Data(contentsOf: try cmuSlideURL())
        let cut = dir.appendingPathComponent("cut.svs")
        try svs.prefix(svs.count / 2).write(to: cut)
        let tif = dir.appendingPathComponent("full.tif")
        try SyntheticSlide(SyntheticSlideSpec(width: 1024, height: 1024, seed: 2)).write(to: tif, compression: .jpeg(quality: 80))
        let cutTIF = dir.appendingPathComponent("cut.tif")
        let whole = try Data(contentsOf: tif)
        try whole.prefix(whole.count / 2).write(to: cutTIF)
        for url in [cut, cutTIF] {
            do {
                let slide = try Slide(url: url)
                _ = try slide.readLevelRegion(level: 0, x: 0, y: 0, width: slide.width, height: slide.height)
                XCTFail("\(url.lastPathComponent): read a truncated slide without an error")
            } catch let error as SlideError {
                XCTAssertTrue([.unsupportedFormat, .unreadable].contains(error.kind), error.description)
                XCTAssertTrue(error.description.hasPrefix(url.path), error.description)
            }
        }
    }

    func testSlideWithoutResolutionNeedsMPPParam() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("plain.tif")
        try PyramidTIFFWriter(url: url, width: 300, height: 300, compression: .deflate, mpp: nil).write(patternImage(width: 300, height: 300))
        assertSlideError(.missingResolution, path: url.path) { _ = try Slide(url: url) }
        let slide = try Slide(url: url, mpp: 0.25)
        XCTAssertEqual(slide.resolutionSource, .override)
        XCTAssertEqual(slide.mpp, 0.25)
        assertSlideError(.invalidArgument, path: url.path) { _ = try Slide(url: url, mpp: -1) }
    }

    func testPatchOutsideTheSlide() throws {
        let url = try cmuSlideURL()
        let slide = try Slide(url: url)
        XCTAssertNoThrow(try slide.checkPatch(centreX: 64, centreY: 64, size: 128, mpp: 0.499))
        assertSlideError(.outOfBounds, path: url.path) { try slide.checkPatch(centreX: 2200, centreY: 1000, size: 128, mpp: 0.5) }
        assertSlideError(.outOfBounds, path: url.path) { try slide.checkPatch(centreX: -5, centreY: 100, size: 128, mpp: 0.5) }
        assertSlideError(.invalidArgument, path: url.path) { _ = try slide.readLevelRegion(level: 3, x: 0, y: 0, width: 10, height: 10) }
    }
}
