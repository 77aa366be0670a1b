import NICBasics

/// Runs `body(chunk)` for `chunks` pieces of work as workers of the current context; inside a worker
/// the pieces run in turn on its thread.
@inline(__always)
func parallelFor(_ chunks: Int, _ body: (Int) -> Void) {
    if CurrentCompute.isWorker {
        for i in 0..<chunks { body(i) }
        return
    }
    CurrentCompute.context.runWorkers(chunks, body)
}

/// Splits `0..<count` into `Compute.pieces` ranges (fewer when a range would be shorter than
/// `minimum`); one range inside a worker. The cut never depends on the thread budget: reductions
/// over the ranges then add the same partial sums in the same order on any budget.
func splitRange(_ count: Int, minimum: Int = 1) -> [Range<Int>] {
    let parts = CurrentCompute.isWorker ? 1 : max(1, min(Compute.pieces, count / max(1, minimum)))
    var ranges: [Range<Int>] = []
    var start = 0
    for p in 0..<parts {
        let end = count * (p + 1) / parts
        if end > start { ranges.append(start..<end) }
        start = end
    }
    return ranges
}

/// Runs `body(range)` on disjoint pieces of `0..<count`, in parallel when worth it. Inlined so that
/// element-wise closures are specialised into the loop instead of called per element.
@inline(__always)
func parallelRanges(_ count: Int, minimum: Int = 1, _ body: (Range<Int>) -> Void) {
    let ranges = splitRange(count, minimum: minimum)
    parallelFor(ranges.count) { body(ranges[$0]) }
}
