import Flow
import Foundation
import NICBasics
import Neural
import Stats

/// A linear probe on compressed slides: the baseline a patient CNN must beat. A patient's features are
/// its codes pooled over the tissue cells of all its slides (orientation 0): per code channel the mean
/// and/or the max, concatenated. A linear model with an L2 penalty is fitted by the head's loss —
/// ridge regression (mse), logistic regression (binary cross-entropy), multinomial logistic regression
/// (softmax), or a Cox model with the head's ties (Breslow/Efron) — on features standardised on the
/// training fold.
///
/// The outer folds are the patient model's (`PatientTargets.folds`, same `folds` and `seed`), so a
/// probe and a `patient_model` on the same grids are judged on the same splits. The penalty is chosen
/// per outer fold by an inner cross-validation on that fold's training patients only (lowest held-out
/// deviance, see `LinearProbe.select`); the held-out patients never take part in the choice.
/// Penalty convention: mean loss per patient + λ/2 ‖w‖² (scikit-learn `Ridge(alpha = nλ)`,
/// `LogisticRegression(C = 1/(nλ))`, lifelines `CoxPHFitter(penalizer = λ)`).
///
/// Output (`Predictions` port): task.json and predictions.csv as `patient_model` writes them, and
/// probe.json: features, pooling, the penalty grid, and per fold the chosen penalty and the inner
/// deviance of every candidate. Patients whose slides have no tissue cell (a TRIDENT blank slide) are
/// left out of training and prediction, with a warning, and listed in probe.json as `no_tissue`.
public struct Probe: NodeType {
    public static let name = "probe"
    /// 2: the trained model (`model` port).
    public static let version = 2
    public static let summary = "Linear probe on mean/max-pooled codes (ridge, logistic, multinomial or Cox; L2 penalty chosen by inner CV) on the patient model's folds; out-of-fold Predictions."
    public static let inputs = [PortSpec("grids", .gridSet, doc: "compressed slides with their labels")]
    public static let outputs = [
        PortSpec("predictions", .predictions, doc: "task.json, predictions.csv (out of fold), probe.json (chosen penalty per fold)"),
        PortSpec("model", .trainedModel, doc: "the k fold probes as an ensemble for `apply`: model.json (card), fold<k>.safetensors"),
    ]

    public enum Pooling: String, ParamChoice { case mean, max }

    public struct Params: NodeParams {
        @Param(doc: "output head, e.g. nodes/heads/cox.yaml; its loss sets the task and the model (only its loss is used)", schema: HeadFile.self) var head: Reference
        @Param(doc: "label column(s) of labels.csv: one, or [time, event] for Cox", .count(1, 2)) var target: [String]
        @Param(doc: "class labels in order (binary: [negative, positive]); default: sorted values") var classes: [String] = []
        @Param(doc: "patient-level cross-validation folds (the patient model's, for the same folds and seed)", .atLeast(2)) var folds = 4
        @Param(doc: "per code channel, over the tissue cells of a patient's slides: mean, max or both (concatenated)", .count(1, 2))
        var pooling: [Pooling] = [.mean, .max]
        @Param(doc: "candidate L2 penalties λ (mean loss + λ/2‖w‖²); one is chosen per fold by inner CV on its training patients", .positive, .count(1))
        var penalty = [0.01, 0.1, 1, 10, 100]
        @Param(doc: "folds of the inner cross-validation that chooses the penalty", .atLeast(2)) var innerFolds = 3
        @Param(doc: "folds (as the patient model's) and inner folds") var seed = 0
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let gridSet = try GridSet(folder: try context.input("grids"))
        for column in ["patient"] + params.target where !gridSet.slideSet.labelColumns.contains(column) {
            throw NodeError("param 'target': the cohort's labels.csv has no column '\(column)'; it has \(gridSet.slideSet.labelColumns.joined(separator: ", "))")
        }
        let loss = try HeadFile.decode(params.head).loss
        let targets = try PatientTargets(loss: loss, head: params.head.url.lastPathComponent, columns: params.target, classes: params.classes,
                                         slides: gridSet.slideSet.slides.map { ($0.stem, $0.labels) })
        targets.reportDropped(context)
        let patients = targets.patients
        guard patients.count >= params.folds else {
            throw NodeError("\(patients.count) labelled patient(s); \(params.folds)-fold cross-validation needs at least as many")
        }
        let seed = UInt64(truncatingIfNeeded: params.seed)
        let folds = targets.folds(params.folds, seed: seed)
        let pooled = try Self.features(gridSet, patients: patients, pooling: params.pooling)
        // A patient without a tissue cell (only blank slides) has no features: zeros would be a made-up
        // prediction, so it is left out of training and prediction.
        let noTissue = Set(pooled.noTissue)
        if !noTissue.isEmpty {
            context.logger.warning("\(noTissue.count) patient(s) without a tissue cell on any slide left out: \(pooled.noTissue.prefix(10).joined(separator: ", "))\(noTissue.count > 10 ? ", …" : "")")
        }
        let target = try Self.target(targets, loss: loss)

