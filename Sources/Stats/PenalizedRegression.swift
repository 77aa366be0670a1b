import Foundation

/// L2-penalised linear models with an unpenalised intercept, fitted exactly (closed form or
/// Newton–Raphson), for linear probes on a few hundred features and tens of patients.
///
/// One penalty convention for every model: the fit minimises the *mean* loss per subject plus
/// `λ/2 ‖w‖²` (the intercept is not penalised). In scikit-learn's terms:
/// - ridge, loss `½ (y − ŷ)²`: `Ridge(alpha = n · λ)`;
/// - logistic, loss `log(1 + e^η) − y η`: `LogisticRegression(C = 1 / (n · λ))`;
/// - multinomial, loss `−log softmax(η)_y`: the same `C`, every class's weights penalised (as
///   scikit-learn's multinomial fit). The intercepts are free up to a common constant: the fit holds
///   the last one at 0 (a flat direction would leave Newton's system singular) and reports them
///   shifted to sum 0, as scikit-learn's are; no probability changes.
/// Cox (`CoxRegression.fit(penalty:)`) follows the same convention, which is lifelines'.
public enum PenalizedRegression {
    public struct Fit: Equatable {
        /// One per output (one, or one per class for multinomial).
        public var intercepts: [Double]
        /// One row per output, one weight per column of the design.
        public var weights: [[Double]]
    }

    /// Ridge regression in closed form: `(Zcᵀ Zc + nλ I) w = Zcᵀ (y − ȳ)` on column-centred Z, `b = ȳ − z̄·w`.
    public static func ridge(_ z: [[Double]], _ y: [Double], penalty: Double) -> Fit? {
        let n = z.count
        guard n > 0, n == y.count else { return nil }
        let p = z[0].count
        let zMean = (0..<p).map { j in z.reduce(0) { $0 + $1[j] } / Double(n) }
        let yMean = y.reduce(0, +) / Double(n)
        var a = [[Double]](repeating: [Double](repeating: 0, count: p), count: p), rhs = [Double](repeating: 0, count: p)
        for (row, target) in zip(z, y) {
            let centred = (0..<p).map { row[$0] - zMean[$0] }
            for i in 0..<p {
                rhs[i] += centred[i] * (target - yMean)
                for j in 0..<p { a[i][j] += centred[i] * centred[j] }
            }
        }
        for i in 0..<p { a[i][i] += Double(n) * penalty }
        guard let w = LinearAlgebra.solve(a, rhs) else { return nil }
        return Fit(intercepts: [yMean - zip(zMean, w).reduce(0) { $0 + $1.0 * $1.1 }], weights: [w])
    }

    /// Binary logistic regression; `y[i]` true for the positive class.
    public static func logistic(_ z: [[Double]], _ y: [Bool], penalty: Double) -> Fit? {
        let n = z.count
        guard n > 0, n == y.count else { return nil }
        let p = z[0].count, m = p + 1
        // θ = [b, w]; x̃ = [1, z].
        let theta = newton(parameters: m) { theta in
            var loss = 0.0, gradient = [Double](repeating: 0, count: m)
            var hessian = [[Double]](repeating: [Double](repeating: 0, count: m), count: m)
            for (row, positive) in zip(z, y) {
                var eta = theta[0]
                for j in 0..<p { eta += theta[j + 1] * row[j] }
                let mu = 1 / (1 + exp(-eta)), target = positive ? 1.0 : 0.0
                loss += max(eta, 0) + log1p(exp(-abs(eta))) - target * eta
                let r = mu - target, v = mu * (1 - mu)
                for a in 0..<m {
                    let xa = a == 0 ? 1 : row[a - 1]
                    gradient[a] += r * xa
                    for b in a..<m { hessian[a][b] += v * xa * (b == 0 ? 1 : row[b - 1]) }
                }
            }
            return penalise(loss, gradient, hessian, theta, n: n, penalty: penalty, block: m)
        }
        guard let theta else { return nil }
        return Fit(intercepts: [theta[0]], weights: [Array(theta[1...])])
    }

