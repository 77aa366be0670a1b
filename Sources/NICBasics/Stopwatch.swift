import Dispatch

/// Monotonic seconds since it was made: for reporting where a node's time went.
public struct Stopwatch: Sendable {
    private let start = DispatchTime.now().uptimeNanoseconds

    public init() {}

    public var seconds: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
}
