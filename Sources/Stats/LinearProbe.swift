import Foundation

/// A linear model on standardised features with an L2 penalty: ridge, logistic, multinomial
/// logistic or Cox, by the target's kind. The penalty convention is `PenalizedRegression`'s (mean
/// loss per subject + λ/2 ‖w‖²; lifelines' for Cox).
///
/// Features are standardised on the rows the model is fitted on (mean 0, sample sd with n − 1, as
/// lifelines does internally; a constant feature becomes 0). With more features than subjects (256
/// pooled codes, 45 patients) the fit is done in the span of the training rows: the loss sees the
/// weights only through `X w`, and any part of w orthogonal to the rows adds penalty and nothing else,
/// so the penalised optimum lies in that span. Fitting r ≤ n coordinates instead of p is exact and
/// turns 256 × 256 Newton systems into 45 × 45 ones.
public struct LinearProbe {
    public enum Target {
        case regression([Double])
        /// True for the positive class.
        case binary([Bool])
        /// Class index per subject, in 0..<classes.
        case multiclass([Int], classes: Int)
        case survival(time: [Double], event: [Bool], ties: CoxRegression.Ties)

        public var count: Int {
            switch self {
            case .regression(let y): return y.count
            case .binary(let y): return y.count
            case .multiclass(let y, _): return y.count
            case .survival(let t, _, _): return t.count
            }
        }

        public func subset(_ rows: [Int]) -> Target {
            switch self {
            case .regression(let y): return .regression(rows.map { y[$0] })
            case .binary(let y): return .binary(rows.map { y[$0] })
            case .multiclass(let y, let k): return .multiclass(rows.map { y[$0] }, classes: k)
            case .survival(let t, let e, let ties): return .survival(time: rows.map { t[$0] }, event: rows.map { e[$0] }, ties: ties)
            }
        }

        /// The groups folds are balanced over: class, or event vs censored.
        public var strata: [String] {
            switch self {
            case .regression(let y): return y.map { _ in "" }
            case .binary(let y): return y.map { $0 ? "1" : "0" }
            case .multiclass(let y, _): return y.map(String.init)
            case .survival(_, let e, _): return e.map { $0 ? "event" : "censored" }
            }
        }
    }

    public let target: Target
    /// Standardisation of the training rows.
    public let mean: [Double], scale: [Double]
    /// Per output: intercept, and weights on the standardised features.
    public let intercepts: [Double], weights: [[Double]]

    /// A fitted model read back (a kept probe); `target` gives only the kind of prediction.
    public init(target: Target, mean: [Double], scale: [Double], intercepts: [Double], weights: [[Double]]) {
        (self.target, self.mean, self.scale, self.intercepts, self.weights) = (target, mean, scale, intercepts, weights)
    }

    /// nil when the solver fails (a singular system, e.g. penalty 0 on collinear features).
    public static func fit(x: [[Double]], target: Target, penalty: Double) -> LinearProbe? {
        let n = x.count
        guard n >= 2, n == target.count, let p = x.first?.count, p > 0 else { return nil }
        let mean = (0..<p).map { j in x.reduce(0) { $0 + $1[j] } / Double(n) }
        let scale = (0..<p).map { j -> Double in
            let sd = (x.reduce(0) { $0 + ($1[j] - mean[j]) * ($1[j] - mean[j]) } / Double(n - 1)).squareRoot()
            return sd > 0 ? sd : 1
        }
        let standardised = x.map { row in (0..<p).map { (row[$0] - mean[$0]) / scale[$0] } }
        let basis = rowBasis(standardised)
        let z = standardised.map { row in basis.map { q in dot(q, row) } }
        let reduced: PenalizedRegression.Fit
        switch target {
        case .regression(let y):
            guard let fit = PenalizedRegression.ridge(z, y, penalty: penalty) else { return nil }
            reduced = fit
        case .binary(let y):
            guard let fit = PenalizedRegression.logistic(z, y, penalty: penalty) else { return nil }
            reduced = fit
        case .multiclass(let y, let k):
            guard let fit = PenalizedRegression.multinomial(z, y, classes: k, penalty: penalty) else { return nil }
            reduced = fit
        case .survival(let time, let event, let ties):
            guard let fit = CoxRegression.fit(x: z, time: time, event: event, ties: ties, penalty: penalty) else { return nil }
            reduced = PenalizedRegression.Fit(intercepts: [0], weights: [fit.coefficients])
        }
        // Back from the row-span coordinates to one weight per standardised feature: w = Qᵀ w_z.
        let weights = reduced.weights.map { wz in
            (0..<p).map { j in zip(basis, wz).reduce(0) { $0 + $1.0[j] * $1.1 } }
        }
        return LinearProbe(target: target, mean: mean, scale: scale, intercepts: reduced.intercepts, weights: weights)
    }

    /// Weights per original (unstandardised) feature: what scikit-learn or lifelines report when
    /// given the raw features (lifelines' `params_`).
    public var rawWeights: [[Double]] { weights.map { w in zip(w, scale).map { $0 / $1 } } }

