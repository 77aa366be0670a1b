import Flow
import Foundation
import Stats

/// Two models' predictions on the same patients, judged by one metric with a paired bootstrap: each
/// resample of patients is scored under both models, so the interval of the difference a − b carries
/// only the uncertainty of the difference (the shared luck of an easy resample cancels). Reports the
/// value of a and of b (each with its interval over the same resamples), the difference with its
/// percentile interval, and the fraction of resamples in which a beats b.
///
/// Output (`Metrics` port), in the evaluator's shape so `nic metrics` and the report show it:
/// `metrics.json` (`{"task", "n", "confidence", "resamples", "metric", "metrics": {"<m>_a", "<m>_b",
/// "<m>_a_minus_b": {"value", "ci_low", "ci_high", "valid_resamples"}, "fraction_a_better": {"value"}}}`)
/// and `metrics.csv` (one row per entry).
public struct Compare: NodeType {
    public static let name = "compare"
    public static let version = 1
    public static let summary = "Paired bootstrap over patients of a metric's difference between two Predictions (a − b), with its CI."
    public static let inputs = [
        PortSpec("a", .predictions, doc: "the first model's patient-level predictions"),
        PortSpec("b", .predictions, doc: "the second model's, on the same task and patients"),
    ]
    public static let outputs = [PortSpec("metrics", .metrics, doc: "metrics.json and metrics.csv: a, b, a − b with CIs")]

    public struct Params: NodeParams {
        @Param(doc: "the metric compared; default by task: spearman (regression), auc (binary, multiclass), cindex (survival)")
        var metric: Evaluator.Metric? = nil
        @Param(doc: "paired bootstrap resamples of patients (at least 40: fewer cannot place a 95 % interval's tails)", .within(40, 1_000_000)) var bootstrap = 2000
        @Param(doc: "CI level", .between(0, 1)) var confidence = 0.95
        @Param(doc: "bootstrap seed") var seed = 0
        public init() {}
    }

    public init() {}

    /// The statistic of both models on the full sample and on each shared resample.
    public struct Result: Equatable {
        public var metric: String
        public var n: Int
        public var a: Bootstrap.Interval
        public var b: Bootstrap.Interval
        public var difference: Bootstrap.Interval
        /// Among the valid resamples, the fraction where a's statistic exceeds b's (ties count as not).
        public var fractionABetter: Double
    }

    static func defaultMetric(_ task: Predictions.Task) -> String {
        switch task {
        case .regression: return "spearman"
        case .binary, .multiclass: return "auc"
        case .survival: return "cindex"
        }
    }

    public func run(_ context: NodeContext, _ params: Params) throws {
        let a = try Predictions.read(from: try context.input("a"))
        let b = try Predictions.read(from: try context.input("b"))
        let metric = params.metric?.rawValue ?? Self.defaultMetric(a.task)
        let result = try Self.paired(a, b, metric: metric, resamples: params.bootstrap, confidence: params.confidence,
                                     seed: UInt64(truncatingIfNeeded: params.seed), stop: { context.isCancelled })
        try context.checkCancellation()  // a stopped bootstrap's result is not cached
        var entries: [String: ParamValue] = [:]
        var rows: [[String]] = []
        for (name, interval) in [("\(metric)_a", result.a), ("\(metric)_b", result.b), ("\(metric)_a_minus_b", result.difference)] {
            // Too few valid resamples for the level: the interval is null, with why, not a wrong one.
            let has = interval.low.isFinite && interval.high.isFinite
            var entry: [String: ParamValue] = ["value": .float(interval.estimate), "ci_low": has ? .float(interval.low) : .null,
                                               "ci_high": has ? .float(interval.high) : .null, "valid_resamples": .int(interval.valid)]
            if !has { entry["ci_unavailable"] = .string("\(interval.valid) valid resample(s) cannot place a \(params.confidence * 100) % interval") }
            entries[name] = .map(entry)
            rows.append([name, "\(interval.estimate)", has ? "\(interval.low)" : "", has ? "\(interval.high)" : "", String(result.n)])
        }
        entries["fraction_a_better"] = .map(["value": result.fractionABetter.isFinite ? .float(result.fractionABetter) : .null])
        rows.append(["fraction_a_better", "\(result.fractionABetter)", "", "", String(result.n)])
        let out = try context.output("metrics")
        let document: ParamValue = .map([
            "task": .string(a.task.rawValue), "n": .int(result.n), "confidence": .float(params.confidence),
            "resamples": .int(params.bootstrap), "metric": .string(metric), "metrics": .map(entries),
        ])
        try Data(document.canonicalJSON.utf8).write(to: out.appendingPathComponent("metrics.json"))
        try CSVTable(columns: ["metric", "value", "ci_low", "ci_high", "n"], rows: rows).write(to: out.appendingPathComponent("metrics.csv"))
    }

