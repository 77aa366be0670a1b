import Foundation
import NICBasics
import XCTest

final class ConditionTests: XCTestCase {
    /// A bounded queue: producers wait for room, consumers for an item. Every item is taken exactly
    /// once and the queue never holds more than its bound, whatever the interleaving.
    func testProducersAndConsumersOfABoundedQueueMeetExactly() {
        struct Queue {
            var items: [Int] = []
            var claimed = 0
            var mostQueued = 0
        }
        let queue = Condition(Queue())
        let bound = 3, producers = 4, consumers = 3, perProducer = 300
        let total = producers * perProducer
        let taken = Locked<[Int]>([])
        // Threads of their own (not a concurrentPerform, which may run fewer at once than asked and
        // would leave the producers waiting for consumers that never start).
        let finished = DispatchGroup()
        for worker in 0..<(producers + consumers) {
            finished.enter()
            Thread.detachNewThread {
                defer { finished.leave() }
                if worker < producers {
                    for i in 0..<perProducer {
                        queue.withLock(until: { $0.items.count < bound }, wakingWaiters: true) { queue in
                            queue.items.append(worker * perProducer + i)
                            queue.mostQueued = max(queue.mostQueued, queue.items.count)
                        }
                    }
                    return
                }
                // Consumers share out the items: each takes until every item has been claimed.
                while true {
                    let item = queue.withLock(until: { !$0.items.isEmpty || $0.claimed == total }, wakingWaiters: true) { queue -> Int? in
                        guard !queue.items.isEmpty else { return nil }
                        queue.claimed += 1
                        return queue.items.removeFirst()
                    }
                    guard let item else { return }
                    taken.withLock { $0.append(item) }
                }
            }
        }
        XCTAssertEqual(finished.wait(timeout: .now() + 60), .success, "producers or consumers still waiting")
        XCTAssertEqual(taken.current.sorted(), Array(0..<total))
        XCTAssertEqual(queue.current.claimed, total)
        XCTAssertLessThanOrEqual(queue.current.mostQueued, bound)
    }

    /// A waiter sleeps while the predicate is false and wakes when another thread makes it true.
    func testAWaiterWakesWhenThePredicateTurnsTrue() {
        let flag = Condition(false)
        let woke = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            flag.wait(until: { $0 })
            woke.signal()
        }
        // While the predicate is false the waiter stays asleep…
        XCTAssertEqual(woke.wait(timeout: .now() + 0.05), .timedOut)
        // …and making it true, with a wake-up, lets it go on.
        flag.withLock(wakingWaiters: true) { $0 = true }
        XCTAssertEqual(woke.wait(timeout: .now() + 10), .success)
    }

    /// A body that throws still wakes the waiters: what it changed before throwing is seen.
    func testAThrowingBodyStillWakesWaiters() {
        struct Failed: Error {}
        let count = Condition(0)
        let woke = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            count.wait(until: { $0 > 0 })
            woke.signal()
        }
        XCTAssertEqual(woke.wait(timeout: .now() + 0.05), .timedOut)
        XCTAssertThrowsError(try count.withLock(wakingWaiters: true) { value in
            value += 1
            throw Failed()
        })
        XCTAssertEqual(woke.wait(timeout: .now() + 10), .success)
    }
}
