import Flow
import Foundation
import Neural
import Stats

/// What a patient model learns and predicts for one task, read once from the cohort's labels: the
/// patients with a label, their targets, the loss of a batch and the conversion of network outputs
/// into predictions. Every difference between regression, classification and survival lives here.
struct PatientTargets {
    /// Says which patients were left out for a missing label (log, progress display and run record).
    func reportDropped(_ context: NodeContext) {
        guard !dropped.isEmpty else { return }
        let names = dropped.prefix(20).joined(separator: ", ") + (dropped.count > 20 ? ", …" : "")
        context.warn("\(dropped.count) patient\(dropped.count == 1 ? "" : "s") without a label in \(columns.joined(separator: "/")) left out: \(names)")
    }

    let task: Predictions.Task
    let loss: LossSpec
    let columns: [String]
    let classes: [String]
    /// Labelled patients, sorted. Every one has an entry in `labels` and in its task's target map
    /// (filled in `init`): the lookups below rely on it.
    let patients: [String]
    /// Each patient's label values, one per target column.
    let labels: [String: [String]]
    /// Patients in labels.csv whose target is empty: left out, and said so (`reportDropped`).
    let dropped: [String]
    private var value: [String: Float] = [:], time: [String: Double] = [:], event: [String: Bool] = [:], classIndex: [String: Int] = [:]
    /// Regression targets train standardised; predictions are mapped back.
    private var mean = 0.0, std = 1.0

    /// `labels`: every slide's labels (slides of a patient must agree; unlabelled slides take no part).
    init(loss: LossSpec, head: String, columns: [String], classes: [String], slides: [(stem: String, labels: [String: String])]) throws {
        self.loss = loss
        self.columns = columns
        switch loss {
        case .meanSquaredError: task = .regression
        case .binaryCrossEntropy: task = .binary
        case .softmaxCrossEntropy: task = .multiclass
        case .cox: task = .survival
        }
        guard columns.count == (task == .survival ? 2 : 1) else {
            throw NodeError("param 'target': a \(task.rawValue) head (\(head)) takes \(task == .survival ? "[time, event]" : "one label column"), got \(columns)")
        }
        var labels: [String: [String]] = [:]
        var unlabelled = Set<String>()
        for slide in slides {
            guard let patient = slide.labels["patient"], !patient.isEmpty else { continue }
            let values = columns.map { slide.labels[$0] ?? "" }
            if values.contains(where: \.isEmpty) { unlabelled.insert(patient); continue }
            if let known = labels[patient], known != values {
                throw NodeError("patient '\(patient)' has slides with different labels (\(known) vs \(values))")
            }
            labels[patient] = values
        }
        self.labels = labels
        patients = labels.keys.sorted()
        dropped = unlabelled.subtracting(labels.keys).sorted()
        var classes = classes
        if classes.isEmpty && (task == .binary || task == .multiclass) {
            classes = Array(Set(patients.map { labels[$0]![0] })).sorted { (Double($0) ?? .infinity, $0) < (Double($1) ?? .infinity, $1) }  // invariant: see `patients`
        }
        if task == .binary && classes.count != 2 { throw NodeError("a binary head needs 2 classes, the labels have \(classes.count): \(classes)") }
        self.classes = classes

        for p in patients {
            let values = labels[p]!  // invariant: see `patients`
            switch task {
            case .regression:
                guard let v = Float(values[0]), v.isFinite else {
                    throw NodeError("patient '\(p)': '\(values[0])' in column '\(columns[0])' is not a finite number")
                }
                value[p] = v
            case .binary, .multiclass:
                guard let k = classes.firstIndex(of: values[0]) else { throw NodeError("patient '\(p)': label '\(values[0])' is not one of \(classes)") }
                classIndex[p] = k
            case .survival:
                guard let t = Double(values[0]), t.isFinite, t >= 0, let e = Int(values[1]), e == 0 || e == 1 else {
                    throw NodeError("patient '\(p)': time '\(values[0])' and event '\(values[1])' must be a finite number ≥ 0 and 0/1")
                }
                time[p] = t
                event[p] = e == 1
            }
        }
        if task == .survival && !patients.contains(where: { event[$0]! }) {  // invariant: filled above for every patient
            throw NodeError("no patient has an observed event (column '\(columns[1])' is 0 everywhere): a Cox model cannot be fitted")
        }
        if task == .regression {
            let numbers = patients.map { Double(value[$0]!) }  // invariant: see `patients`
            mean = numbers.reduce(0, +) / Double(patients.count)
            std = max(1e-6, (numbers.map { pow($0 - mean, 2) }.reduce(0, +) / Double(max(1, patients.count - 1))).squareRoot())
        }
    }

