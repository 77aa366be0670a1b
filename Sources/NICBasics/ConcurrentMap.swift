
/// `body(i)` for every i in 0..<count on at most `workers` threads, the results in index order: the
/// one bounded parallel loop for reading slides, tiles and chunks. Workers take interleaved items, so
/// slow and fast items spread evenly, and run as workers of the current compute context (a node's
/// budget), which counts them. After the first error no item starts, and that error is thrown.
public func concurrentMap<T: Sendable>(_ count: Int, workers: Int, _ body: @Sendable (Int) throws -> T) throws -> [T] {
    guard count > 0 else { return [] }
    let n = max(1, min(workers, count))
    if n == 1 { return try (0..<count).map(body) }
    let slots = Locked([T?](repeating: nil, count: count))
    let failure = Locked<(any Error)?>(nil)
    CurrentCompute.context.runWorkers(n) { w in
        for i in Swift.stride(from: w, to: count, by: n) {
            if failure.withLock({ $0 != nil }) { return }
            do {
                let value = try body(i)
                slots.withLock { $0[i] = value }
            } catch {
                failure.withLock { if $0 == nil { $0 = error } }
                return
            }
        }
    }
    if let error = failure.current { throw error }
    return slots.current.map { $0! }
}
