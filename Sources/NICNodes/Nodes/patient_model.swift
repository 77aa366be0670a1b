import NICBasics
import Flow
import Foundation
import Neural
import Stats

/// The NIC patient model: a small CNN on crops of compressed slides with a swappable head
/// (regression, binary, multiclass or Cox survival), trained with patient-level cross-validation.
/// Every patient gets an out-of-fold prediction: the average over its slides, `test_crops` crops per
/// slide and every stored orientation (test-time augmentation).
///
/// An architecture with a `pool` entry (e.g. nodes/patient/abmil-gated.yaml) is a bag model instead:
/// multiple-instance learning over the tissue cells of whole slides (`BagPatientModel`).
///
/// Crops of the architecture's input size are centred with probability proportional to the distance
/// from background (NIC appendix), in a random orientation, one per training slide per epoch. A Cox
/// head with `risk_set: fold` compares each batch with every training slide of the fold; with
/// `risk_set: batch`, batches without an observed event are skipped (the partial likelihood is
/// undefined on them).
///
/// curves.csv records per fold and epoch the training loss and the held-out fold's loss (the CNN: one
/// fixed crop per held-out slide; bag models: each held-out bag, orientation 0, at most `bag_cells`
/// fixed cells), which is only recorded: nothing in training depends on it.
public struct PatientModel: NodeType {
    public static let name = "patient_model"
    /// 2: bag models (an architecture with `pool`). 3: the trained model (`model` port); the CNN's test
    /// crops are drawn per patient (a seed from the fold and the patient's name), so `apply` repeats them.
    public static let version = 3
    public static let summary = "Trains the NIC CNN on compressed slides with a regression/binary/multiclass/Cox head; out-of-fold Predictions per patient."
    public static let inputs = [
        PortSpec("grids", .gridSet, optional: true, doc: "compressed slides with their labels"),
        PortSpec("features", .table, optional: true, doc: "instead of grids: a table (patient, numeric covariates, targets) for a linear model, e.g. Cox on clinical covariates"),
    ]
    public static let outputs = [
        PortSpec("predictions", .predictions, doc: "task.json, predictions.csv (out of fold), curves.csv (per fold: training loss and the held-out fold's loss per epoch)"),
        PortSpec("model", .trainedModel, optional: true, doc: "the k fold models as an ensemble for `apply`: model.json (card), fold<k>.safetensors (on grids; empty for a 'features' table)"),
    ]
    public struct Params: NodeParams {
        @Param(doc: "CNN on grid crops, e.g. nodes/patient/nic-sepconv8.yaml (its input size is the crop size); not used with 'features'", schema: Architecture.self)
        var architecture: Reference? = nil
        @Param(doc: "with 'features': covariate columns (default: every numeric column but patient and targets)")
        var covariates: [String] = []
        @Param(doc: "output head, e.g. nodes/heads/cox.yaml; its loss sets the task", schema: HeadFile.self) var head: Reference
        @Param(doc: "label column(s) of labels.csv: one, or [time, event] for Cox", .count(1, 2)) var target: [String]
        @Param(doc: "class labels in order (binary: [negative, positive]); default: sorted values") var classes: [String] = []
        @Param(doc: "patient-level cross-validation folds", .atLeast(2)) var folds = 4
        @Param(doc: "epochs per fold", .atLeast(1)) var epochs = 20
        @Param(doc: "random crops of each training slide per epoch (each a different place and orientation)", .within(1, 1000))
        var cropsPerSlide = 1
        @Param(doc: "crops per step (batch norm needs 2)", .atLeast(2)) var batchSize = 16
        @Param(doc: "Adam learning rate (÷10 on a training-loss plateau)", .positive) var learningRate = 1e-3
        @Param(doc: "epochs without improvement before the learning rate drops", .atLeast(1)) var patience = 4
        @Param(doc: "crops per slide and orientation averaged at prediction time", .atLeast(1)) var testCrops = 10
        @Param(doc: "how a patient's slides give one prediction: 'slides' predicts each slide and averages per patient (the CNN's way); 'patient' pools every slide's tissue cells into one bag (bag models only); 'auto': patient for bag models, slides for the CNN")
        var aggregation: Aggregation = .auto
        @Param(doc: "bag models: at most this many tissue cells of a bag per training step, a random subset each time (prediction uses every cell)", .within(1, 10_000_000))
        var bagCells = 4096
        @Param(doc: "folds, initialisation, crops") var seed = 0
        public init() {}
    }

