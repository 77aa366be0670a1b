import NICBasics
import XCTest

@testable import TensorStore

final class ZstdTests: XCTestCase {
    func testRoundTrip() throws {
        let data = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 / 7) }
        for level in [-5, 1, 3, 19] {
            let compressed = try Zstd.compress(data, level: level)
            XCTAssertLessThan(compressed.count, data.count / 4)
            XCTAssertEqual(try Zstd.decompress(compressed, expectedSize: data.count), data)
        }
    }

    func testFrameChecksumOption() throws {
        let data = [UInt8](repeating: 9, count: 1000)
        let plain = try Zstd.compress(data, level: 3)
        let checked = try Zstd.compress(data, level: 3, checksum: true)
        XCTAssertEqual(checked.count, plain.count + 4)
        XCTAssertEqual(try Zstd.decompress(checked, expectedSize: 1000), data)
    }

    func testWrongExpectedSizeIsAnError() throws {
        let compressed = try Zstd.compress([UInt8](repeating: 1, count: 100), level: 3)
        XCTAssertThrowsError(try Zstd.decompress(compressed, expectedSize: 99))
        XCTAssertThrowsError(try Zstd.decompress(compressed, expectedSize: 101))
    }

    func testGarbageIsAnError() {
        XCTAssertThrowsError(try Zstd.decompress([1, 2, 3, 4, 5, 6, 7, 8], expectedSize: 8)) { error in
            XCTAssertTrue("\(error)".contains("zstd"), "\(error)")
        }
    }

    func testConcurrentUse() throws {
        let inputs = (0..<16).map { n in (0..<20_000).map { UInt8(truncatingIfNeeded: $0 % (n + 3)) } }
        let results = Locked([Bool](repeating: false, count: inputs.count))
        DispatchQueue.concurrentPerform(iterations: inputs.count) { i in
            let ok = (try? Zstd.decompress(Zstd.compress(inputs[i], level: 3), expectedSize: inputs[i].count)) == inputs[i]
            results.withLock { $0[i] = ok }
        }
        XCTAssertTrue(results.current.allSatisfy { $0 })
    }
}
