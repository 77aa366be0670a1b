import Foundation
import NICBasics
import XCTest

final class LockedTests: XCTestCase {
    /// Every worker gets its own item: no number handed out twice, none skipped.
    func testFetchAndIncrementHandsOutEachNumberOnce() {
        let next = Locked(0)
        let taken = Locked<[Int]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<500 {
                let item = next.fetchAndIncrement()
                taken.withLock { $0.append(item) }
            }
        }
        XCTAssertEqual(taken.current.sorted(), Array(0..<4000))
        XCTAssertEqual(next.current, 4000)
    }

    struct Numbered: Error, Equatable { let n: Int }

    func testFirstErrorKeepsTheFirstAndRethrowsIt() {
        let failures = FirstError()
        XCTAssertFalse(failures.hasError)
        XCTAssertNoThrow(try failures.rethrow())
        failures.record(Numbered(n: 1))
        failures.record(Numbered(n: 2))
        XCTAssertTrue(failures.hasError)
        XCTAssertThrowsError(try failures.rethrow()) { XCTAssertEqual($0 as? Numbered, Numbered(n: 1)) }
    }
}
