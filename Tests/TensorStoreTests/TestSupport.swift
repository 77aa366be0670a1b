import Foundation
import XCTest

@testable import TensorStore

/// A fresh temporary folder per test, removed afterwards.
class TemporaryDirectoryTestCase: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory
            .appendingPathComponent("TensorStoreTests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let tmp { try? FileManager.default.removeItem(at: tmp) }
    }

    /// Asserts that `body` throws a ZarrError whose description contains every fragment.
    func assertZarrError<R>(
        _ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> R
    ) {
        do {
            _ = try body()
            XCTFail("expected a ZarrError containing \(fragments)", file: file, line: line)
        } catch let error as ZarrError {
            for fragment in fragments where !error.description.contains(fragment) {
                XCTFail("error \"\(error)\" does not mention \"\(fragment)\"", file: file, line: line)
            }
        } catch {
            XCTFail("expected a ZarrError, got \(error)", file: file, line: line)
        }
    }
}

/// C-order reference extraction of a chunk's region, padded with `fill`.
func referenceChunk<T>(_ values: [T], shape: [Int], chunkShape: [Int], index: [Int], fill: T) -> [T] {
    let rank = shape.count
    let count = chunkShape.reduce(1, *)
    var out = [T](repeating: fill, count: count)
    for k in 0..<count {
        var rest = k
        var local = [Int](repeating: 0, count: rank)
        for d in stride(from: rank - 1, through: 0, by: -1) {
            local[d] = rest % chunkShape[d]
            rest /= chunkShape[d]
        }
        var flat = 0
        var inside = true
        for d in 0..<rank {
            let g = index[d] * chunkShape[d] + local[d]
            if g >= shape[d] { inside = false; break }
            flat = flat * shape[d] + g
        }
        if inside { out[k] = values[flat] }
    }
    return out
}
