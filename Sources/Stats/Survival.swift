import Foundation

/// Survival analysis: concordance, Kaplan–Meier, log-rank, matching scikit-survival and lifelines.
public enum Survival {
    public struct Concordance: Equatable {
        public var cindex: Double
        public var concordant: Int
        public var discordant: Int
        public var tiedRisk: Int
        public var tiedTime: Int
    }

    /// Harrell's C as scikit-survival's `concordance_index_censored(event, time, risk)`: higher risk
    /// should mean shorter survival. A pair is comparable when the earlier time is an event; an event
    /// and a censoring at the same time are comparable (the censored one outlived it); two events at
    /// the same time are not. Risk ties (|Δ| ≤ `tiedTolerance`) count ½. nil without comparable pairs.
    public static func concordance(time: [Double], event: [Bool], risk: [Double], tiedTolerance: Double = 1e-8) -> Concordance? {
        let n = time.count
        // invariant: time, event and risk are columns of the same prediction rows, so the lengths agree
        precondition(event.count == n && risk.count == n, "concordance: lengths differ")
        let order = time.indices.sorted { time[$0] < time[$1] }
        var concordant = 0, discordant = 0, tiedRisk = 0, tiedTime = 0
        var numerator = 0.0, denominator = 0.0
        var i = 0
        while i < n {
            var end = i + 1
            while end < n && time[order[end]] == time[order[i]] { end += 1 }
            let censoredHere = (i..<end).filter { !event[order[$0]] }
            for j in i..<end where event[order[j]] {
                let riskJ = risk[order[j]]
                let others = Array(end..<n).map { order[$0] } + censoredHere.map { order[$0] }
                tiedTime += censoredHere.count
                var con = 0, ties = 0
                for k in others {
                    if abs(risk[k] - riskJ) <= tiedTolerance { ties += 1 }
                    else if risk[k] < riskJ { con += 1 }
                }
                numerator += Double(con) + 0.5 * Double(ties)
                denominator += Double(others.count)
                concordant += con
                tiedRisk += ties
                discordant += others.count - con - ties
            }
            i = end
        }
        guard denominator > 0 else { return nil }
        return Concordance(cindex: numerator / denominator, concordant: concordant, discordant: discordant, tiedRisk: tiedRisk, tiedTime: tiedTime)
    }

    public struct KaplanMeierPoint: Equatable {
        public var time: Double
        public var atRisk: Int
        public var events: Int
        public var censored: Int
        public var survival: Double
        /// Greenwood's variance of S(t).
        public var variance: Double
    }

    /// The Kaplan–Meier estimate at every distinct observed time (events and censorings), as
    /// lifelines' `KaplanMeierFitter.survival_function_` (without its t = 0 row).
    public static func kaplanMeier(time: [Double], event: [Bool]) -> [KaplanMeierPoint] {
        let times = Array(Set(time)).sorted()
        var atRisk = time.count
        var survival = 1.0
        var greenwood = 0.0
        var points: [KaplanMeierPoint] = []
        for t in times {
            let here = time.indices.filter { time[$0] == t }
            let d = here.filter { event[$0] }.count
            let c = here.count - d
            if d > 0 {
                survival *= 1 - Double(d) / Double(atRisk)
                if atRisk > d { greenwood += Double(d) / (Double(atRisk) * Double(atRisk - d)) }
            }
            points.append(KaplanMeierPoint(time: t, atRisk: atRisk, events: d, censored: c, survival: survival,
                                           variance: survival * survival * greenwood))
            atRisk -= here.count
        }
        return points
    }

    public struct LogRank: Equatable {
        public var statistic: Double
        public var degreesOfFreedom: Int
        public var pValue: Double
    }

    /// The log-rank test of equal survival across groups (lifelines' `multivariate_logrank_test`;
    /// for two groups the same as `logrank_test`). nil with fewer than two groups.
    public static func logRank(time: [Double], event: [Bool], group: [Int]) -> LogRank? {
        let groups = Array(Set(group)).sorted()
        guard groups.count >= 2 else { return nil }
        let k = groups.count
        let index = Dictionary(uniqueKeysWithValues: groups.enumerated().map { ($1, $0) })
        var observedMinusExpected = [Double](repeating: 0, count: k)
        var covariance = [[Double]](repeating: [Double](repeating: 0, count: k), count: k)
        var atRisk = [Double](repeating: 0, count: k)
        for g in group { atRisk[index[g]!] += 1 }
        for t in Array(Set(time)).sorted() {
            let here = time.indices.filter { time[$0] == t }
            var deaths = [Double](repeating: 0, count: k)
            for i in here where event[i] { deaths[index[group[i]]!] += 1 }
            let d = deaths.reduce(0, +)
            let n = atRisk.reduce(0, +)
            if d > 0 && n > 0 {
                for a in 0..<k {
                    observedMinusExpected[a] += deaths[a] - d * atRisk[a] / n
                    if n > 1 {
                        let factor = d * (n - d) / (n * n * (n - 1))
                        for b in 0..<k {
                            covariance[a][b] += factor * atRisk[a] * ((a == b ? n : 0) - atRisk[b])
                        }
                    }
                }
            }
            for i in here { atRisk[index[group[i]]!] -= 1 }
        }
        // Drop the last group (the covariance is singular) and solve Z' V⁻¹ Z.
        let m = k - 1
        let z = Array(observedMinusExpected.prefix(m))
        let v = covariance.prefix(m).map { Array($0.prefix(m)) }
        guard let solved = LinearAlgebra.solve(v, z) else { return nil }
        let statistic = zip(z, solved).reduce(0) { $0 + $1.0 * $1.1 }
        return LogRank(statistic: statistic, degreesOfFreedom: m, pValue: SpecialFunctions.chiSquaredSurvival(statistic, degreesOfFreedom: Double(m)))
    }
}
