import Foundation
import ImageTestSupport
import XCTest
@testable import Slides

/// The real Aperio test slide, fetched by scripts/fetch-test-data.sh (`make test` runs it first).
func cmuSlideURL(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
    let dir = ProcessInfo.processInfo.environment["NIC_TEST_DATA"].map { URL(fileURLWithPath: $0) }
        ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/nic/data")
    let url = dir.appendingPathComponent("CMU-1-Small-Region.svs")
    guard FileManager.default.fileExists(atPath: url.path) else {
        XCTFail("missing test slide \(url.path): run scripts/fetch-test-data.sh (or `make test`)", file: file, line: line)
        throw XCTSkip("missing test slide")
    }
    return url
}

func fixtureURL(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name)
}

