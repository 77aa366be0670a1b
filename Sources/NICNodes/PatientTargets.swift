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
    /// A second target the shared embedding learns beside the main one (a head's `auxiliary:`):
    /// its value per patient (standardised for mse, 0/1 for binary; NaN where the label is missing).
    let auxiliary: Heads.Auxiliary?
    private var auxiliaryValue: [String: Float] = [:]

    /// `labels`: every slide's labels (slides of a patient must agree; unlabelled slides take no part).
    init(loss: LossSpec, head: String, columns: [String], classes: [String], slides: [(stem: String, labels: [String: String])],
         auxiliary: Heads.Auxiliary? = nil) throws {
        self.loss = loss
        self.columns = columns
        self.auxiliary = auxiliary
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
        if let auxiliary {
            auxiliaryValue = try Self.auxiliaryValues(auxiliary, patients: patients, slides: slides)
        }
    }

    /// The auxiliary column per patient: numbers standardised over the labelled patients (mse), or
    /// 0/1 (binary: the second of the sorted labels, or of `classes`, is 1); a patient without the
    /// label gets NaN, which the losses skip.
    private static func auxiliaryValues(_ auxiliary: Heads.Auxiliary, patients: [String],
                                        slides: [(stem: String, labels: [String: String])]) throws -> [String: Float] {
        var raw: [String: String] = [:]
        for slide in slides {
            guard let patient = slide.labels["patient"], let v = slide.labels[auxiliary.column], !v.isEmpty else { continue }
            if let known = raw[patient], known != v {
                throw NodeError("auxiliary target '\(auxiliary.column)': patient '\(patient)' has slides with different values ('\(known)' vs '\(v)')")
            }
            raw[patient] = v
        }
        let labelled = patients.filter { raw[$0] != nil }
        guard !labelled.isEmpty else {
            throw NodeError("\(auxiliary.file): auxiliary target '\(auxiliary.column)': no patient has a value in labels.csv (add the column, or use a head without 'auxiliary')")
        }
        var out: [String: Float] = [:]
        switch auxiliary.loss {
        case .meanSquaredError:
            var numbers: [String: Double] = [:]
            for p in labelled {
                guard let v = Double(raw[p]!), v.isFinite else {  // invariant: `labelled` have a raw value
                    throw NodeError("auxiliary target '\(auxiliary.column)': patient '\(p)' has '\(raw[p]!)', not a finite number")  // invariant: as above
                }
                numbers[p] = v
            }
            let m = numbers.values.reduce(0, +) / Double(numbers.count)
            let sd = max(1e-6, (numbers.values.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(max(1, numbers.count - 1))).squareRoot())
            for p in patients { out[p] = numbers[p].map { Float(($0 - m) / sd) } ?? .nan }
        case .binaryCrossEntropy:
            let classes = auxiliary.classes.isEmpty
                ? Array(Set(labelled.map { raw[$0]! })).sorted { (Double($0) ?? .infinity, $0) < (Double($1) ?? .infinity, $1) }  // invariant: as above
                : auxiliary.classes
            guard classes.count == 2 else {
                throw NodeError("auxiliary target '\(auxiliary.column)': a binary auxiliary loss needs 2 classes, the labels have \(classes.count): \(classes)")
            }
            for p in patients {
                guard let v = raw[p] else { out[p] = .nan; continue }
                guard let k = classes.firstIndex(of: v) else { throw NodeError("auxiliary target '\(auxiliary.column)': patient '\(p)': '\(v)' is not one of \(classes)") }
                out[p] = Float(k)
            }
        default:
            throw NodeError("\(auxiliary.file): auxiliary loss must be mse or binary_cross_entropy")
        }
        return out
    }

    /// Predictions per patient: one per class for multiclass, else one.
    var outputs: Int { task == .multiclass ? classes.count : 1 }
    /// Network outputs per patient: the prediction's, then one for an auxiliary target.
    var networkOutputs: Int { outputs + (auxiliary == nil ? 0 : 1) }

    /// The Cox step compares the whole training fold (`risk_set: fold` in the head).
    var usesFoldRiskSet: Bool {
        if case .cox(_, .fold) = loss { return true }
        return false
    }

    /// The latest risk of every training item of a fold (a bag, or a slide for the CNN), for a Cox
    /// head with `risk_set: fold`: a step's fresh risks are compared with these for the rest of the fold.
    struct FoldRisks {
        /// Item id → position in the arrays below.
        var position: [Int: Int]
        var time: [Double], event: [Bool]
        var risk: [Float]
    }

    /// The fold's risk memory (nil unless `usesFoldRiskSet`), each item starting at `initial(item)`:
    /// the untrained model's risk, so no item enters the first steps at an arbitrary value.
    func foldRisks(items: [Int], patient: (Int) -> String, initial: (Int) throws -> Float) throws -> FoldRisks? {
        guard usesFoldRiskSet else { return nil }
        var memory = FoldRisks(position: [:], time: [], event: [], risk: [])
        for item in items where memory.position[item] == nil {
            memory.position[item] = memory.time.count
            memory.time.append(time[patient(item)]!)  // invariant: items belong to labelled patients (see `patients`)
            memory.event.append(event[patient(item)]!)  // invariant: as above
            memory.risk.append(try initial(item))
        }
        guard memory.event.contains(true) else {
            throw NodeError("a training fold has no observed event: the Cox partial likelihood is undefined (fewer folds, or more patients with events)")
        }
        return memory
    }

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

    /// The partial likelihood is undefined on a batch without an observed event (unless the step
    /// compares the whole fold, which has one).
    func canTrain(on batch: [String]) -> Bool {
        task != .survival || usesFoldRiskSet || batch.contains { event[$0]! }  // invariant: see `patients`
    }

    /// A step's loss on `output` [batch, networkOutputs]. `items` and `memory`: the batch's item ids
    /// and the fold's risk memory when the Cox risk set is the fold (the memory takes the fresh risks).
    func loss(_ output: Tensor, patients batch: [String], items: [Int] = [], memory: inout FoldRisks?) throws -> LossResult {
        guard let auxiliary else { return try mainLoss(output, patients: batch, items: items, memory: &memory) }
        let width = networkOutputs, n = batch.count
        let main = Tensor(shape: [n, outputs], data: (0..<n).flatMap { i in output.data[(i * width)..<(i * width + outputs)] })
        let mainResult = try mainLoss(main, patients: batch, items: items, memory: &memory)
        let side = Tensor(shape: [n, 1], data: (0..<n).map { output.data[$0 * width + outputs] })
        let targets = batch.map { auxiliaryValue[$0] ?? .nan }
        let sideResult = auxiliary.loss == .meanSquaredError
            ? try Loss.meanSquaredError(side, targets)
            : try Loss.binaryCrossEntropy(logits: side, targets: targets)
        let w = Float(auxiliary.weight)
        var gradient = [Float](repeating: 0, count: n * width)
        for i in 0..<n {
            for j in 0..<outputs { gradient[i * width + j] = mainResult.gradient.data[i * outputs + j] }
            gradient[i * width + outputs] = w * sideResult.gradient.data[i]
        }
        return LossResult(value: mainResult.value + Double(w) * sideResult.value, gradient: Tensor(shape: output.shape, data: gradient))
    }

    func loss(_ output: Tensor, patients batch: [String]) throws -> LossResult {
        var none: FoldRisks? = nil
        return try loss(output, patients: batch, memory: &none)
    }

    private func mainLoss(_ output: Tensor, patients batch: [String], items: [Int], memory: inout FoldRisks?) throws -> LossResult {
        if case .cox(let ties, .fold) = loss, var risks = memory {
            let members = try items.map { item in
                guard let p = risks.position[item] else { throw NodeError("item \(item) is not in the fold's risk set") }
                return p
            }
            let result = try Loss.coxRiskSet(risk: output, members: members, memory: risks.risk, time: risks.time, event: risks.event, ties: ties)
            // The memory keeps each member's latest risk (the mean of its occurrences in this step).
            var fresh: [Int: (Float, Float)] = [:]
            for (p, m) in members.enumerated() { fresh[m, default: (0, 0)].0 += output.data[p]; fresh[m, default: (0, 0)].1 += 1 }
            for (m, v) in fresh { risks.risk[m] = v.0 / v.1 }
            memory = risks
            return result
        }
        switch loss {
        case .meanSquaredError:
            return try Loss.meanSquaredError(output, batch.map { Float((Double(value[$0]!) - mean) / std) })  // invariant: see `patients`
        case .binaryCrossEntropy(let w):
            return try Loss.binaryCrossEntropy(logits: output, targets: batch.map { Float(classIndex[$0]!) }, positiveWeight: w)  // invariant: see `patients`
        case .softmaxCrossEntropy(let w):
            return try Loss.softmaxCrossEntropy(logits: output, labels: batch.map { classIndex[$0]! }, classWeights: w)  // invariant: see `patients`
        case .cox(let ties, _):
            return try Loss.cox(risk: output, time: batch.map { time[$0]! }, event: batch.map { event[$0]! }, ties: ties)  // invariant: see `patients`
        }
    }

    /// One output row as a prediction: P(positive), class probabilities, the label's scale, or risk.
    func prediction(_ row: [Double]) -> [Double] { mapping.prediction(row) }

    /// The conversion `prediction` makes, as a kept model (`TrainedModel`) records it.
    var mapping: OutputMapping { OutputMapping(task: task, targetMean: mean, targetStd: std, outputs: outputs) }

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