    /// The paired bootstrap: resample r draws the same patients for a and b (`Bootstrap.replicates`
    /// with one seed); resamples where either statistic is undefined are skipped for both.
    public static func paired(_ a: Predictions, _ b: Predictions, metric: String, resamples: Int, confidence: Double, seed: UInt64,
                              stop: () -> Bool = { false }) throws -> Result {
        let b = try aligned(b, to: a)
        guard let applicable = Evaluator.applicable[a.task], applicable.contains(metric), metric != "logrank" else {
            let choices = (Evaluator.applicable[a.task] ?? []).subtracting(["logrank"]).sorted().joined(separator: ", ")
            throw NodeError("param 'metric': '\(metric)' cannot compare \(a.task.rawValue) predictions; expected one of \(choices)")
        }
        guard a.count >= 2 else { throw NodeError("only \(a.count) patient(s); a comparison needs at least 2") }
        let all = Array(0..<a.count)
        guard let valueA = Evaluator.statistic(metric, a, all), let valueB = Evaluator.statistic(metric, b, all) else {
            throw NodeError("\(metric) is undefined on these predictions (e.g. a single class, or no comparable pairs)")
        }
        let pairs = Bootstrap.replicates(count: a.count, resamples: resamples, seed: seed, stop: stop) { indices -> (Double, Double)? in
            guard let x = Evaluator.statistic(metric, a, indices), let y = Evaluator.statistic(metric, b, indices),
                  x.isFinite, y.isFinite else { return nil }
            return (x, y)
        }
        func interval(_ estimate: Double, _ values: [Double]) -> Bootstrap.Interval {
            Bootstrap.percentile(estimate: estimate, replicates: values, confidence: confidence)
        }
        return Result(metric: metric, n: a.count,
                      a: interval(valueA, pairs.map { $0.0 }), b: interval(valueB, pairs.map { $0.1 }),
                      difference: interval(valueA - valueB, pairs.map { $0.0 - $0.1 }),
                      fractionABetter: pairs.isEmpty ? .nan : Double(pairs.filter { $0.0 > $0.1 }.count) / Double(pairs.count))
    }

    /// `b` in `a`'s patient order, after checking that both predict the same thing for the same
    /// patients with the same truth; the error names what differs.
    static func aligned(_ b: Predictions, to a: Predictions) throws -> Predictions {
        guard a.task == b.task else { throw NodeError("'a' holds \(a.task.rawValue) predictions, 'b' \(b.task.rawValue): a comparison needs the same task") }
        guard a.targetColumns == b.targetColumns else {
            throw NodeError("'a' predicts \(a.targetColumns), 'b' predicts \(b.targetColumns): a comparison needs the same target")
        }
        guard a.classes == b.classes else { throw NodeError("'a' has classes \(a.classes), 'b' \(b.classes): a comparison needs the same classes") }
        let index = Dictionary(uniqueKeysWithValues: b.patients.enumerated().map { ($1, $0) })
        let onlyA = a.patients.filter { index[$0] == nil }, onlyB = Set(b.patients).subtracting(a.patients).sorted()
        guard onlyA.isEmpty && onlyB.isEmpty else {
            func some(_ list: [String]) -> String { list.prefix(5).joined(separator: ", ") + (list.count > 5 ? ", …" : "") }
            var parts: [String] = []
            if !onlyA.isEmpty { parts.append("\(onlyA.count) only in 'a' (\(some(onlyA)))") }
            if !onlyB.isEmpty { parts.append("\(onlyB.count) only in 'b' (\(some(onlyB)))") }
            throw NodeError("'a' and 'b' must cover the same patients; \(parts.joined(separator: "; "))")
        }
        var out = a
        out.folds = []
        out.scores = []
        for (i, patient) in a.patients.enumerated() {
            let j = index[patient]!  // invariant: both sides were checked to hold the same patients
            let same = a.task == .survival ? (a.time[i] == b.time[j] && a.event[i] == b.event[j]) : a.labels[i] == b.labels[j]
            guard same else {
                let truth = { (p: Predictions, k: Int) in p.task == .survival ? "time \(Predictions.format(p.time[k])), event \(p.event[k] ? 1 : 0)" : "'\(p.labels[k])'" }
                throw NodeError("patient '\(patient)': 'a' has truth \(truth(a, i)), 'b' has \(truth(b, j)): a comparison needs the same labels")
            }
            out.folds.append(b.folds[j])
            out.scores.append(b.scores[j])
        }
        return out
    }
}