        var scores: [String: [Double]] = [:]
        var foldRecords: [ParamValue] = []
        let modelFolder = try context.output("model")
        var members: [TrainedModel.Member] = []
        for fold in 0..<params.folds {
            try context.checkCancellation()
            let train = patients.indices.filter { folds[patients[$0]] != fold && !noTissue.contains(patients[$0]) }
            let test = patients.indices.filter { folds[patients[$0]] == fold && !noTissue.contains(patients[$0]) }
            guard train.count >= params.innerFolds else {
                throw NodeError("fold \(fold + 1): \(train.count) training patient(s); \(params.innerFolds) inner folds need at least as many (lower 'inner_folds')")
            }
            let x = train.map { pooled.x[$0] }, y = target.subset(train)
            guard let selection = LinearProbe.select(x: x, target: y, penalties: params.penalty, folds: params.innerFolds,
                                                     seed: SeedStream(seed).derive(.fold, fold)),
                  let model = LinearProbe.fit(x: x, target: y, penalty: selection.penalty) else {
                throw NodeError("fold \(fold + 1): the linear fit failed (a singular system); try larger penalties")
            }
            for i in test { scores[patients[i]] = model.predict(pooled.x[i]) }
            let weights = "fold\(fold + 1).safetensors"
            try Self.save(model, to: modelFolder.appendingPathComponent(weights))
            members.append(TrainedModel.Member(fold: fold + 1, weights: weights, trainPatients: train.count))
            foldRecords.append(.map([
                "fold": .int(fold + 1), "train": .int(train.count), "test": .int(test.count),
                "penalty": .float(selection.penalty), "inner_deviance": .list(selection.deviance.map { .float($0) }),
            ]))
            context.progress(fold + 1, of: params.folds, unit: "folds")
        }

        let out = try context.output("predictions")
        let predictions = targets.predictions(scores: scores, folds: folds)
        try predictions.write(to: out)
        let card = TrainedModel.Card(kind: .probe, task: targets.task, target: targets.columns, classes: targets.classes,
                                     output: OutputMapping(task: targets.task, targetMean: 0, targetStd: 1),
                                     pooling: params.pooling.map(\.rawValue),
                                     codeStandardisation: "per pooled feature, (x − standardize.mean) / standardize.scale with each member's training-fold statistics (in its weights file)",
                                     members: members, encoder: .of(gridSet, context: context, port: "grids"),
                                     trainingCohort: TrainedModel.cohort(gridSet: gridSet, targets: targets, context: context),
                                     outOfFold: TrainedModel.outOfFoldMetrics(predictions))
        try TrainedModel.write(card, to: modelFolder)
        let document: ParamValue = .map([
            "task": .string(targets.task.rawValue), "model": .string(Self.modelName(loss)),
            "features": .int(pooled.x.first?.count ?? 0), "pooling": .list(params.pooling.map { .string($0.rawValue) }),
            "penalties": .list(params.penalty.map { .float($0) }), "inner_folds": .int(params.innerFolds),
            "criterion": .string(targets.task == .survival ? "cross-validated partial likelihood (Verweij & van Houwelingen)" : targets.task == .regression ? "held-out squared error" : "held-out log loss"),
            "no_tissue": .list(pooled.noTissue.map { .string($0) }), "folds": .list(foldRecords),
        ])
        try Data(document.canonicalJSON.utf8).write(to: out.appendingPathComponent("probe.json"))
    }

    /// A fold's probe in PyTorch layout (an `nn.Linear` on standardised features), float64 so a kept
    /// probe predicts exactly what it predicted out of fold.
    static func save(_ model: LinearProbe, to url: URL) throws {
        let p = model.mean.count
        try Safetensors.write([
            ("linear.weight", .f64(model.weights.flatMap { $0 }, shape: [model.weights.count, p])),
            ("linear.bias", .f64(model.intercepts, shape: [model.intercepts.count])),
            ("standardize.mean", .f64(model.mean, shape: [p])),
            ("standardize.scale", .f64(model.scale, shape: [p])),
        ], metadata: ["format": "pt", "layout": "pytorch"], to: url)
    }

