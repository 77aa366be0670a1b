import Foundation

/// A value guarded by a lock, reachable only inside `withLock`, so no caller can forget to unlock
/// (the shape of swift-nio's `NIOLockedValueBox`). The one lock box every nic module uses.
public final class Locked<Value>: @unchecked Sendable {  // the lock serialises every access to `value`
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    @discardableResult
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    /// A copy of the current value.
    public var current: Value { withLock { $0 } }
}

extension Locked where Value: BinaryInteger {
    /// Returns the value before adding one: hands out work items to parallel workers.
    public func fetchAndIncrement() -> Value {
        withLock { value in
            defer { value += 1 }
            return value
        }
    }
}
