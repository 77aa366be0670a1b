import Foundation
import Slides
import XCTest

/// A fresh folder under the system's temporary directory.
public func temporaryDirectory(prefix: String = "nic-test") throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A deterministic, textured test image (smooth gradients plus a checker) so both JPEG and resampling
/// errors are visible.
public func patternImage(width: Int, height: Int) -> RGBImage {
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height {
        for x in 0..<width {
            let i = (y * width + x) * 3
            let checker = ((x / 32) + (y / 32)) % 2 == 0
            pixels[i] = UInt8((x * 255) / max(1, width - 1))
            pixels[i + 1] = UInt8((y * 255) / max(1, height - 1))
            pixels[i + 2] = checker ? 200 : 60
        }
    }
    return RGBImage(width: width, height: height, pixels: pixels)
}

/// Compares images without dumping megabytes of pixels into the log on failure.
public func assertSameImage(_ a: RGBImage, _ b: RGBImage, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    guard a.width == b.width, a.height == b.height else {
        XCTFail("size \(a.width)×\(a.height) vs \(b.width)×\(b.height) \(message)", file: file, line: line)
        return
    }
    let differing = zip(a.pixels, b.pixels).filter { $0 != $1 }.count
    XCTAssertEqual(differing, 0, "\(differing) of \(a.pixels.count) channel values differ \(message)", file: file, line: line)
}
