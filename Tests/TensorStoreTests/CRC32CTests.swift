import NICBasics
import XCTest

@testable import TensorStore

final class CRC32CTests: XCTestCase {
    func testStandardCheckValue() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
    }

    /// Vectors from RFC 3720 (iSCSI), appendix B.4.
    func testRFC3720Vectors() {
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }), 0x113F_DB5C)
    }

    func testEmptyInput() {
        XCTAssertEqual(CRC32C.checksum([]), 0)
    }

    func testSeedContinuesAChecksum() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let first = CRC32C.checksum(Array(data[..<split]))
            XCTAssertEqual(CRC32C.checksum(Array(data[split...]), seed: first), CRC32C.checksum(data), "split \(split)")
        }
    }

    /// The slice-by-8 path against a bytewise reference, over lengths and alignments.
    func testMatchesBitwiseReference() {
        func reference(_ bytes: [UInt8]) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for b in bytes {
                crc ^= UInt32(b)
                for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            return ~crc
        }
        var rng = SplitMix64(seed: 42)
        let data = (0..<300).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for start in 0..<9 {
            for length in [0, 1, 7, 8, 15, 16, 17, 63, 64, 200] where start + length <= data.count {
                let slice = Array(data[start..<start + length])
                XCTAssertEqual(CRC32C.checksum(slice), reference(slice), "start \(start) length \(length)")
            }
        }
    }
}
