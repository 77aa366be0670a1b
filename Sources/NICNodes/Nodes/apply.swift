import Flow
import Foundation
import Neural
import Stats

/// Applies a kept patient model (the `model` output of `patient_model` or `probe`) to the grids of any
/// cohort — an external test set, a second hospital, a challenge's unlabelled slides. Each of the
/// model's fold members predicts every patient exactly as it predicted its held-out fold (same
/// standardisation, test crops and orientations); the ensemble's prediction is their mean.
///
/// Labels are optional. Patients with a label in the model's target columns go to `predictions.csv`
/// (fold 0, `task.json` marked `external`), which `evaluator` and `compare` judge as usual; every
/// patient goes to `submission.csv`. Without any label the evaluator reports that there is nothing
/// to score. A patient without a tissue cell on any slide is skipped with a warning and listed in
/// `skipped.csv` and task.json's `skipped` (which the evaluator reports): no evidence, no prediction.
/// A patient is labels.csv's `patient` (the slide's stem when the cohort has no labels).
///
/// Codes of one encoder mean nothing to a model trained on another's: grids whose encoder (the cache
/// key of the compressor's `encoder` input), patch size or µm/px differ from the model card's are
/// refused with both named, unless `allow_other_encoder: true`. A different code width is always an error.
public struct ApplyModel: NodeType {
    public static let name = "apply"
    public static let version = 2  // 2: patients without tissue are skipped (skipped.csv), not predicted 0
    public static let summary = "Applies a kept patient model (patient_model/probe 'model') to any cohort's grids: external Predictions, a submission CSV, each fold member's prediction."
    public static let inputs = [
        PortSpec("model", .trainedModel, doc: "a patient_model or probe node's 'model' output"),
        PortSpec("grids", .gridSet, doc: "compressed slides of the cohort to predict, with or without labels"),
    ]
    public static let outputs = [PortSpec("predictions", .predictions,
                                          doc: "task.json (external; skipped patients), predictions.csv (labelled patients), submission.csv (every patient with tissue), skipped.csv (patients without a tissue cell: no prediction), members.csv (each fold model's prediction)")]

    public struct Params: NodeParams {
        @Param(doc: "apply the model to grids of another encoder (another key, patch size or µm/px than the model card's) instead of refusing them")
        var allowOtherEncoder = false
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let model = try TrainedModel(folder: try context.input("model"))
        let gridSet = try GridSet(folder: try context.input("grids"))
        let card = model.card
        try Self.checkEncoder(trained: card.encoder, given: .of(gridSet, context: context, port: "grids"), allow: params.allowOtherEncoder, context: context)

        let patientOf: (SlideEntry) -> String? = { entry in
            let p = entry.labels["patient"] ?? ""
            return p.isEmpty ? entry.stem : p
        }
        let cohort = Array(Set(gridSet.slideSet.slides.compactMap(patientOf))).sorted()
        guard !cohort.isEmpty else { throw NodeError("the grids hold no slide: nothing to predict") }
        // A patient with no tissue cell on any slide has no evidence: it is skipped, named in a warning,
        // skipped.csv and task.json, never given a made-up prediction (0 or the prior) that an evaluator would score.
        let (patients, members, skipped) = try Self.memberPredictions(model, gridSet: gridSet, patients: cohort, patientOf: patientOf, context: context)
        if !skipped.isEmpty {
            context.warn("\(skipped.count) of \(cohort.count) patient(s) skipped, no tissue cell on any of their slides (no prediction rather than a made-up one; listed in skipped.csv): \(skipped.prefix(20).joined(separator: ", "))\(skipped.count > 20 ? ", …" : "")")
        }
        guard !patients.isEmpty else {
            throw NodeError("none of the \(cohort.count) patient(s) has a tissue cell on any slide: nothing to predict (check the compressor's min_tissue and the slides' tissue detection)")
        }
        let ensemble = patients.indices.map { i -> [Double] in
            let width = members[0][i].count
            return (0..<width).map { j in members.reduce(0) { $0 + $1[i][j] } / Double(members.count) }
        }