    public enum Aggregation: String, ParamChoice { case auto, slides, patient }

    public init() {}

    struct SlideGrids {
        var stem: String
        var patient: String
        /// Per orientation: grid [rows, columns, C], distance weights, rows, columns.
        var views: [(grid: [Float], weights: [Float], rows: Int, columns: Int)]
    }

    public func run(_ context: NodeContext, _ params: Params) throws {
        if context.hasInput("features") {
            guard !context.hasInput("grids") else { throw NodeError("connect either 'grids' or 'features', not both") }
            return try LinearPatientModel.run(context, params)
        }
        guard context.hasInput("grids") else { throw NodeError("connect 'grids' (compressed slides) or 'features' (a table of covariates)") }
        let gridSet = try GridSet(folder: try context.input("grids"))
        guard let architecture = params.architecture else { throw NodeError("param 'architecture' is required with 'grids'") }
        let trunkArchitecture = try Architecture(architecture)
        let isBagModel = trunkArchitecture.pool != nil
        let aggregation: Aggregation = params.aggregation == .auto ? (isBagModel ? .patient : .slides) : params.aggregation
        if aggregation == .patient && !isBagModel {
            throw NodeError("param 'aggregation': 'patient' (one bag per patient) needs a bag model (an architecture with 'pool'); the CNN predicts each slide and averages, use 'slides'")
        }
        let headURL = params.head.url
        for column in ["patient"] + params.target where !gridSet.slideSet.labelColumns.contains(column) {
            throw NodeError("param 'target': the cohort's labels.csv has no column '\(column)'; it has \(gridSet.slideSet.labelColumns.joined(separator: ", "))")
        }
        let headFile = try HeadFile.decode(params.head)
        let targets = try PatientTargets(loss: headFile.loss, head: headURL.lastPathComponent,
                                         columns: params.target, classes: params.classes,
                                         slides: gridSet.slideSet.slides.map { ($0.stem, $0.labels) },
                                         auxiliary: headFile.auxiliary)
        targets.reportDropped(context)
        let patients = targets.patients
        guard patients.count >= params.folds else {
            throw NodeError("\(patients.count) labelled patient(s); \(params.folds)-fold cross-validation needs at least as many")
        }
        if isBagModel {
            return try BagPatientModel.run(context, params, gridSet: gridSet, architecture: trunkArchitecture, targets: targets, aggregation: aggregation)
        }

        let crop = trunkArchitecture.inputs.first?.shape?.first ?? 0
        guard crop > 0 else { throw NodeError("the architecture must declare its input [size, size, channels]") }
        let (slides, empty) = try Self.loadSlides(gridSet, patients: Set(patients))
        if !empty.isEmpty {
            context.logger.warning("\(empty.count) slide(s) without a tissue cell left out (a crop of nothing is no evidence): \(empty.prefix(10).joined(separator: ", "))\(empty.count > 10 ? ", …" : "")")
        }
        guard !slides.isEmpty else { throw NodeError("no labelled slide has a tissue cell: nothing to train on") }
        let channels = gridSet.info.codeSize
        let seed = UInt64(truncatingIfNeeded: params.seed)
        let folds = targets.folds(params.folds, seed: seed)
        let foldCount = params.folds, epochs = params.epochs
        let outputs = targets.outputs, width = targets.networkOutputs
        var scores: [String: [Double]] = [:]
        var curves = [[String]](repeating: [], count: epochs), heldOutCurves = curves
        let modelFolder = try context.output("model")
        var members: [TrainedModel.Member] = []

        for fold in 0..<foldCount {
            let trainSlides = slides.indices.filter { folds[slides[$0].patient] != fold }
            let heldOutSlides = slides.indices.filter { folds[slides[$0].patient] == fold }
            let foldSeed = SeedStream(seed).derive(.fold, fold)
            let trunk = try trunkArchitecture.build(seed: foldSeed, inputShapes: [[crop, crop, channels]], prefix: "model")
            let features = trunk.outputShape.reduce(1, *)
            let head = try Heads.architecture(params.head, outputs: width).build(seed: SeedStream(foldSeed).derive(.patientModelHead), inputShapes: [[features]], prefix: "head")
            let parameters = trunk.parameters + head.parameters
            let trainer = Self.trainer(params, parameters: parameters, fold: fold, context: context)
            // One generator draws both the epoch's order and its crops.
            var rng = SplitMix64(seed: SeedStream(foldSeed).derive(.patientModelSampling))
            // Cox over the whole fold: every training slide's risk, first from one crop of the untrained model.
            var risks = try targets.foldRisks(items: trainSlides, patient: { slides[$0].patient }) { item in
                let x = try crops([slides[item]], crop: crop, channels: channels, rng: &rng, orientation: nil)
                let features = try trunk.forward(x, training: false)
                return try head.forward(features.reshaped([1, features.count]), training: false).data[0]
            }
            let outcome = try trainer.fit(
                order: { _ in Self.epochOrder(trainSlides, repeats: params.cropsPerSlide, rng: &rng) },
                step: { batch, _ in
                    let batchPatients = batch.map { slides[$0].patient }
                    guard targets.canTrain(on: batchPatients) else { return nil }
                    let x = try crops(batch.map { slides[$0] }, crop: crop, channels: channels, rng: &rng, orientation: nil)
                    let features = try trunk.forward(x, training: true)
                    let output = try head.forward(features.reshaped([batch.count, features.count / batch.count]), training: true)
                    let result = try targets.loss(output, patients: batchPatients, items: batch, memory: &risks)
                    let dFeatures = try head.backward(result.gradient)[0]
                    try trunk.backward(dFeatures.reshaped(features.shape))
                    return StepResult(loss: result.value)
                },
                heldOut: { _ in
                    // The same crops every epoch (their own generator, so training draws as without it):
                    // one per held-out slide, in eval mode, the fold's patients as one batch.
                    var heldOutRNG = SplitMix64(seed: SeedStream(foldSeed).derive(.patientModelHeldOut))
                    let batchPatients = heldOutSlides.map { slides[$0].patient }
                    guard !heldOutSlides.isEmpty, targets.canTrain(on: batchPatients) else { return nil }
                    var logits: [Float] = []
                    for start in stride(from: 0, to: heldOutSlides.count, by: params.batchSize) {
                        let chunk = heldOutSlides[start..<min(heldOutSlides.count, start + params.batchSize)].map { slides[$0] }
                        let x = try crops(chunk, crop: crop, channels: channels, rng: &heldOutRNG, orientation: nil)
                        let features = try trunk.forward(x, training: false)
                        logits += try head.forward(features.reshaped([chunk.count, features.count / chunk.count]), training: false).data
                    }
                    return try targets.loss(Tensor(shape: [heldOutSlides.count, width], data: logits), patients: batchPatients).value
                },
                snapshot: { () })
            Self.record(outcome, into: &curves, heldOut: &heldOutCurves)
            // Out-of-fold predictions: average over slides × orientations × crops.
            for patient in patients where folds[patient] == fold {
                scores[patient] = try Self.predictCNN(trunk: trunk, head: head, slides: slides.filter { $0.patient == patient }, crop: crop, channels: channels,
                                                      testCrops: params.testCrops, seed: Self.predictionSeed(SeedStream(foldSeed).derive(.patientModelPrediction), patient: patient), mapping: targets.mapping)
            }
            let weights = "fold\(fold + 1).safetensors"
            try Safetensors.write(trunk.stateDict() + head.stateDict(), metadata: ["format": "pt", "layout": "pytorch"], to: modelFolder.appendingPathComponent(weights))
            members.append(TrainedModel.Member(fold: fold + 1, weights: weights, trainPatients: Set(trainSlides.map { slides[$0].patient }).count,
                                               predictionSeed: String(SeedStream(foldSeed).derive(.patientModelPrediction))))
        }

        let predictions = targets.predictions(scores: scores, folds: folds)
        try Self.writePredictions(predictions, curves: curves, heldOut: heldOutCurves, context: context)
        try Self.writeModel(kind: .cnn, params, members: members, crop: crop, gridSet: gridSet, targets: targets, predictions: predictions,
                            standardisation: "none: the CNN reads the codes as the encoder gave them", to: modelFolder, context: context)
    }