    /// Network outputs per patient: one per class for multiclass, else one.
    var outputs: Int { task == .multiclass ? classes.count : 1 }

    /// Folds are balanced over these groups: events for survival, classes for classification.
    func stratum(_ patient: String) -> String {
        switch task {
        case .survival: return event[patient]! ? "event" : "censored"  // invariant: see `patients`
        case .regression: return ""
        case .binary, .multiclass: return classes[classIndex[patient]!]  // invariant: see `patients`
        }
    }

    /// The patient-level cross-validation folds (0-based) of every model on this task: stratified by
    /// `stratum`, shuffled by `seed`. The CNN and the linear probe both take them from here, so they are
    /// judged on the same splits.
    func folds(_ k: Int, seed: UInt64) -> [String: Int] {
        Folds.assign(patients: patients, k: k, seed: seed, strata: Dictionary(uniqueKeysWithValues: patients.map { ($0, stratum($0)) }))
    }

    /// The partial likelihood is undefined on a batch without an observed event.
    func canTrain(on batch: [String]) -> Bool {
        task != .survival || batch.contains { event[$0]! }  // invariant: see `patients`
    }

    func loss(_ output: Tensor, patients batch: [String]) throws -> LossResult {
        switch loss {
        case .meanSquaredError:
            return try Loss.meanSquaredError(output, batch.map { Float((Double(value[$0]!) - mean) / std) })  // invariant: see `patients`
        case .binaryCrossEntropy(let w):
            return try Loss.binaryCrossEntropy(logits: output, targets: batch.map { Float(classIndex[$0]!) }, positiveWeight: w)  // invariant: see `patients`
        case .softmaxCrossEntropy(let w):
            return try Loss.softmaxCrossEntropy(logits: output, labels: batch.map { classIndex[$0]! }, classWeights: w)  // invariant: see `patients`
        case .cox(let ties):
            return try Loss.cox(risk: output, time: batch.map { time[$0]! }, event: batch.map { event[$0]! }, ties: ties)  // invariant: see `patients`
        }
    }

    /// One output row as a prediction: P(positive), class probabilities, the label's scale, or risk.
    func prediction(_ row: [Double]) -> [Double] { mapping.prediction(row) }

    /// The conversion `prediction` makes, as a kept model (`TrainedModel`) records it.
    var mapping: OutputMapping { OutputMapping(task: task, targetMean: mean, targetStd: std) }

    /// Out-of-fold predictions of the patients that have a score; `folds` are 0-based.
    func predictions(scores: [String: [Double]], folds: [String: Int]) -> Predictions {
        var predictions = Predictions(task: task, targetColumns: columns, classes: classes, patients: [], folds: [], labels: [], time: [], event: [], scores: [])
        for p in patients {
            guard let score = scores[p] else { continue }
            predictions.patients.append(p)
            predictions.folds.append(folds[p]! + 1)  // invariant: see `patients`
            predictions.labels.append(task == .survival ? "" : labels[p]![0])  // invariant: see `patients`
            predictions.time.append(time[p] ?? 0)
            predictions.event.append(event[p] ?? false)
            predictions.scores.append(score)
        }
        return predictions
    }
}
