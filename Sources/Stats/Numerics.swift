import Foundation

enum LinearAlgebra {
    /// Solves A x = b by Gaussian elimination with partial pivoting; nil if A is singular.
    static func solve(_ a: [[Double]], _ b: [Double]) -> [Double]? {
        let n = b.count
        var m = a
        var rhs = b
        for col in 0..<n {
            var pivot = col
            for row in col + 1..<max(col + 1, n) where abs(m[row][col]) > abs(m[pivot][col]) { pivot = row }
            guard abs(m[pivot][col]) > 1e-300 else { return nil }
            if pivot != col { m.swapAt(pivot, col); rhs.swapAt(pivot, col) }
            for row in col + 1..<max(col + 1, n) {
                let f = m[row][col] / m[col][col]
                if f == 0 { continue }
                for c in col..<n { m[row][c] -= f * m[col][c] }
                rhs[row] -= f * rhs[col]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for row in stride(from: n - 1, through: 0, by: -1) {
            var s = rhs[row]
            for c in row + 1..<max(row + 1, n) { s -= m[row][c] * x[c] }
            x[row] = s / m[row][row]
        }
        return x
    }
}

/// Solves A x = b (Gaussian elimination, partial pivoting); nil if A is singular.
public func solveLinearSystem(_ a: [[Double]], _ b: [Double]) -> [Double]? { LinearAlgebra.solve(a, b) }

public enum SpecialFunctions {
    /// P(X > x) for X ~ χ²(k): the regularized upper incomplete gamma Q(k/2, x/2).
    public static func chiSquaredSurvival(_ x: Double, degreesOfFreedom k: Double) -> Double {
        guard x > 0 else { return 1 }
        return regularizedGammaQ(k / 2, x / 2)
    }

    /// Q(a, x) = Γ(a, x)/Γ(a): series for x < a + 1, Lentz continued fraction otherwise (Numerical Recipes).
    public static func regularizedGammaQ(_ a: Double, _ x: Double) -> Double {
        if x <= 0 { return 1 }
        let logPrefix = -x + a * log(x) - lgamma(a)
        if x < a + 1 {
            var sum = 1 / a, term = 1 / a, ap = a
            for _ in 0..<10_000 {
                ap += 1
                term *= x / ap
                sum += term
                if abs(term) < abs(sum) * 1e-16 { break }
            }
            return max(0, 1 - sum * exp(logPrefix))
        }
        let tiny = 1e-300
        var b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d
        for i in 1..<10_000 {
            let an = -Double(i) * (Double(i) - a)
            b += 2
            d = an * d + b
            if abs(d) < tiny { d = tiny }
            c = b + an / c
            if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < 1e-16 { break }
        }
        return exp(logPrefix) * h
    }
}

