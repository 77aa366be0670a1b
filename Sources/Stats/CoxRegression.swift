import Foundation

/// Linear Cox proportional-hazards regression by Newton–Raphson on the partial likelihood, with
/// Breslow or Efron handling of tied event times (as scikit-survival's `CoxPHSurvivalAnalysis`), and
/// an optional L2 penalty.
///
/// Penalty convention (lifelines' `CoxPHFitter(penalizer: λ, l1_ratio: 0)`): the fit minimises
/// `−log PL(β) + n · λ/2 · ‖β‖²`, n the number of subjects, i.e. the mean negative log partial
/// likelihood plus `λ/2 ‖β‖²`. lifelines applies it to covariates it standardises itself (mean 0,
/// sample sd with n − 1); on covariates already standardised that way the two fits coincide.
public enum CoxRegression {
    public enum Ties: String { case breslow, efron }

    public struct Fit {
        public var coefficients: [Double]
        public var logLikelihood: Double
        public var iterations: Int
    }

    /// Negative log partial likelihood, gradient and Hessian at `beta`.
    static func evaluate(_ x: [[Double]], _ time: [Double], _ event: [Bool], _ beta: [Double], ties: Ties, penalty: Double = 0)
        -> (loss: Double, gradient: [Double], hessian: [[Double]]) {
        let n = x.count, p = beta.count
        let order = (0..<n).sorted { time[$0] > time[$1] }  // longest first: risk sets grow as we go
        let eta = x.map { row in zip(row, beta).reduce(0) { $0 + $1.0 * $1.1 } }
        let shift = eta.max() ?? 0  // guards exp() against overflow; cancels in the likelihood
        let w = eta.map { exp($0 - shift) }
        var loss = 0.0
        var gradient = [Double](repeating: 0, count: p)
        var hessian = [[Double]](repeating: [Double](repeating: 0, count: p), count: p)
        var s0 = 0.0
        var s1 = [Double](repeating: 0, count: p)
        var s2 = [[Double]](repeating: [Double](repeating: 0, count: p), count: p)
        var i = 0
        while i < n {
            // Add everyone with this time to the risk set, and collect the events among them.
            var j = i
            var d0 = 0.0
            var d1 = [Double](repeating: 0, count: p)
            var d2 = [[Double]](repeating: [Double](repeating: 0, count: p), count: p)
            var events: [Int] = []
            while j < n && time[order[j]] == time[order[i]] {
                let k = order[j]
                s0 += w[k]
                for a in 0..<p {
                    s1[a] += w[k] * x[k][a]
                    for b in 0..<p { s2[a][b] += w[k] * x[k][a] * x[k][b] }
                }
                if event[k] {
                    events.append(k)
                    d0 += w[k]
                    for a in 0..<p {
                        d1[a] += w[k] * x[k][a]
                        for b in 0..<p { d2[a][b] += w[k] * x[k][a] * x[k][b] }
                    }
                }
                j += 1
            }
            let m = Double(events.count)
            for (l, k) in events.enumerated() {
                loss -= eta[k] - shift
                for a in 0..<p { gradient[a] -= x[k][a] }
                // Efron removes a growing fraction of the tied events' weight from the risk set.
                let f = ties == .efron ? Double(l) / m : 0
                let z0 = s0 - f * d0
                let z1 = (0..<p).map { s1[$0] - f * d1[$0] }
                loss += log(z0)
                for a in 0..<p {
                    gradient[a] += z1[a] / z0
                    for b in 0..<p {
                        let z2 = s2[a][b] - f * d2[a][b]
                        hessian[a][b] += z2 / z0 - z1[a] * z1[b] / (z0 * z0)
                    }
                }
            }
            i = j
        }
        if penalty > 0 {
            let weight = Double(n) * penalty
            for a in 0..<p {
                loss += weight / 2 * beta[a] * beta[a]
                gradient[a] += weight * beta[a]
                hessian[a][a] += weight
            }
        }
        return (loss, gradient, hessian)
    }

    /// log PL of given linear predictors (risk scores): the Verweij–van Houwelingen cross-validated
    /// likelihood needs it for a model fitted elsewhere.
    public static func logPartialLikelihood(risk: [Double], time: [Double], event: [Bool], ties: Ties = .breslow) -> Double {
        -evaluate(risk.map { [$0] }, time, event, [1], ties: ties).loss
    }

    /// Fits β by Newton–Raphson with step halving; `x[i]` is subject i's covariates; `penalty` is λ
    /// above (0: the plain partial likelihood). `logLikelihood` is log PL(β), without the penalty.
    public static func fit(x: [[Double]], time: [Double], event: [Bool], ties: Ties = .breslow, penalty: Double = 0,
                           maxIterations: Int = 100, tolerance: Double = 1e-9) -> Fit? {
        guard let p = x.first?.count, x.count == time.count, x.count == event.count else { return nil }
        var beta = [Double](repeating: 0, count: p)
        var current = evaluate(x, time, event, beta, ties: ties, penalty: penalty)
        // log PL without the penalty term, at the current β.
        func logLikelihood() -> Double { -current.loss + Double(x.count) * penalty / 2 * beta.reduce(0) { $0 + $1 * $1 } }
        for iteration in 1...maxIterations {
            guard let step = LinearAlgebra.solve(current.hessian, current.gradient) else { return nil }
            var scale = 1.0
            var candidate = zip(beta, step).map { $0 - scale * $1 }
            var next = evaluate(x, time, event, candidate, ties: ties, penalty: penalty)
            while next.loss > current.loss + 1e-12 && scale > 1e-6 {
                scale /= 2
                candidate = zip(beta, step).map { $0 - scale * $1 }
                next = evaluate(x, time, event, candidate, ties: ties, penalty: penalty)
            }
            let change = zip(candidate, beta).map { abs($0 - $1) }.max() ?? 0
            beta = candidate
            current = next
            if change < tolerance { return Fit(coefficients: beta, logLikelihood: logLikelihood(), iterations: iteration) }
        }
        return Fit(coefficients: beta, logLikelihood: logLikelihood(), iterations: maxIterations)
    }
}
