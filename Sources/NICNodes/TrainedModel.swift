import Flow
import Foundation
import Neural
import Stats

public extension PortType {
    /// A patient model kept for other cohorts: `model.json` (the card) and the weights of its members
    /// (see `TrainedModel`).
    static let trainedModel: PortType = "TrainedModel"
}

/// How a network's output row becomes a prediction: P(positive), class probabilities, the label's
/// scale (regression targets train standardised) or the Cox risk. Training and `apply` share it, so
/// a kept model predicts exactly what its fold predicted out of fold.
struct OutputMapping: Codable, Equatable {
    var task: Predictions.Task
    var targetMean: Double
    var targetStd: Double
    /// The head's outputs that are the prediction (nil: all); an auxiliary target's output after them
    /// only trained the embedding (a multi-task head).
    var outputs: Int? = nil

    enum CodingKeys: String, CodingKey { case task, targetMean = "target_mean", targetStd = "target_std", outputs }

    func prediction(_ row: [Double]) -> [Double] {
        let row = outputs.map { Array(row.prefix($0)) } ?? row
        switch task {
        case .binary: return [1 / (1 + exp(-row[0]))]
        case .multiclass:
            guard let m = row.max() else { return row }
            let e = row.map { exp($0 - m) }, s = e.reduce(0, +)
            return e.map { $0 / s }
        case .regression: return [row[0] * targetStd + targetMean]
        case .survival: return row
        }
    }
}

/// The model a `patient_model` or `probe` node keeps besides its out-of-fold predictions: the k fold
/// models as an ensemble whose prediction is the mean of its members' predictions (probabilities,
/// regression values or Cox risks), as CLAM and most challenge entries do. A member is exactly the
/// model that predicted its fold's patients out of fold, so the kept model carries a measured
/// performance (the out-of-fold metrics), which a refit on every patient would not have.
///
/// ```
/// model.json              the card (`TrainedModel.Card`): kind, architecture, head, target and classes,
///                         code standardisation, the encoder the grids came from, the training cohort,
///                         out-of-fold metrics, and per member its weights file
/// architecture.yaml       the patient architecture (copy; CNN and bag models)
/// head.yaml               the head (copy; its last dense layer's width is set from the task)
/// fold<k>.safetensors     member k's weights, PyTorch layout (`model.*`/`head.*` for the CNN;
///                         `instance.*`, `pool.*`, `after.*`, `head.*` for bag models; for the probe
///                         `linear.weight` [outputs, features] and `linear.bias` on standardised
///                         features plus `standardize.mean`/`standardize.scale`, float64)
/// ```
struct TrainedModel {
    enum Kind: String, Codable { case cnn, bag, probe }

    /// The encoder whose codes the model was trained on: the cache key of the `encoder` input of the
    /// node that made the grids (the compressor), the code width and the patch geometry.
    struct EncoderIdentity: Codable, Equatable {
        /// nil when the grids' maker is unknown (grids not from a cache entry).
        var key: String?
        /// The type of the node that made the grids (compressor, features, …) and its name in its pipeline.
        var gridsMadeBy: String?
        var codeSize: Int
        var patchSize: Int
        var mpp: Double
        enum CodingKeys: String, CodingKey { case key, gridsMadeBy = "grids_made_by", codeSize = "code_size", patchSize = "patch_size", mpp }

        /// The encoder of the grids connected to `port`: for a compressor's grids its `encoder` input.
        /// Grids another node read (patch features of an encoder nic does not know) have no key: only
        /// their code width and geometry are checked.
        static func of(_ gridSet: GridSet, context: NodeContext, port: String) -> EncoderIdentity {
            var identity = EncoderIdentity(key: nil, gridsMadeBy: nil, codeSize: gridSet.info.codeSize, patchSize: gridSet.info.size, mpp: gridSet.info.mpp)
            if let origin = context.inputOrigin(port) {
                identity.gridsMadeBy = "\(origin.type) '\(origin.node)'"
                if let encoder = origin.inputs["encoder"] {
                    identity.key = String(encoder.split(separator: "/").first ?? Substring(encoder))
                }
            }
            return identity
        }

        var description: String {
            "encoder \(key ?? "unknown")\(gridsMadeBy.map { " (grids by \($0))" } ?? "") — code width \(codeSize), \(patchSize) px patches at \(mpp) µm/px"
        }
    }

