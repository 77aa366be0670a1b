import Foundation

/// State guarded by a condition lock, for threads that wait until the state lets them go on (a queue
/// with room, a batch ready, a worker finished). Like `Locked`, the state is reachable only inside
/// `withLock`, and a wait is always a loop on a predicate of the state: nobody forgets to unlock,
/// and a spurious wake-up or a wake-up meant for another waiter only makes the predicate be read again.
public final class Condition<State>: @unchecked Sendable {  // the condition's lock serialises every access to `state`
    private let condition = NSCondition()
    private var state: State

    public init(_ state: State) { self.state = state }

    /// Runs `body` on the state under the lock. With `wakingWaiters`, wakes every waiter once `body`
    /// has run (before unlocking), so that each reads the changed state again.
    @discardableResult
    public func withLock<Result>(wakingWaiters: Bool = false, _ body: (inout State) throws -> Result) rethrows -> Result {
        try withLock(until: { _ in true }, wakingWaiters: wakingWaiters, body)
    }

    /// Waits (the lock released while waiting) until `ready` holds of the state, then runs `body` on
    /// it under the same hold of the lock, so `body` sees a state the predicate accepted.
    @discardableResult
    public func withLock<Result>(until ready: (State) -> Bool, wakingWaiters: Bool = false,
                                 _ body: (inout State) throws -> Result) rethrows -> Result {
        condition.lock()
        defer { condition.unlock() }
        while !ready(state) { condition.wait() }
        // Wakes even when `body` throws: what it changed before throwing may be what a waiter waits for.
        defer { if wakingWaiters { condition.broadcast() } }
        return try body(&state)
    }

    /// Waits until the predicate holds of the state.
    public func wait(until ready: (State) -> Bool) {
        withLock(until: ready) { _ in }
    }

    /// Wakes one waiter to read the state again.
    public func signal() {
        condition.lock()
        condition.signal()
        condition.unlock()
    }

    /// Wakes every waiter to read the state again.
    public func broadcast() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// A copy of the current state.
    public var current: State { withLock { $0 } }
}