    /// Multinomial (softmax) logistic regression; `y[i]` in 0..<classes.
    public static func multinomial(_ z: [[Double]], _ y: [Int], classes k: Int, penalty: Double) -> Fit? {
        let n = z.count
        guard n > 0, n == y.count, k >= 2, y.allSatisfy({ $0 >= 0 && $0 < k }) else { return nil }
        let p = z[0].count, block = p + 1, m = k * block, pinned = (k - 1) * block
        // θ = [b₀, w₀, b₁, w₁, …] without b_{k−1} (held at 0); the Hessian is Σᵢ (diag μᵢ − μᵢμᵢᵀ) ⊗ x̃ᵢx̃ᵢᵀ.
        let free = newton(parameters: m - 1) { free in
            var theta = free
            theta.insert(0, at: pinned)
            var loss = 0.0, gradient = [Double](repeating: 0, count: m)
            var hessian = [[Double]](repeating: [Double](repeating: 0, count: m), count: m)
            for (row, label) in zip(z, y) {
                let x = [1] + row
                let eta = (0..<k).map { c in (0..<block).reduce(0.0) { $0 + theta[c * block + $1] * x[$1] } }
                let top = eta.max()!, e = eta.map { exp($0 - top) }, total = e.reduce(0, +)
                let mu = e.map { $0 / total }
                loss += top + log(total) - eta[label]
                for c in 0..<k {
                    let r = mu[c] - (c == label ? 1 : 0)
                    for a in 0..<block { gradient[c * block + a] += r * x[a] }
                    for d in c..<k {
                        let v = (c == d ? mu[c] : 0) - mu[c] * mu[d]
                        if v == 0 { continue }
                        for a in 0..<block {
                            for b in 0..<block where c * block + a <= d * block + b {
                                hessian[c * block + a][d * block + b] += v * x[a] * x[b]
                            }
                        }
                    }
                }
            }
            var (value, g, h) = penalise(loss, gradient, hessian, theta, n: n, penalty: penalty, block: block)
            g.remove(at: pinned)
            h.remove(at: pinned)
            for row in h.indices { h[row].remove(at: pinned) }
            return (value, g, h)
        }
        guard var theta = free else { return nil }
        theta.insert(0, at: pinned)
        let shift = (0..<k).reduce(0.0) { $0 + theta[$1 * block] } / Double(k)
        return Fit(intercepts: (0..<k).map { theta[$0 * block] - shift },
                   weights: (0..<k).map { Array(theta[($0 * block + 1)..<(($0 + 1) * block)]) })
    }

    /// Sums over subjects → means, plus the penalty on every weight (the first entry of each block of
    /// `block` parameters is an intercept, not penalised). The Hessian arrives upper-triangular.
    private static func penalise(_ loss: Double, _ gradient: [Double], _ hessian: [[Double]], _ theta: [Double],
                                 n: Int, penalty: Double, block: Int) -> (Double, [Double], [[Double]]) {
        let m = theta.count, scale = 1 / Double(n)
        var loss = loss * scale, gradient = gradient.map { $0 * scale }, hessian = hessian
        for a in 0..<m {
            for b in a..<m {
                hessian[a][b] *= scale
                hessian[b][a] = hessian[a][b]
            }
            let lambda = a % block == 0 ? 0 : penalty
            loss += lambda / 2 * theta[a] * theta[a]
            gradient[a] += lambda * theta[a]
            hessian[a][a] += lambda
        }
        return (loss, gradient, hessian)
    }

    /// Newton–Raphson from θ = 0 with step halving; stops when no coordinate moves more than 1e-10.
    /// A singular Hessian (e.g. one class only, where the intercept runs off) ends the search where it is.
    private static func newton(parameters m: Int, maxIterations: Int = 100,
                               objective: ([Double]) -> (Double, [Double], [[Double]])) -> [Double]? {
        var theta = [Double](repeating: 0, count: m)
        var current = objective(theta)
        for _ in 0..<maxIterations {
            guard let step = LinearAlgebra.solve(current.2, current.1) else { break }
            var scale = 1.0
            var candidate = zip(theta, step).map { $0 - $1 }
            var next = objective(candidate)
            while !(next.0 <= current.0 + 1e-15) && scale > 1e-8 {
                scale /= 2
                candidate = zip(theta, step).map { $0 - scale * $1 }
                next = objective(candidate)
            }
            guard next.0 <= current.0 + 1e-15 else { break }
            let change = zip(candidate, theta).map { abs($0 - $1) }.max() ?? 0
            theta = candidate
            current = next
            if change < 1e-10 { break }
        }
        return theta.allSatisfy(\.isFinite) ? theta : nil
    }
}