    struct Member: Codable, Equatable {
        var fold: Int
        var weights: String
        var trainPatients: Int
        /// CNN: the seed of its test crops (with the patient's name, see `PatientModel.predictionSeed`), as a decimal string.
        var predictionSeed: String?
        /// Bag models: per code channel, (code − mean) · scale before the network (the training fold's statistics).
        var codeMean: [Float]?
        var codeScale: [Float]?
        enum CodingKeys: String, CodingKey {
            case fold, weights, trainPatients = "train_patients", predictionSeed = "prediction_seed", codeMean = "code_mean", codeScale = "code_scale"
        }
    }

    struct Cohort: Codable, Equatable {
        /// SHA-256 over the training patients, their slides and labels (sorted), whatever the files' names.
        var fingerprint: String
        var patients: Int
        var slides: Int
        /// Cache key of the grids trained on (nil outside a cache).
        var gridsKey: String?
        enum CodingKeys: String, CodingKey { case fingerprint, patients, slides, gridsKey = "grids_key" }
    }

    struct Card: Codable, Equatable {
        var format = "nic-patient-model"
        var formatVersion = 1
        var kind: Kind
        var combine = "mean of the members' predictions"
        var task: Predictions.Task
        var target: [String]
        var classes: [String]
        var output: OutputMapping
        /// CNN and bag models: the copied architecture and head files, and the source file names.
        var architecture: String?
        var architectureSource: String?
        var head: String?
        var headSource: String?
        /// CNN: crop size and crops per slide and orientation averaged; bag models: one bag per patient or per slide.
        var crop: Int?
        var testCrops: Int?
        var aggregation: String?
        /// Probe: the pooling of codes into a patient's features.
        var pooling: [String]?
        var codeStandardisation: String
        var members: [Member]
        var encoder: EncoderIdentity
        var trainingCohort: Cohort
        /// Out-of-fold metrics of the members on their held-out folds (point estimates).
        var outOfFold: [String: Double]

        enum CodingKeys: String, CodingKey {
            case format, formatVersion = "format_version", kind, combine, task, target, classes, output, architecture
            case architectureSource = "architecture_source", head, headSource = "head_source", crop, testCrops = "test_crops"
            case aggregation, pooling, codeStandardisation = "code_standardisation", members, encoder
            case trainingCohort = "training_cohort", outOfFold = "out_of_fold"
        }
    }

    let folder: URL
    let card: Card

    init(folder: URL) throws {
        self.folder = folder
        let url = folder.appendingPathComponent("model.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw NodeError("\(url.path) is missing: not a trained patient model (connect the 'model' output of a probe or of a patient_model on grids; a patient_model on a 'features' table keeps none)")
        }
        do { card = try JSONDecoder().decode(Card.self, from: Data(contentsOf: url)) }
        catch { throw NodeError("\(url.path): not a readable model card (\(error))") }
        guard card.format == "nic-patient-model", card.formatVersion == 1 else {
            throw NodeError("\(url.path): format '\(card.format)' version \(card.formatVersion); this nic reads nic-patient-model version 1")
        }
        guard !card.members.isEmpty else { throw NodeError("\(url.path): 'members' is empty") }
    }

    func file(_ name: String) -> URL { folder.appendingPathComponent(name) }

    /// Writes the card (pretty, sorted keys, so it diffs and reads well).
    static func write(_ card: Card, to folder: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(card).write(to: folder.appendingPathComponent("model.json"))
    }

    /// Copies a YAML file the model needs into its folder under `name`.
    static func copy(_ source: URL, as name: String, into folder: URL) throws {
        let target = folder.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: target)
        try FileManager.default.copyItem(at: source, to: target)
    }

    /// The training patients' identity: patients, slides and labels, sorted.
    static func cohort(gridSet: GridSet, targets: PatientTargets, context: NodeContext) -> Cohort {
        let known = Set(targets.patients)
        var lines: [String] = []
        for slide in gridSet.slideSet.slides {
            guard let p = slide.labels["patient"], known.contains(p) else { continue }
            lines.append("\(p)\t\(slide.stem)\t\(targets.labels[p]?.joined(separator: "\t") ?? "")")
        }
        lines.sort()
        let key = context.inputOrigin("grids")?.key
        return Cohort(fingerprint: NodeContext.sha256(targets.columns.joined(separator: "\t") + "\n" + lines.joined(separator: "\n")),
                      patients: known.count, slides: lines.count, gridsKey: key)
    }

    /// Point estimates of the task's usual metrics on out-of-fold predictions (nil where undefined).
    static func outOfFoldMetrics(_ predictions: Predictions) -> [String: Double] {
        var out: [String: Double] = [:]
        let all = Array(0..<predictions.count)
        for metric in Evaluator.defaults(predictions.task) where metric != "logrank" {
            if let v = Evaluator.statistic(metric, predictions, all), v.isFinite { out[metric] = v }
        }
        return out
    }
}
