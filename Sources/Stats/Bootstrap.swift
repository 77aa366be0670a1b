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
    public static func interval(count: Int, resamples: Int, confidence: Double = 0.95, seed: UInt64,
                                statistic: ([Int]) -> Double?) -> Interval? {
        guard count > 0, let estimate = statistic(Array(0..<count)) else { return nil }
        var rng = SplitMix64(seed: seed)
        var values: [Double] = []
        values.reserveCapacity(resamples)
        var indices = [Int](repeating: 0, count: count)
        for _ in 0..<resamples {
            for i in 0..<count { indices[i] = Int(rng.next() % UInt64(count)) }
            if let v = statistic(indices), v.isFinite { values.append(v) }
        }
        guard !values.isEmpty else { return Interval(estimate: estimate, low: .nan, high: .nan, valid: 0) }
        values.sort()
        let alpha = (1 - confidence) / 2
        return Interval(estimate: estimate, low: quantile(values, alpha), high: quantile(values, 1 - alpha), valid: values.count)
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