    /// A kept fold probe; `kind` says which prediction it makes.
    static func load(_ url: URL, task: Predictions.Task, classes: Int) throws -> LinearProbe {
        let tensors = try Safetensors.read(url)
        func tensor(_ name: String) throws -> Safetensors.Value {
            guard let t = tensors[name] else { throw NodeError("\(url.path): missing tensor '\(name)'") }
            return t
        }
        let mean = try tensor("standardize.mean").doubles, scale = try tensor("standardize.scale").doubles
        let bias = try tensor("linear.bias").doubles, flat = try tensor("linear.weight").doubles
        let p = mean.count
        guard scale.count == p, !bias.isEmpty, flat.count == bias.count * p else {
            throw NodeError("\(url.path): linear.weight has \(flat.count) values for \(bias.count) output(s) × \(p) features")
        }
        let target: LinearProbe.Target
        switch task {
        case .regression: target = .regression([])
        case .binary: target = .binary([])
        case .multiclass: target = .multiclass([], classes: classes)
        case .survival: target = .survival(time: [], event: [], ties: .breslow)
        }
        return LinearProbe(target: target, mean: mean, scale: scale, intercepts: bias,
                           weights: (0..<bias.count).map { Array(flat[($0 * p)..<(($0 + 1) * p)]) })
    }

    static func modelName(_ loss: LossSpec) -> String {
        switch loss {
        case .meanSquaredError: return "ridge"
        case .binaryCrossEntropy: return "logistic"
        case .softmaxCrossEntropy: return "multinomial logistic"
        case .cox(let ties, _): return "cox (\(ties.rawValue))"
        }
    }

    /// The targets of `targets.patients`, in that order, as the linear model takes them.
    static func target(_ targets: PatientTargets, loss: LossSpec) throws -> LinearProbe.Target {
        let values = targets.patients.map { targets.labels[$0]! }  // invariant: every patient has labels
        switch loss {
        case .meanSquaredError:
            return .regression(values.map { Double($0[0])! })  // invariant: PatientTargets checked every value is a finite number
        case .binaryCrossEntropy:
            return .binary(values.map { $0[0] == targets.classes[1] })
        case .softmaxCrossEntropy:
            return .multiclass(values.map { targets.classes.firstIndex(of: $0[0])! }, classes: targets.classes.count)  // invariant: PatientTargets checked every label is a class
        case .cox(let ties, _):
            guard let tieMethod = CoxRegression.Ties(rawValue: ties.rawValue) else { throw NodeError("Cox ties '\(ties.rawValue)': expected breslow or efron") }
            return .survival(time: values.map { Double($0[0])! }, event: values.map { Int($0[1]) == 1 }, ties: tieMethod)  // invariant: PatientTargets checked every time is a finite number
        }
    }

    /// One row per patient (in `patients` order): for each pooling in turn, one value per code channel
    /// over the tissue cells of all the patient's slides, orientation 0.
    static func features(_ gridSet: GridSet, patients: [String], pooling: [Pooling],
                         patientOf: (SlideEntry) -> String? = { $0.labels["patient"] }) throws -> (x: [[Double]], noTissue: [String]) {
        let c = gridSet.info.codeSize
        let row = Dictionary(uniqueKeysWithValues: patients.enumerated().map { ($1, $0) })
        var sum = [[Double]](repeating: [Double](repeating: 0, count: c), count: patients.count)
        var top = [[Double]](repeating: [Double](repeating: -.infinity, count: c), count: patients.count)
        var cells = [Int](repeating: 0, count: patients.count)
        for slide in gridSet.slideSet.slides {
            guard let patient = patientOf(slide), let r = row[patient] else { continue }
            let loaded = try gridSet.load(slide.stem, orientation: 0)
            for cell in loaded.mask.indices where loaded.mask[cell] {
                for ch in 0..<c {
                    let v = Double(loaded.grid[cell * c + ch])
                    sum[r][ch] += v
                    top[r][ch] = max(top[r][ch], v)
                }
                cells[r] += 1
            }
        }
        let x = patients.indices.map { r in
            pooling.flatMap { pool -> [Double] in
                guard cells[r] > 0 else { return [Double](repeating: 0, count: c) }
                return pool == .mean ? sum[r].map { $0 / Double(cells[r]) } : top[r]
            }
        }
        return (x, patients.indices.filter { cells[$0] == 0 }.map { patients[$0] })
    }
}