    /// The seed of a patient's test crops: the fold's, mixed with the patient's name (FNV-1a, stable
    /// across runs and machines), so a patient's prediction does not depend on which others are predicted.
    static func predictionSeed(_ seed: UInt64, patient: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in patient.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return seed ^ hash
    }

    /// One patient's prediction by one CNN: the average over its slides × stored orientations ×
    /// `testCrops` crops of the head's output mapped to a prediction.
    static func predictCNN(trunk: Network, head: Network, slides: [SlideGrids], crop: Int, channels: Int, testCrops: Int,
                           seed: UInt64, mapping: OutputMapping) throws -> [Double]? {
        var rng = SplitMix64(seed: seed)
        let outputs = head.outputShape.reduce(1, *)
        var sum: [Double] = [], n = 0.0
        for slide in slides {
            for k in slide.views.indices {
                let batch = [SlideGrids](repeating: slide, count: testCrops)
                let x = try PatientModel().crops(batch, crop: crop, channels: channels, rng: &rng, orientation: k)
                let features = try trunk.forward(x, training: false)
                let output = try head.forward(features.reshaped([batch.count, features.count / batch.count]), training: false)
                for i in 0..<batch.count {
                    // The mapping drops an auxiliary target's output (a multi-task head).
                    let prediction = mapping.prediction((0..<outputs).map { Double(output.data[i * outputs + $0]) })
                    if sum.isEmpty { sum = [Double](repeating: 0, count: prediction.count) }
                    for j in prediction.indices { sum[j] += prediction[j] }
                    n += 1
                }
            }
        }
        // A patient whose slides all lack tissue has no evidence: no prediction rather than 0.
        return n > 0 ? sum.map { $0 / n } : nil
    }