    /// η per output for one subject's raw features.
    public func linearPredictors(_ row: [Double]) -> [Double] {
        let standardised = (0..<mean.count).map { (row[$0] - mean[$0]) / scale[$0] }
        return zip(intercepts, weights).map { $0 + Self.dot($1, standardised) }
    }

    /// The prediction: the value (regression), P(positive) (binary), class probabilities
    /// (multiclass), or the risk score η (survival: higher = shorter survival).
    public func predict(_ row: [Double]) -> [Double] {
        let eta = linearPredictors(row)
        switch target {
        case .regression, .survival: return eta
        case .binary: return [1 / (1 + exp(-eta[0]))]
        case .multiclass:
            let top = eta.max()!, e = eta.map { exp($0 - top) }, total = e.reduce(0, +)
            return e.map { $0 / total }
        }
    }

    /// An orthonormal basis of the rows' span (modified Gram–Schmidt, each vector orthogonalised
    /// twice: "twice is enough" for the rounding of a single pass).
    static func rowBasis(_ rows: [[Double]]) -> [[Double]] {
        var basis: [[Double]] = []
        for row in rows {
            var v = row
            for _ in 0..<2 {
                for q in basis {
                    let c = dot(q, v)
                    for j in v.indices { v[j] -= c * q[j] }
                }
            }
            let norm = dot(v, v).squareRoot()
            if norm > 1e-9 * max(1, dot(row, row).squareRoot()) { basis.append(v.map { $0 / norm }) }
        }
        return basis
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for i in a.indices { s += a[i] * b[i] }
        return s
    }
}

extension LinearProbe {
    /// The outcome of choosing a penalty by cross-validation.
    public struct Selection {
        public var penalty: Double
        /// Per candidate penalty (in the order given): held-out deviance per subject.
        public var deviance: [Double]
    }

    /// Picks the penalty with the lowest held-out deviance over `folds` folds of these rows (balanced
    /// over `target.strata`, shuffled by `seed`); ties go to the larger penalty. Deviance: squared
    /// error (regression), log loss (binary, multiclass), or, for Cox, minus the cross-validated
    /// partial likelihood of Verweij & van Houwelingen (1993), Σₖ [log PL(β₋ₖ; all rows) − log PL(β₋ₖ;
    /// rows outside fold k)], which stays defined on folds too small for a partial likelihood of their own.
    public static func select(x: [[Double]], target: Target, penalties: [Double], folds k: Int, seed: UInt64) -> Selection? {
        let n = x.count
        guard !penalties.isEmpty, k >= 2, n >= k else { return nil }
        let names = (0..<n).map { String(format: "%08d", $0) }
        let strata = target.strata
        let assignment = Folds.assign(patients: names, k: k, seed: seed,
                                      strata: Dictionary(uniqueKeysWithValues: zip(names, strata)))
        let fold = names.map { assignment[$0]! }  // invariant: folds are assigned for exactly these names
        var deviance: [Double] = []
        for penalty in penalties {
            var total = 0.0
            for f in 0..<k {
                let train = (0..<n).filter { fold[$0] != f }, test = (0..<n).filter { fold[$0] == f }
                guard let model = fit(x: train.map { x[$0] }, target: target.subset(train), penalty: penalty) else {
                    total = .infinity
                    break
                }
                total += heldOutDeviance(model, x: x, target: target, train: train, test: test)
            }
            deviance.append(total / Double(n))
        }
        var best = 0
        for i in penalties.indices where deviance[i] < deviance[best] || (deviance[i] == deviance[best] && penalties[i] > penalties[best]) {
            best = i
        }
        return Selection(penalty: penalties[best], deviance: deviance)
    }

    static func heldOutDeviance(_ model: LinearProbe, x: [[Double]], target: Target, train: [Int], test: [Int]) -> Double {
        let clip = { (p: Double) in min(max(p, 1e-15), 1 - 1e-15) }
        switch target {
        case .regression(let y):
            return test.reduce(0.0) { s, i in let r = y[i] - model.predict(x[i])[0]; return s + r * r }
        case .binary(let y):
            return test.reduce(0.0) { s, i in let p = clip(model.predict(x[i])[0]); return s - (y[i] ? log(p) : log(1 - p)) }
        case .multiclass(let y, _):
            return test.reduce(0.0) { s, i in s - log(clip(model.predict(x[i])[y[i]])) }
        case .survival(let time, let event, let ties):
            let all = Array(0..<x.count), risk = all.map { model.linearPredictors(x[$0])[0] }
            let whole = CoxRegression.logPartialLikelihood(risk: risk, time: time, event: event, ties: ties)
            let inner = CoxRegression.logPartialLikelihood(risk: train.map { risk[$0] }, time: train.map { time[$0] },
                                                           event: train.map { event[$0] }, ties: ties)
            return -(whole - inner)
        }
    }
}
