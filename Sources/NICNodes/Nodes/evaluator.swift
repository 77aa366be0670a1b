import Flow
import Foundation
import NICBasics
import Stats

/// Judges patient-level predictions with the statistics the field reports, each with a percentile
/// bootstrap confidence interval over patients, and writes the data behind the report's plots.
///
/// Output (`Metrics` port): `metrics.json` (`{"task", "n", "confidence", "resamples",
/// "metrics": {name: {"value", "ci_low", "ci_high", "valid_resamples"}}}`), `metrics.csv` (one row per
/// metric), and plot data: `scatter.csv` (regression), `roc.csv` (binary), `km.csv` (survival: Kaplan–Meier
/// of the low- and high-risk halves split at the median risk).
public struct Evaluator: NodeType {
    public static let name = "evaluator"
    public static let version = 1
    public static let summary = "Spearman/Pearson, AUC/accuracy or C-index/log-rank of Predictions, with bootstrap CIs."
    public static let inputs = [PortSpec("predictions", .predictions, doc: "patient-level predictions")]
    public static let outputs = [PortSpec("metrics", .metrics, doc: "metrics.json, metrics.csv and plot data")]
    public enum Metric: String, ParamChoice {
        case spearman, pearson, mae, auc, accuracy, cindex, logrank
        case balancedAccuracy = "balanced_accuracy"
    }

    public struct Params: NodeParams {
        @Param(doc: "metrics to compute; empty: the task's usual ones (regression: spearman, pearson; binary: auc, accuracy; multiclass: auc, accuracy; survival: cindex, logrank)")
        var metrics: [Metric] = []
        @Param(doc: "bootstrap resamples of patients for CIs (0: none; fewer than 40 cannot place a 95 % interval's tails)", .zeroOrWithin(40, 1_000_000))
        var bootstrap = 2000
        @Param(doc: "CI level", .between(0, 1)) var confidence = 0.95
        @Param(doc: "bootstrap seed") var seed = 0
        public init() {}
    }

    public init() {}

    static func defaults(_ task: Predictions.Task) -> [String] {
        switch task {
        case .regression: return ["spearman", "pearson"]
        case .binary, .multiclass: return ["auc", "accuracy"]
        case .survival: return ["cindex", "logrank"]
        }
    }

    static let applicable: [Predictions.Task: Set<String>] = [
        .regression: ["spearman", "pearson", "mae"],
        .binary: ["auc", "accuracy", "balanced_accuracy"],
        .multiclass: ["auc", "accuracy", "balanced_accuracy"],
        .survival: ["cindex", "logrank"],
    ]

    /// The statistic of `metric` on the patients at `indices` (nil where undefined, e.g. one class).
    static func statistic(_ metric: String, _ p: Predictions, _ indices: [Int]) -> Double? {
        switch metric {
        case "spearman", "pearson", "mae":
            let truth = indices.map { Double(p.labels[$0])! }, score = indices.map { p.scores[$0][0] }  // invariant: Predictions.parse checked regression labels are numbers
            if metric == "mae" { return zip(truth, score).reduce(0) { $0 + abs($1.0 - $1.1) } / Double(max(1, indices.count)) }
            return metric == "spearman" ? Correlation.spearman(truth, score) : Correlation.pearson(truth, score)
        case "auc":
            if p.task == .binary {
                return ROC.auc(labels: indices.map { p.labels[$0] == p.classes[1] }, scores: indices.map { p.scores[$0][0] })
            }
            let classIndex = Dictionary(uniqueKeysWithValues: p.classes.enumerated().map { ($1, $0) })
            return ROC.macroAUC(labels: indices.map { classIndex[p.labels[$0]]! }, probabilities: indices.map { p.scores[$0] })  // invariant: Predictions.parse checked labels are classes
        case "accuracy", "balanced_accuracy":
            let predicted = indices.map { predictedClass(p, $0) }, truth = indices.map { p.labels[$0] }
            if metric == "accuracy" { return Double(zip(predicted, truth).filter { $0 == $1 }.count) / Double(max(1, indices.count)) }
            var recalls: [Double] = []
            for c in p.classes {
                let members = truth.indices.filter { truth[$0] == c }
                if !members.isEmpty { recalls.append(Double(members.filter { predicted[$0] == c }.count) / Double(members.count)) }
            }
            return recalls.isEmpty ? nil : recalls.reduce(0, +) / Double(recalls.count)
        case "cindex":
            return Survival.concordance(time: indices.map { p.time[$0] }, event: indices.map { p.event[$0] }, risk: indices.map { p.scores[$0][0] })?.cindex
        case "logrank":
            return logRank(p)?.pValue
        default:
            return nil
        }
    }