        let out = try context.output("predictions")
        var predictions = try Self.labelled(card, gridSet: gridSet, patients: patients, scores: ensemble, patientOf: patientOf)
        predictions.skipped = skipped
        try predictions.write(to: out)
        try Self.submission(card, patients: patients, scores: ensemble).write(to: out.appendingPathComponent("submission.csv"))
        try Self.skippedTable(card, gridSet: gridSet, skipped: skipped, patientOf: patientOf).write(to: out.appendingPathComponent("skipped.csv"))
        let scoreNames = card.task == .multiclass ? card.classes.map { "_p_\($0)" } : [""]
        try CSVTable(columns: ["patient"] + card.members.flatMap { m in scoreNames.map { "fold\(m.fold)\($0)" } },
                     rows: patients.indices.map { i in [patients[i]] + members.flatMap { $0[i].map { "\($0)" } } })
            .write(to: out.appendingPathComponent("members.csv"))
        context.progress(patients.count, of: patients.count, unit: "patients",
                         message: "\(predictions.count) of \(patients.count) patients labelled in \(card.target.joined(separator: "/"))\(skipped.isEmpty ? "" : "; \(skipped.count) skipped (no tissue)")")
    }

    /// One row per skipped patient: its slides, whether it has a label in the model's target, and why.
    static func skippedTable(_ card: TrainedModel.Card, gridSet: GridSet, skipped: [String], patientOf: (SlideEntry) -> String?) -> CSVTable {
        CSVTable(columns: ["patient", "slides", "labelled", "reason"], rows: skipped.map { p in
            let slides = gridSet.slideSet.slides.filter { patientOf($0) == p }
            let labelled = slides.contains { slide in card.target.allSatisfy { !(slide.labels[$0] ?? "").trimmingCharacters(in: .whitespaces).isEmpty } }
            return [p, slides.map(\.stem).joined(separator: ";"), labelled ? "yes" : "no", "no tissue cell on any slide"]
        })
    }

    /// Refuses grids of another encoder unless allowed; a code width the model cannot read, always.
    static func checkEncoder(trained: TrainedModel.EncoderIdentity, given: TrainedModel.EncoderIdentity, allow: Bool, context: NodeContext) throws {
        guard trained.codeSize == given.codeSize else {
            throw NodeError("the model was trained on grids of \(trained.description); these grids are of \(given.description): it reads \(trained.codeSize) code channels, the grids have \(given.codeSize). Compress this cohort with the model's encoder")
        }
        var differences: [String] = []
        if let a = trained.key, let b = given.key, a != b { differences.append("another encoder") }
        if trained.patchSize != given.patchSize { differences.append("another patch size") }
        if abs(trained.mpp - given.mpp) > 1e-9 { differences.append("another µm/px") }
        guard !differences.isEmpty else { return }
        let message = "the model was trained on grids of \(trained.description); these grids are of \(given.description) (\(differences.joined(separator: ", ")))"
        if allow {
            context.warn(message + "; applied anyway (allow_other_encoder: true)")
        } else {
            throw NodeError(message + ". Codes of another encoder mean something else to the model: compress this cohort with the model's encoder, or set allow_other_encoder: true")
        }
    }