    /// The card of a CNN or bag model (its members' weights are written already), with copies of
    /// its architecture and head.
    static func writeModel(kind: TrainedModel.Kind, _ params: Params, members: [TrainedModel.Member], crop: Int?, aggregation: Aggregation? = nil,
                           gridSet: GridSet, targets: PatientTargets, predictions: Predictions, standardisation: String,
                           to folder: URL, context: NodeContext) throws {
        guard let architecture = params.architecture else { return }
        try architecture.write(to: folder.appendingPathComponent("architecture.yaml"))
        try params.head.write(to: folder.appendingPathComponent("head.yaml"))
        let card = TrainedModel.Card(kind: kind, task: targets.task, target: targets.columns, classes: targets.classes, output: targets.mapping,
                                     architecture: "architecture.yaml", architectureSource: architecture.url.lastPathComponent,
                                     head: "head.yaml", headSource: params.head.url.lastPathComponent,
                                     crop: crop, testCrops: kind == .cnn ? params.testCrops : nil, aggregation: aggregation?.rawValue,
                                     pooling: nil, codeStandardisation: standardisation, members: members,
                                     encoder: .of(gridSet, context: context, port: "grids"),
                                     trainingCohort: TrainedModel.cohort(gridSet: gridSet, targets: targets, context: context),
                                     outOfFold: TrainedModel.outOfFoldMetrics(predictions))
        try TrainedModel.write(card, to: folder)
    }

    /// A fold's epochs appended to the per-epoch rows: its training loss, and its held-out loss ("" when undefined).
    static func record(_ outcome: TrainingOutcome<Void>, into curves: inout [[String]], heldOut: inout [[String]]) {
        for record in outcome.epochs {
            curves[record.epoch - 1].append("\(record.trainLoss)")
            heldOut[record.epoch - 1].append(record.heldOutLoss.map { "\($0)" } ?? "")
        }
    }

    /// The out-of-fold predictions and the per-fold loss curves (`fold<k>_loss`: training, the mean
    /// step loss; `fold<k>_val_loss`: the held-out fold's loss after the epoch, recorded only — with tens
    /// of patients no fold can spare a validation set, and choosing anything by the test fold would bias
    /// its out-of-fold predictions); returns the output folder.
    @discardableResult
    static func writePredictions(_ predictions: Predictions, curves: [[String]], heldOut: [[String]], context: NodeContext) throws -> URL {
        let out = try context.output("predictions")
        try predictions.write(to: out)
        let folds = curves.map(\.count).max() ?? 0
        try CSVTable(columns: ["epoch"] + (0..<folds).map { "fold\($0 + 1)_loss" } + (0..<folds).map { "fold\($0 + 1)_val_loss" },
                     rows: curves.indices.map { e in [String(e + 1)] + curves[e] + heldOut[e] })
            .write(to: out.appendingPathComponent("curves.csv"))
        return out
    }

