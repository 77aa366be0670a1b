import Flow
import Foundation
import Neural
import Stats

/// `patient_model` on a table of covariates instead of grids: a linear model with the head's loss —
/// Cox partial likelihood (Newton–Raphson, Breslow or Efron ties), least squares, or logistic
/// regression — cross-validated over the same patient-level folds, giving out-of-fold Predictions.
enum LinearPatientModel {
    static func run(_ context: NodeContext, _ params: PatientModel.Params) throws {
        let table = try CSVTable.fromPort(try context.input("features"))
        let loss = try HeadFile.decode(params.head).loss
        let target = params.target
        guard let patientColumn = table.columnIndex("patient") else {
            throw NodeError("features table: missing column 'patient'; found \(table.columns.joined(separator: ", "))")
        }
        var covariates = params.covariates
        if covariates.isEmpty {
            covariates = table.columns.filter { c in
                c != "patient" && !target.contains(c) && table.rows.allSatisfy { Double($0[table.columnIndex(c)!]) != nil }  // invariant: c taken from table.columns
            }
        }
        for c in covariates + target where table.columnIndex(c) == nil {
            throw NodeError("features table: no column '\(c)'; found \(table.columns.joined(separator: ", "))")
        }
        guard !covariates.isEmpty else { throw NodeError("features table: no numeric covariate columns") }
        func number(_ row: [String], _ column: String, _ line: Int) throws -> Double {
            guard let v = Double(row[table.columnIndex(column)!]) else {  // invariant: every covariate and target column is checked above
                throw NodeError("features table line \(line): column '\(column)' must be a number, found '\(row[table.columnIndex(column)!])'")
            }
            // One NaN or infinity would make the column's mean and sd non-finite and every row 0 after standardising.
            guard v.isFinite else {
                throw NodeError("features table line \(line): column '\(column)' must be a finite number, found '\(row[table.columnIndex(column)!])'; impute or drop the value (an empty or NaN covariate has no meaning to a linear model)")
            }
            return v
        }
        var patients: [String] = [], x: [[Double]] = [], y: [Double] = [], time: [Double] = [], event: [Bool] = [], labels: [String] = []
        for (r, row) in table.rows.enumerated() {
            patients.append(row[patientColumn])
            x.append(try covariates.map { try number(row, $0, r + 2) })
            switch loss {
            case .cox:
                guard target.count == 2 else { throw NodeError("param 'target': a Cox head takes [time, event]") }
                time.append(try number(row, target[0], r + 2))
                event.append(try number(row, target[1], r + 2) == 1)
                labels.append("")
            default:
                guard target.count == 1 else { throw NodeError("param 'target': this head takes one label column") }
                y.append(try number(row, target[0], r + 2))
                labels.append(row[table.columnIndex(target[0])!])  // invariant: every target column is checked above
            }
        }
        guard Set(patients).count == patients.count else { throw NodeError("features table: one row per patient expected; a patient appears twice") }
        // Standardise covariates (on all rows: the scale does not leak the target) for stable fits.
        let p = covariates.count
        for j in 0..<p {
            let column = x.map { $0[j] }
            let mean = column.reduce(0, +) / Double(column.count)
            let sd = (column.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, column.count - 1))).squareRoot()
            for i in x.indices { x[i][j] = sd > 0 ? (x[i][j] - mean) / sd : 0 }
        }
        let task: Predictions.Task
        switch loss {
        case .cox: task = .survival
        case .meanSquaredError: task = .regression
        case .binaryCrossEntropy: task = .binary
        case .softmaxCrossEntropy: throw NodeError("a linear model on features supports regression, binary and Cox heads, not multiclass")
        }
        let k = params.folds
        let strata = Dictionary(uniqueKeysWithValues: patients.indices.map { i in
            (patients[i], task == .survival ? (event[i] ? "event" : "censored") : (task == .binary ? labels[i] : ""))
        })
        let folds = Folds.assign(patients: patients, k: k, seed: UInt64(truncatingIfNeeded: params.seed), strata: strata)
        var scores = [Double](repeating: 0, count: patients.count)
        for fold in 0..<k {
            let train = patients.indices.filter { folds[patients[$0]] != fold }
            let test = patients.indices.filter { folds[patients[$0]] == fold }
            let beta: [Double]
            switch task {
            case .survival:
                let ties: CoxRegression.Ties
                if case .cox(let t, _) = loss, t == .efron { ties = .efron } else { ties = .breslow }
                guard let fit = CoxRegression.fit(x: train.map { x[$0] }, time: train.map { time[$0] }, event: train.map { event[$0] }, ties: ties) else {
                    throw NodeError("fold \(fold + 1): the Cox fit failed (no events, or collinear covariates)")
                }
                beta = [0] + fit.coefficients
            case .regression:
                beta = try leastSquares(train.map { [1] + x[$0] }, train.map { y[$0] })
            default:
                beta = try logistic(train.map { [1] + x[$0] }, train.map { y[$0] })
            }
            for i in test {
                let eta = zip([1] + x[i], beta).reduce(0) { $0 + $1.0 * $1.1 }
                scores[i] = task == .binary ? 1 / (1 + exp(-eta)) : eta
            }
            context.progress(fold + 1, of: k, unit: "folds")
        }
        var classes: [String] = []
        if task == .binary { classes = Array(Set(labels)).sorted { (Double($0) ?? 0) < (Double($1) ?? 0) } }
        let predictions = Predictions(task: task, targetColumns: target, classes: classes, patients: patients,
                                      folds: patients.map { folds[$0]! + 1 }, labels: labels, time: time.isEmpty ? patients.map { _ in 0 } : time,  // invariant: folds are assigned to every patient
                                      event: event.isEmpty ? patients.map { _ in false } : event, scores: scores.map { [$0] })
        try predictions.write(to: try context.output("predictions"))
    }

    /// Ridge-stabilised normal equations (λ = 1e-6 keeps a rank-deficient design solvable).
    static func leastSquares(_ x: [[Double]], _ y: [Double]) throws -> [Double] {
        let p = x[0].count
        var a = [[Double]](repeating: [Double](repeating: 0, count: p), count: p), b = [Double](repeating: 0, count: p)
        for (row, target) in zip(x, y) {
            for i in 0..<p { b[i] += row[i] * target; for j in 0..<p { a[i][j] += row[i] * row[j] } }
        }
        for i in 0..<p { a[i][i] += 1e-6 }
        guard let beta = Stats.solveLinearSystem(a, b) else { throw NodeError("least squares: singular design") }
        return beta
    }

    /// Logistic regression by Newton–Raphson (IRLS) with a tiny ridge.
    static func logistic(_ x: [[Double]], _ y: [Double]) throws -> [Double] {
        let p = x[0].count
        var beta = [Double](repeating: 0, count: p)
        for _ in 0..<50 {
            var gradient = [Double](repeating: 0, count: p)
            var hessian = [[Double]](repeating: [Double](repeating: 0, count: p), count: p)
            for (row, target) in zip(x, y) {
                let mu = 1 / (1 + exp(-zip(row, beta).reduce(0) { $0 + $1.0 * $1.1 }))
                for i in 0..<p {
                    gradient[i] += (mu - target) * row[i]
                    for j in 0..<p { hessian[i][j] += mu * (1 - mu) * row[i] * row[j] }
                }
            }
            for i in 0..<p { hessian[i][i] += 1e-6; gradient[i] += 1e-6 * beta[i] }
            guard let step = Stats.solveLinearSystem(hessian, gradient) else { throw NodeError("logistic regression: singular Hessian") }
            beta = zip(beta, step).map { $0 - $1 }
            if step.map(abs).max() ?? 0 < 1e-10 { break }
        }
        return beta
    }
}