    /// The patients with a tissue cell (in `patients` order), members[m][i] = member m's prediction for
    /// the i-th of them, and the patients skipped for having no tissue cell on any slide.
    static func memberPredictions(_ model: TrainedModel, gridSet: GridSet, patients cohort: [String], patientOf: @escaping (SlideEntry) -> String?,
                                  context: NodeContext) throws -> (patients: [String], members: [[[Double]]], skipped: [String]) {
        let card = model.card
        let channels = gridSet.info.codeSize
        let outputs = card.task == .multiclass ? card.classes.count : 1
        var result: [[[Double]]] = []
        var patients = cohort
        switch card.kind {
        case .cnn:
            guard let crop = card.crop, let testCrops = card.testCrops else {
                throw NodeError("\(model.file("model.json").path): a CNN's card needs crop and test_crops")
            }
            let (architecture, headArchitecture) = try model.definitions(outputs: outputs)
            let slides = try PatientModel.loadSlides(gridSet, patients: Set(cohort), patientOf: patientOf).slides
            let withTissue = Set(slides.map(\.patient))
            patients = cohort.filter(withTissue.contains)
            for member in card.members {
                try context.checkCancellation()
                let trunk = try architecture.build(seed: 0, inputShapes: [[crop, crop, channels]], prefix: "model")
                let head = try headArchitecture.build(seed: 0, inputShapes: [[trunk.outputShape.reduce(1, *)]], prefix: "head")
                let url = model.file(member.weights)
                let tensors = try Safetensors.read(url)
                let used = try trunk.load(tensors, file: url.path).union(try head.load(tensors, file: url.path))
                let unexpected = Set(tensors.keys).subtracting(used)
                guard unexpected.isEmpty else { throw NodeError("\(url.path): tensors this model does not have: \(unexpected.sorted().joined(separator: ", "))") }
                guard let seedText = member.predictionSeed, let seed = UInt64(seedText) else {
                    throw NodeError("\(model.file("model.json").path): member \(member.fold) has no prediction_seed")
                }
                result.append(try patients.map { p in
                    guard let prediction = try PatientModel.predictCNN(trunk: trunk, head: head, slides: slides.filter { $0.patient == p }, crop: crop,
                                                                       channels: channels, testCrops: testCrops,
                                                                       seed: PatientModel.predictionSeed(seed, patient: p), mapping: card.output) else {
                        throw NodeError("patient '\(p)': no crop predicted although its slides have tissue cells")
                    }
                    return prediction
                })
            }
        case .bag:
            let (architecture, headArchitecture) = try model.definitions(outputs: outputs)
            let slides = try BagPatientModel.load(gridSet, patients: Set(cohort), patientOf: patientOf).slides
            let withTissue = Set(slides.map(\.patient))
            patients = cohort.filter(withTissue.contains)
            let perPatient = card.aggregation == PatientModel.Aggregation.slides.rawValue
            for member in card.members {
                try context.checkCancellation()
                let bagModel = try BagModel(architecture: architecture, features: channels, head: headArchitecture, seed: 0)
                try bagModel.load(from: model.file(member.weights))
                guard let mean = member.codeMean, let scale = member.codeScale, mean.count == channels, scale.count == channels else {
                    throw NodeError("\(model.file("model.json").path): member \(member.fold) needs code_mean and code_scale of \(channels) values")
                }
                let scaling = BagPatientModel.Standardization(mean: mean, scale: scale)
                result.append(try patients.map { p in
                    let own = slides.filter { $0.patient == p }
                    let bags = perPatient ? own.map { [$0] } : [own]
                    var sum = [Double](repeating: 0, count: outputs)
                    for bag in bags {
                        let prediction = try BagPatientModel.predictBag(bagModel, members: bag, scaling: scaling, channels: channels, mapping: card.output).prediction
                        sum = zip(sum, prediction).map { $0 + $1 / Double(bags.count) }
                    }
                    return sum
                })
            }
        case .probe:
            let pooling = try (card.pooling ?? []).map { name -> Probe.Pooling in
                guard let p = Probe.Pooling(rawValue: name) else { throw NodeError("\(model.file("model.json").path): unknown pooling '\(name)'") }
                return p
            }
            let all = try Probe.features(gridSet, patients: cohort, pooling: pooling, patientOf: patientOf)
            let noTissue = Set(all.noTissue)
            let keep = cohort.indices.filter { !noTissue.contains(cohort[$0]) }
            patients = keep.map { cohort[$0] }
            let features = (x: keep.map { all.x[$0] }, noTissue: all.noTissue)
            guard !patients.isEmpty else { break }  // the caller says none has tissue
            for member in card.members {
                let probe = try Probe.load(model.file(member.weights), task: card.task, classes: card.classes.count)
                guard probe.mean.count == features.x.first?.count else {
                    throw NodeError("\(model.file(member.weights).path): the probe takes \(probe.mean.count) features, these grids give \(features.x.first?.count ?? 0)")
                }
                result.append(features.x.map { probe.predict($0) })
            }
        }
        let kept = Set(patients)
        return (patients, result, cohort.filter { !kept.contains($0) })
    }

