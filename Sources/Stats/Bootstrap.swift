import Foundation
import NICBasics

/// Percentile bootstrap confidence intervals over resampled units (patients), seeded.
public enum Bootstrap {
    public struct Interval: Equatable {
        public var estimate: Double
        public var low: Double
        public var high: Double
        /// Resamples on which the statistic was defined (e.g. both classes present).
        public var valid: Int
    }

    /// `statistic` receives the indices of one resample (drawn with replacement) and may return nil
    /// when undefined on it (such resamples are skipped, as is usual for AUC with one class).
    /// `stop` is asked between resamples (a run being cancelled): the interval then covers fewer.
    public static func interval(count: Int, resamples: Int, confidence: Double = 0.95, seed: UInt64, stop: () -> Bool = { false },
                                statistic: ([Int]) -> Double?) -> Interval? {
        guard count > 0, let estimate = statistic(Array(0..<count)) else { return nil }
        let values = replicates(count: count, resamples: resamples, seed: seed, stop: stop) { statistic($0).flatMap { $0.isFinite ? $0 : nil } }
        return percentile(estimate: estimate, replicates: values, confidence: confidence)
    }

    /// The percentile interval of bootstrap replicates around `estimate`: NaN bounds when there are too
    /// few replicates for each tail to hold one ((1 − confidence) / 2 · count < 1), where the quantiles
    /// would be the extreme replicates — with one resample, a "95 % CI" that need not contain the estimate.
    public static func percentile(estimate: Double, replicates values: [Double], confidence: Double) -> Interval {
        let alpha = (1 - confidence) / 2
        guard !values.isEmpty, alpha * Double(values.count) >= 1 else { return Interval(estimate: estimate, low: .nan, high: .nan, valid: values.count) }
        let sorted = values.sorted()
        return Interval(estimate: estimate, low: quantile(sorted, alpha), high: quantile(sorted, 1 - alpha), valid: sorted.count)
    }

    /// The statistic on each of `resamples` resamples of `count` units, in draw order, skipping those
    /// where it is nil. Resample r draws the same indices for the same seed whatever the statistic, so
    /// two models judged with one seed see the same patients (a paired bootstrap). The draws: SplitMix64
    /// from `seed`, index = next() mod count, `count` per resample.
    /// `stop` is asked between resamples, so that a million resamples do not outlast a Ctrl-C.
    public static func replicates<Value>(count: Int, resamples: Int, seed: UInt64, stop: () -> Bool = { false },
                                         statistic: ([Int]) -> Value?) -> [Value] {
        guard count > 0 else { return [] }
        var rng = SplitMix64(seed: seed)
        var values: [Value] = []
        values.reserveCapacity(resamples)
        var indices = [Int](repeating: 0, count: count)
        for _ in 0..<resamples {
            if stop() { break }
            for i in 0..<count { indices[i] = Int(rng.next() % UInt64(count)) }
            if let v = statistic(indices) { values.append(v) }
        }
        return values
    }

    /// Linear interpolation between order statistics (numpy's default `percentile`).
    public static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        guard sorted.count > 1 else { return sorted.first ?? .nan }
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down)), upper = min(lower + 1, sorted.count - 1)
        let fraction = position - Double(lower)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
    }
}
