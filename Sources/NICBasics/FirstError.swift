/// The first error of parallel work. `DispatchQueue.concurrentPerform` can neither stop early nor
/// rethrow, so its iterations record failures here, skip their work once one is recorded, and the
/// caller rethrows the first afterwards.
public final class FirstError: Sendable {
    private let stored = Locked<Error?>(nil)

    public init() {}

    public var hasError: Bool { stored.current != nil }

    public func record(_ error: Error) {
        stored.withLock { if $0 == nil { $0 = error } }
    }

    public func rethrow() throws {
        if let error = stored.current { throw error }
    }
}