    /// The labelled patients' predictions (fold 0, marked external); labels that are present must be valid.
    static func labelled(_ card: TrainedModel.Card, gridSet: GridSet, patients: [String], scores: [[Double]],
                         patientOf: (SlideEntry) -> String?) throws -> Predictions {
        var labels: [String: [String]] = [:]
        for slide in gridSet.slideSet.slides {
            guard let p = patientOf(slide) else { continue }
            let values = card.target.map { (slide.labels[$0] ?? "").trimmingCharacters(in: .whitespaces) }
            guard !values.contains(where: \.isEmpty) else { continue }
            if let known = labels[p], known != values {
                throw NodeError("patient '\(p)' has slides with different labels (\(known) vs \(values))")
            }
            labels[p] = values
        }
        var predictions = Predictions(task: card.task, targetColumns: card.target, classes: card.classes, patients: [], folds: [],
                                      labels: [], time: [], event: [], scores: [], external: true)
        for (i, p) in patients.enumerated() {
            guard let values = labels[p] else { continue }
            switch card.task {
            case .regression:
                guard let v = Double(values[0]), v.isFinite else { throw NodeError("patient '\(p)': '\(values[0])' in column '\(card.target[0])' is not a finite number") }
                predictions.labels.append(values[0])
                predictions.time.append(0)
                predictions.event.append(false)
            case .binary, .multiclass:
                guard card.classes.contains(values[0]) else {
                    throw NodeError("patient '\(p)': label '\(values[0])' in column '\(card.target[0])' is not one of the model's classes \(card.classes)")
                }
                predictions.labels.append(values[0])
                predictions.time.append(0)
                predictions.event.append(false)
            case .survival:
                guard let t = Double(values[0]), t.isFinite, t >= 0, let e = Int(values[1]), e == 0 || e == 1 else {
                    throw NodeError("patient '\(p)': time '\(values[0])' and event '\(values[1])' must be a finite number ≥ 0 and 0/1")
                }
                predictions.labels.append("")
                predictions.time.append(t)
                predictions.event.append(e == 1)
            }
            predictions.patients.append(p)
            predictions.folds.append(0)
            predictions.scores.append(scores[i])
        }
        return predictions
    }

    /// One row per patient: the predicted value, class (with its probabilities) or risk.
    static func submission(_ card: TrainedModel.Card, patients: [String], scores: [[Double]]) -> CSVTable {
        switch card.task {
        case .regression:
            return CSVTable(columns: ["patient", "prediction"], rows: patients.indices.map { [patients[$0], "\(scores[$0][0])"] })
        case .binary:
            return CSVTable(columns: ["patient", "prediction", "probability"],
                            rows: patients.indices.map { [patients[$0], scores[$0][0] >= 0.5 ? card.classes[1] : card.classes[0], "\(scores[$0][0])"] })
        case .multiclass:
            return CSVTable(columns: ["patient", "prediction"] + card.classes.map { "p_\($0)" }, rows: patients.indices.map { i in
                let row = scores[i]
                let top = row.indices.max { row[$0] < row[$1] } ?? 0
                return [patients[i], card.classes[top]] + row.map { "\($0)" }
            })
        case .survival:
            return CSVTable(columns: ["patient", "risk"], rows: patients.indices.map { [patients[$0], "\(scores[$0][0])"] })
        }
    }
}

extension TrainedModel {
    /// The trunk and head a CNN or bag model was trained with: the model folder's copies of the files.
    func definitions(outputs: Int) throws -> (architecture: Architecture, head: Architecture) {
        guard let architectureFile = card.architecture, let headFile = card.head else {
            throw NodeError("\(file("model.json").path): a \(card.kind == .cnn ? "CNN" : "bag model")'s card needs architecture and head")
        }
        return (try Architecture.load(file: file(architectureFile).path), try Heads.architecture(file: file(headFile), outputs: outputs))
    }
}
