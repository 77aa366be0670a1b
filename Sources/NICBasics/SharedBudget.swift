import Foundation

/// One thread budget shared by the stages of a pipeline that run at once (reading tiles and encoding
/// them): a stage takes threads before it works and gives them back after, and together the stages
/// never hold more than the budget. A stage that waits for another (an encoder with nothing to encode,
/// a reader whose queue is full) holds none, so the working stage can take them all: the cores stay
/// busy without ever running more workers than the budget allows.
public final class SharedBudget: Sendable {
    private let holdings: Condition<Holdings>
    private let total: @Sendable () -> Int

    /// What the stages hold, guarded by the condition that stages waiting for a thread wait on.
    private struct Holdings {
        var held: [Int]
        var mostHeld = 0
        /// Stages that hold threads and want more as they come free: how many in all, and how to tell them.
        var wanting: [Int: (most: Int, grow: @Sendable (Int) -> Void)] = [:]

        func free(of total: Int) -> Int { max(1, total) - held.reduce(0, +) }

        mutating func grow(_ stage: Int, most: Int, total: Int) -> Int {
            let extra = max(0, min(free(of: total), max(1, most) - held[stage]))
            held[stage] += extra
            mostHeld = max(mostHeld, held.reduce(0, +))
            return held[stage]
        }
    }

    /// `total()` is read at every request, so a budget that changes while the pipeline runs (the
    /// engine re-divides the cores as nodes start and finish) is followed.
    public init(stages: Int, total: @escaping @Sendable () -> Int) {
        self.total = total
        holdings = Condition(Holdings(held: [Int](repeating: 0, count: stages)))
    }

    /// Waits until a thread is free, then gives `stage` as many free threads as it asks for (at
    /// least one, at most `most` in all for the stage); returns what the stage now holds. With
    /// `grow`, threads another stage gives back later go to this one (up to `most`) until it
    /// releases, and `grow` hears its new count: a stage that must not wait (a training step) gets
    /// the whole budget back as soon as the other stage (a loader) finishes what it holds them for.
    @discardableResult
    public func acquire(_ stage: Int, most: Int, grow: (@Sendable (Int) -> Void)? = nil) -> Int {
        let total = self.total
        return holdings.withLock(until: { $0.free(of: total()) > 0 || $0.held[stage] != 0 }) { holdings in
            if let grow { holdings.wanting[stage] = (most, grow) }
            return holdings.grow(stage, most: most, total: total())
        }
    }

    /// Without waiting, takes free threads for `stage` up to `most`; returns what it now holds.
    @discardableResult
    public func take(_ stage: Int, most: Int) -> Int {
        holdings.withLock { $0.grow(stage, most: most, total: total()) }
    }

    /// Gives back all but `keep` of the stage's threads.
    public func release(_ stage: Int, keep: Int = 0) {
        holdings.withLock(wakingWaiters: true) { holdings in
            holdings.held[stage] = min(holdings.held[stage], max(0, keep))
            if holdings.held[stage] == 0 { holdings.wanting[stage] = nil }
            for (other, want) in holdings.wanting.sorted(by: { $0.key < $1.key })
            where other != stage && holdings.held[other] < want.most && holdings.free(of: total()) > 0 {
                want.grow(holdings.grow(other, most: want.most, total: total()))
            }
        }
    }

    /// What a stage holds now.
    public func holding(_ stage: Int) -> Int {
        holdings.withLock { $0.held[stage] }
    }

    /// The most threads the stages held at once.
    public var peak: Int {
        holdings.withLock { $0.mostHeld }
    }
}