    static func predictedClass(_ p: Predictions, _ i: Int) -> String {
        if p.task == .binary { return p.scores[i][0] >= 0.5 ? p.classes[1] : p.classes[0] }
        let row = p.scores[i]
        return p.classes[row.indices.max { row[$0] < row[$1] }!]
    }

    /// High risk = risk above the median.
    static func riskGroups(_ p: Predictions) -> [Int] {
        let risks = p.scores.map { $0[0] }.sorted()
        let median = risks.isEmpty ? 0 : (risks[(risks.count - 1) / 2] + risks[risks.count / 2]) / 2
        return p.scores.map { $0[0] > median ? 1 : 0 }
    }

    static func logRank(_ p: Predictions) -> Survival.LogRank? {
        Survival.logRank(time: p.time, event: p.event, group: riskGroups(p))
    }

    public func run(_ context: NodeContext, _ params: Params) throws {
        let predictions = try Predictions.read(from: try context.input("predictions"))
        // Patients `apply` could not predict (no tissue) are not in n; say who they are, and keep them in metrics.json.
        var skipped: [String: ParamValue] = [:]
        if !predictions.skipped.isEmpty {
            context.warn("\(predictions.skipped.count) patient(s) of this cohort have no prediction (no tissue cell on any slide; see the apply node's skipped.csv) and are not scored: \(predictions.skipped.prefix(20).joined(separator: ", "))\(predictions.skipped.count > 20 ? ", …" : "")")
            skipped["skipped"] = .list(predictions.skipped.map { .string($0) })
        }
        if predictions.external && predictions.count == 0 {
            // A cohort without labels (a challenge's test set): its submission is the result.
            let note = "nothing to score: no patient of this cohort with a prediction has a label in \(predictions.targetColumns.joined(separator: "/")) (the predictions are in submission.csv)"
            context.warn(note)
            let out = try context.output("metrics")
            let document: ParamValue = .map([
                "task": .string(predictions.task.rawValue), "n": .int(0), "confidence": .float(params.confidence),
                "resamples": .int(params.bootstrap), "metrics": .map([:]), "note": .string(note),
            ].merging(skipped) { a, _ in a })
            try Data(document.canonicalJSON.utf8).write(to: out.appendingPathComponent("metrics.json"))
            try CSVTable(columns: ["metric", "value", "ci_low", "ci_high", "n"], rows: []).write(to: out.appendingPathComponent("metrics.csv"))
            return
        }
        guard predictions.count >= 2 else { throw NodeError("only \(predictions.count) patient(s) in the predictions; metrics need at least 2") }
        var metrics = params.metrics.map(\.rawValue)
        if metrics.isEmpty { metrics = Self.defaults(predictions.task) }
        for metric in metrics where !(Self.applicable[predictions.task]!.contains(metric)) {  // invariant: every task has an entry in applicable
            throw NodeError("param 'metrics': '\(metric)' does not apply to a \(predictions.task.rawValue) task; use \(Self.applicable[predictions.task]!.sorted().joined(separator: ", "))")
        }
        let resamples = params.bootstrap, confidence = params.confidence

        var results: [String: ParamValue] = [:]
        var rows: [[String]] = []
        for (m, metric) in metrics.enumerated() {
            try context.checkCancellation()
            let all = Array(0..<predictions.count)
            guard let value = Self.statistic(metric, predictions, all) else {
                throw NodeError("\(metric) is undefined on these predictions (e.g. a single class, or no comparable pairs)")
            }
            var entry: [String: ParamValue] = ["value": .float(value)]
            var low = "", high = ""
            // A p-value gets no bootstrap interval: it is not an effect size.
            if resamples > 0 && metric != "logrank",
               let ci = Bootstrap.interval(count: predictions.count, resamples: resamples, confidence: confidence,
                                           seed: SeedStream(UInt64(truncatingIfNeeded: params.seed)).derive(.metricBootstrap, m), stop: { context.isCancelled },
                                           statistic: { Self.statistic(metric, predictions, $0) }) {
                try context.checkCancellation()  // the interval of a stopped bootstrap is not cached
                entry["valid_resamples"] = .int(ci.valid)
                if ci.low.isFinite && ci.high.isFinite {
                    entry["ci_low"] = .float(ci.low)
                    entry["ci_high"] = .float(ci.high)
                    low = "\(ci.low)"
                    high = "\(ci.high)"
                } else {
                    // Too few valid resamples to put even one in each tail: no interval rather than a wrong one.
                    let reason = "\(ci.valid) valid resample(s) cannot place a \(confidence * 100) % interval (each tail needs at least one: \(Int((2 / (1 - confidence)).rounded(.up))) or more)"
                    entry["ci_low"] = .null
                    entry["ci_high"] = .null
                    entry["ci_unavailable"] = .string(reason)
                    context.logger.warning("\(metric): no confidence interval: \(reason)")
                }
            }
            if metric == "logrank", let test = Self.logRank(predictions) {
                entry["statistic"] = .float(test.statistic)
            }
            results[metric == "logrank" ? "logrank_p" : metric] = .map(entry)
            rows.append([metric == "logrank" ? "logrank_p" : metric, "\(value)", low, high, String(predictions.count)])
            context.progress(m + 1, of: metrics.count, unit: "metrics")
        }
        let out = try context.output("metrics")
        let document: ParamValue = .map([
            "task": .string(predictions.task.rawValue), "n": .int(predictions.count), "confidence": .float(confidence),
            "resamples": .int(resamples), "metrics": .map(results),
        ].merging(skipped) { a, _ in a })
        try Data(document.canonicalJSON.utf8).write(to: out.appendingPathComponent("metrics.json"))
        try CSVTable(columns: ["metric", "value", "ci_low", "ci_high", "n"], rows: rows).write(to: out.appendingPathComponent("metrics.csv"))
        try writePlotData(predictions, to: out)
    }