    /// One fold's training loop, the same for the CNN and bag models: Adam, the learning rate ÷10 on a
    /// training-loss plateau (with tens of patients no fold can spare a validation set), progress in epochs.
    static func trainer(_ params: Params, parameters: [Parameter], fold: Int, context: NodeContext) -> Trainer {
        let epochs = params.epochs, folds = params.folds
        var trainer = Trainer(schedule: TrainingSchedule(epochs: epochs, batchSize: params.batchSize,
                                                         plateau: ReduceOnPlateau(factor: 0.1, patience: params.patience, minLearningRate: 1e-5)),
                              update: .optimizer(Adam(learningRate: Float(params.learningRate)), parameters: parameters))
        trainer.checkCancellation = { try context.checkCancellation() }
        trainer.progress = { p in
            guard p.epochFinished else { return }
            context.progress(fold * epochs + p.epoch, of: folds * epochs, unit: "epochs",
                             stage: "fold \(fold + 1)/\(folds) epoch \(p.epoch)/\(epochs)", metrics: ["loss": p.metrics["loss"] ?? .nan].merging(p.metrics["held_out_loss"].map { ["val_loss": $0] } ?? [:]) { a, _ in a })
        }
        return trainer
    }

    /// An epoch's items: every training item `repeats` times, shuffled.
    static func epochOrder(_ items: [Int], repeats: Int, rng: inout SplitMix64) -> [Int] {
        var order = Array(repeating: items, count: repeats).flatMap { $0 }
        order.shuffle(using: &rng)
        return order
    }

    /// Every labelled slide's grids, in each stored orientation, with the crop-centre weights.
    /// Slides without a tissue cell (a TRIDENT slide with no tissue) are left out and listed in `empty`.
    static func loadSlides(_ gridSet: GridSet, patients: Set<String>, patientOf: (SlideEntry) -> String? = { $0.labels["patient"] }) throws -> (slides: [SlideGrids], empty: [String]) {
        var slides: [SlideGrids] = []
        var empty: [String] = []
        for entry in gridSet.slideSet.slides {
            guard let patient = patientOf(entry), patients.contains(patient) else { continue }
            if let info = gridSet.info.slides.first(where: { $0.stem == entry.stem }), info.tissueCells == 0 { empty.append(entry.stem); continue }
            var views: [(grid: [Float], weights: [Float], rows: Int, columns: Int)] = []
            for k in 0..<gridSet.info.orientations {
                let loaded = try gridSet.load(entry.stem, orientation: k)
                let distance = GridCrops.distanceToBackground(mask: loaded.mask, height: loaded.rows, width: loaded.columns)
                views.append((loaded.grid, distance, loaded.rows, loaded.columns))
            }
            slides.append(SlideGrids(stem: entry.stem, patient: patient, views: views))
        }
        return (slides, empty)
    }

    /// A batch of crops [n, crop, crop, C]: centres ∝ distance to background; orientation random
    /// unless given.
    func crops(_ batch: [SlideGrids], crop: Int, channels: Int, rng: inout SplitMix64, orientation: Int?) throws -> Tensor {
        var data = [Float](repeating: 0, count: batch.count * crop * crop * channels)
        for (i, slide) in batch.enumerated() {
            let k = orientation ?? Int(rng.next() % UInt64(slide.views.count))
            let view = slide.views[k]
            let centre = GridCrops.sampleCentres(weights: view.weights, width: view.columns, count: 1, using: &rng)?.first
                ?? (view.rows / 2, view.columns / 2)
            view.grid.withUnsafeBufferPointer { grid in
                data.withUnsafeMutableBufferPointer { out in
                    let slice = UnsafeMutableBufferPointer(rebasing: out[(i * crop * crop * channels)..<((i + 1) * crop * crop * channels)])
                    GridCrops.crop(grid, height: view.rows, width: view.columns, channels: channels, centre: centre, size: crop, into: slice)
                }
            }
        }
        return Tensor(shape: [batch.count, crop, crop, channels], data: data)
    }
}
