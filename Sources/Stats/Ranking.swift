import Foundation

/// Correlation and ranking, matching scipy.stats (`rankdata(method="average")`, `pearsonr`, `spearmanr`).
public enum Correlation {
    /// 1-based ranks; tied values share the average of the ranks they span.
    public static func averageRanks(_ values: [Double]) -> [Double] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && values[order[j + 1]] == values[order[i]] { j += 1 }
            let rank = Double(i + j) / 2 + 1
            for k in i...j { ranks[order[k]] = rank }
            i = j + 1
        }
        return ranks
    }

    /// Pearson's r; nil when either side is constant or there are fewer than 2 points.
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double? {
        // invariant: callers pass two columns of the same rows, so the lengths agree
        precondition(x.count == y.count, "pearson: lengths differ")
        guard x.count >= 2 else { return nil }
        let n = Double(x.count)
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for i in x.indices {
            let dx = x[i] - mx, dy = y[i] - my
            sxy += dx * dy
            sxx += dx * dx
            syy += dy * dy
        }
        guard sxx > 0, syy > 0 else { return nil }
        return max(-1, min(1, sxy / (sxx * syy).squareRoot()))
    }

    /// Spearman's ρ: Pearson's r on average ranks (ties handled as scipy does).
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double? {
        pearson(averageRanks(x), averageRanks(y))
    }
}