    func writePlotData(_ p: Predictions, to out: URL) throws {
        switch p.task {
        case .regression:
            try CSVTable(columns: ["patient", "truth", "prediction"],
                         rows: (0..<p.count).map { [p.patients[$0], p.labels[$0], "\(p.scores[$0][0])"] })
                .write(to: out.appendingPathComponent("scatter.csv"))
        case .binary:
            let curve = ROC.curve(labels: p.labels.map { $0 == p.classes[1] }, scores: p.scores.map { $0[0] })
            try CSVTable(columns: ["fpr", "tpr", "threshold"], rows: curve.map { ["\($0.fpr)", "\($0.tpr)", "\($0.threshold)"] })
                .write(to: out.appendingPathComponent("roc.csv"))
        case .multiclass:
            break
        case .survival:
            let groups = Self.riskGroups(p)
            var rows: [[String]] = []
            for (g, name) in ["low risk", "high risk"].enumerated() {
                let members = (0..<p.count).filter { groups[$0] == g }
                guard !members.isEmpty else { continue }
                rows.append([name, "0", "1", String(members.count), "0", "0"])
                for point in Survival.kaplanMeier(time: members.map { p.time[$0] }, event: members.map { p.event[$0] }) {
                    rows.append([name, "\(point.time)", "\(point.survival)", String(point.atRisk), String(point.events), String(point.censored)])
                }
            }
            try CSVTable(columns: ["group", "time", "survival", "at_risk", "events", "censored"], rows: rows)
                .write(to: out.appendingPathComponent("km.csv"))
        }
    }
}
