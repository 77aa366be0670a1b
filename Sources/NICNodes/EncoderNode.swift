import NICBasics
import Flow
import Foundation
import Neural
import Slides
import Stats

/// Trains a patch encoder on patch-level tasks (supervised multi-task learning, the MTL-NIC method),
/// or packages a weight-free encoder (mean-RGB, the floor), as a `Model`.
///
/// Multi-task training: one shared trunk (`architecture`), one head per task (`tasks`: task → head
/// name in `heads_dir`, or `{head, weight}`); the loss is the weighted sum of the per-task losses,
/// where a patch without a label for a task simply does not count for that task. Patches are freshly
/// augmented every epoch when the PatchSet comes through an `augmenter`. A part of the slides
/// (`validation`) is held out; the learning rate drops on a validation plateau and the best epoch's
/// weights are kept.
public struct EncoderNode: NodeType {
    public static let name = "encoder"
    public static let version = 3
    public static let summary = "Trains a patch encoder by supervised multi-task learning (or packages mean-RGB) as a Model."
    public static let inputs = [PortSpec("patches", .patchSet, doc: "training patches with task labels (e.g. tile_sampler → augmenter)")]
    public static let outputs = [PortSpec("model", .model, doc: "model.json, encoder.yaml/.safetensors, heads, curves.csv")]
    public enum Training: String, ParamChoice { case supervised, bigan, vae, contrastive, none }

    public struct Params: NodeParams {
        @Param(doc: "encoder architecture, e.g. nodes/encoders/nic-encoder.yaml", schema: ArchitectureFile.self) var architecture: Reference
        @Param(doc: "supervised: multi-task training on the PatchSet's tasks; bigan, vae, contrastive: unsupervised; none: weight-free encoders (mean-RGB)")
        var training = Training.supervised
        @Param(doc: "bigan: the generator", schema: ArchitectureFile.self) var generator: Reference? = Reference("nodes/bigan/generator.yaml")
        @Param(doc: "bigan: the discriminator", schema: ArchitectureFile.self) var discriminator: Reference? = Reference("nodes/bigan/discriminator.yaml")
        @Param(doc: "contrastive: the pair head", schema: ArchitectureFile.self) var contrastiveHead: Reference? = Reference("nodes/encoders/contrastive-head.yaml")
        @Param(doc: "vae: the decoder architecture", schema: ArchitectureFile.self) var decoder: Reference? = Reference("nodes/vae/decoder.yaml")
        @Param(doc: "vae: weight γ of the KL term", .atLeast(0)) var klWeight = 5e-5
        @Param(doc: "bigan: one-sided label smoothing ε (the discriminator aims at 1 − ε for real pairs)", .within(0, 0.5))
        var labelSmoothing = 0.1
        @Param(doc: "bigan: generator and encoder updates per discriminator update (the D/G ratio; 2 or more slows a discriminator that wins early)", .within(1, 10))
        var generatorSteps = 1
        @Param(doc: "task → head name (or {head, weight}); default: every task of the PatchSet, classification/regression heads", schema: EncoderTasks.self)
        var tasks: ParamValue = .null
        @Param(doc: "folder of head definitions") var headsDir: DirectoryParam? = DirectoryParam("nodes/heads")
        @Param(doc: "the most epochs to train (with early stopping, a cap)", .within(1, 100_000)) var epochs = 8
        @Param(doc: "stop after this many epochs without a better validation loss, keeping the best epoch (0: train every epoch)", .atLeast(0))
        var earlyStopping = 0
        @Param(doc: "patches per step (batch norm needs 2)", .within(2, 65536)) var batchSize = 64
        @Param(doc: "Adam learning rate", .positive) var learningRate = 1e-3
        @Param(doc: "L2 weight decay", .atLeast(0)) var weightDecay = 0.0
        @Param(doc: "fraction of slides held out for validation", .within(0, 0.9)) var validation = 0.2
        @Param(doc: "epochs without validation improvement before the learning rate ÷10", .atLeast(1)) var patience = 2
        @Param(doc: "floor of the plateau schedule", .atLeast(0)) var minLearningRate = 1e-5
        @Param(doc: "box-average factor from patch to network input; default: patch size ÷ the architecture's input size (2 for nic-encoder.yaml's 64 px, 1 for nic-encoder-128.yaml)", .within(1, 64))
        var downsample: Int? = nil
        @Param(doc: "initialisation, shuffling and augmentation seed") var seed = 0
        @Param(doc: "patches in the shuffle buffer: training reads chunks of 256 patches in a seeded order and draws batches from a window of this many decoded patches (memory ≈ this × a patch; at least the patch count shuffles uniformly)", .within(1, 16_777_216))
        var shuffleBuffer = 4096
        public init() {}
    }

    public init() {}

    struct Task {
        var info: EncoderModel.TaskInfo
        var network: Network
        var loss: LossSpec
        var targets: [Float]  // per patch; NaN = missing (class index for classification)
        /// The head file as read once, for the model folder's copy.
        var headText: String
    }

    public func run(_ context: NodeContext, _ params: Params) throws {
        let started = Stopwatch()
        let patchSet = try PatchSet(folder: try context.input("patches"))
        let architectureURL = params.architecture.url
        let architecture = try Architecture(params.architecture)
        let downsample = try Self.downsample(params.downsample, patch: patchSet.info.size, architecture: architecture, file: architectureURL.lastPathComponent)
        let side = patchSet.info.size / downsample
        let seed = UInt64(truncatingIfNeeded: params.seed)
        let encoder = try architecture.build(seed: seed, inputShapes: [[side, side, 3]], prefix: "encoder")
        let codeShape = encoder.outputShape
        let codeSize = codeShape.reduce(1, *)
        let out = try context.output("model")
        try params.architecture.write(to: out.appendingPathComponent("encoder.yaml"))

        let training = params.training.rawValue
        var info = EncoderModel.Info(training: training, patchSize: patchSet.info.size, downsample: downsample,
                                     input: [side, side, 3], codeSize: codeSize, tasks: [], bestEpoch: nil,
                                     epochs: 0, trainPatches: 0, validationPatches: 0, codeFrom: nil)
        info.mpp = patchSet.info.mpp
        if training == "none" {
            guard encoder.parameters.isEmpty else {
                throw NodeError("training 'none' is for weight-free encoders such as mean-RGB; \(architectureURL.lastPathComponent) has \(encoder.parameterCount) weights")
            }
            try write(info, to: out)
            return
        }
        if training == "vae" {
            return try VAETraining.run(context, params, patchSet: patchSet, encoder: encoder, info: info, out: out, seed: seed, started: started)
        }
        if training == "bigan" {
            return try BiGANTraining.run(context, params, patchSet: patchSet, encoder: encoder, info: info, out: out, seed: seed, started: started)
        }
        if training == "contrastive" {
            return try ContrastiveTraining.run(context, params, patchSet: patchSet, encoder: encoder, info: info, out: out, seed: seed, started: started)
        }
        var tasks = try makeTasks(params, patchSet: patchSet, codeSize: codeSize, seed: seed)
        guard !tasks.isEmpty else { throw NodeError("no tasks to train: the PatchSet has none and param 'tasks' names none") }

        // Hold out whole slides, so validation measures generalisation to unseen slides.
        let slides = Array(Set(patchSet.records.map(\.slide))).sorted()
        var rng = Xoshiro256StarStar(seed: seed ^ 0x5EED)
        let order = rng.permutation(slides.count).map { slides[$0] }
        let held = slides.count >= 2 ? max(1, Int((Double(slides.count) * params.validation).rounded())) : 0
        let validationSlides = Set(order.prefix(min(held, slides.count - 1)))
        let trainIndices = patchSet.records.indices.filter { !validationSlides.contains(patchSet.records[$0].slide) }
        let validationIndices = patchSet.records.indices.filter { validationSlides.contains(patchSet.records[$0].slide) }
        info.trainPatches = trainIndices.count
        info.validationPatches = validationIndices.count

        // Regression targets are standardised on the training patches.
        for t in tasks.indices where tasks[t].info.kind == "regression" {
            let values = trainIndices.map { tasks[t].targets[$0] }.filter { !$0.isNaN }.map(Double.init)
            let mean = values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
            let variance = values.isEmpty ? 1 : values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, values.count - 1))
            let std = max(variance.squareRoot(), 1e-6)
            tasks[t].info.mean = mean
            tasks[t].info.std = std
            tasks[t].targets = tasks[t].targets.map { $0.isNaN ? .nan : Float((Double($0) - mean) / std) }
        }

        let inputs = try EncoderInputs(patchSet: patchSet, downsample: downsample, params: params, context: context, started: started)
        let parameters = encoder.parameters + tasks.flatMap(\.network.parameters)
        let optimizer = Adam(learningRate: Float(params.learningRate), weightDecay: Float(params.weightDecay))
        let trainer = Trainer.encoder(schedule: params.schedule, update: .optimizer(optimizer, parameters: parameters), context: context)
        let outcome = try trainer.fit(
            order: inputs.order(trainIndices),
            prefetch: { epoch, batches in inputs.prefetch(epoch: epoch, batches: batches) },
            step: { batch, _ in try inputs.step(batch) { x in
                let code = try encoder.forward(x, training: true).reshaped([batch.count, codeSize])
                var dCode = Tensor(zeros: [batch.count, codeSize])
                var stepLoss = 0.0
                var perTask: [(String, Double)] = []
                for t in tasks.indices {
                    let output = try tasks[t].network.forward(code, training: true)
                    let result = try Self.loss(tasks[t], output: output, indices: batch)
                    let weight = Float(tasks[t].info.weight)
                    let grads = try tasks[t].network.backward(Tensor(shape: result.gradient.shape, data: result.gradient.data.map { $0 * weight }))
                    for k in 0..<dCode.count { dCode.data[k] += grads[0].data[k] }
                    perTask.append(("\(tasks[t].info.name)_train_loss", result.value))
                    stepLoss += tasks[t].info.weight * result.value
                }
                try encoder.backward(dCode.reshaped([batch.count] + codeShape))
                return StepResult(loss: stepLoss, metrics: perTask)
            } },
            validate: { _ in
                let validation = try evaluate(encoder: encoder, tasks: tasks, inputs: inputs, indices: validationIndices.isEmpty ? trainIndices : validationIndices,
                                              codeSize: codeSize, context: context)
                var metrics: [(String, Double)] = []
                for t in tasks.indices {
                    metrics.append(("\(tasks[t].info.name)_loss", validation.perTask[t].loss))
                    metrics += validation.perTask[t].scores.map { ("\(tasks[t].info.name)_\($0.0)", $0.1) }
                }
                return ValidationResult(loss: validation.loss, metrics: metrics)
            },
            snapshot: { (encoder: encoder.stateDict(), heads: tasks.flatMap { $0.network.stateDict() }) })
        if let best = outcome.best, let validation = outcome.epochs[best.epoch - 1].validation {
            for t in tasks.indices {
                let prefix = tasks[t].info.name + "_"
                let scores = Dictionary(validation.metrics.filter { $0.0.hasPrefix(prefix) }.map { (String($0.0.dropFirst(prefix.count)), $0.1) },
                                        uniquingKeysWith: { a, _ in a })
                tasks[t].info.validation = scores.mapValues { $0.isFinite ? $0 : nil }
                let missing = scores.filter { !$0.value.isFinite }.mapValues { _ in
                    "not computable on the \(info.validationPatches) validation patches of \(validationSlides.count) held-out slide(s) (one class only, or constant values); raise 'validation' or add slides"
                }
                tasks[t].info.unavailable = missing.isEmpty ? nil : missing
                for (name, _) in missing.sorted(by: { $0.key < $1.key }) {
                    context.logger.warning("task '\(tasks[t].info.name)': validation \(name) not computable (one class or constant values among \(info.validationPatches) validation patches); written as null")
                }
            }
        }
        info.tasks = tasks.map(\.info)
        try Self.writeTrained(outcome, info: info, time: inputs.time, context: context, weights: { [("encoder.safetensors", $0.encoder), ("heads.safetensors", $0.heads)] },
                              definitions: tasks.map { ($0.headText, "heads/\($0.info.name).yaml") }, to: out)
    }

    func write(_ info: EncoderModel.Info, to out: URL) throws { try Self.writeInfo(info, to: out) }

    /// The patch → input factor: given, or what makes the patch fit the architecture's declared input.
    static func downsample(_ given: Int?, patch: Int, architecture: Architecture, file: String) throws -> Int {
        let input = architecture.inputs.first?.shape?.first
        guard let factor = given ?? input.map({ max(1, patch / max(1, $0)) }) else { return 1 }
        guard patch % factor == 0 else {
            throw NodeError("param 'downsample': \(factor) does not divide the patch size \(patch)")
        }
        if let input, patch / factor != input {
            throw NodeError("\(file) takes \(input) px inputs, but \(patch) px patches ÷ downsample \(factor) give \(patch / factor) px; set 'downsample' to \(patch / input) or use an architecture for \(patch / factor) px")
        }
        return factor
    }

    /// A training snapshot (`Network.stateDict()`) as a PyTorch-layout safetensors file.
    static func writeWeights(_ state: [(String, Safetensors.Value)], to url: URL) throws {
        try Safetensors.write(state, metadata: ["format": "pt", "layout": "pytorch"], to: url)
    }

    static func writeInfo(_ info: EncoderModel.Info, to out: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(info).write(to: out.appendingPathComponent("model.json"))
    }

    /// The tasks to train, with their heads built for the right number of outputs.
    func makeTasks(_ params: Params, patchSet: PatchSet, codeSize: Int, seed: UInt64) throws -> [Task] {
        guard let headsDir = params.headsDir?.url else {
            throw NodeError("param 'heads_dir': no folder of head definitions (the default nodes/heads does not exist here); give the param")
        }
        let requested: [(String, String?, Double)] = try EncoderTasks.decode(params.tasks, file: "param 'tasks'").requests?.map { ($0.task, $0.head, $0.weight) }
            ?? patchSet.info.tasks.map { ($0.name, nil, 1) }
        var tasks: [Task] = []
        for (index, (name, headName, weight)) in requested.enumerated() {
            guard let patchTask = patchSet.info.tasks.first(where: { $0.name == name }) else {
                throw NodeError("param 'tasks': the PatchSet has no task '\(name)'; it has \(patchSet.info.tasks.map(\.name).joined(separator: ", "))")
            }
            let classes = patchTask.classes ?? []
            let kind: String
            switch patchTask.kind {
            case .regression: kind = "regression"
            case .classification: kind = classes.count == 2 && headName == "binary" ? "binary" : "classification"
            }
            let head = headName ?? (kind == "regression" ? "regression" : "classification")
            let file = Heads.file(head, directory: headsDir)
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw NodeError("param 'tasks': head '\(head)' for task '\(name)' not found (\(file.path))")
            }
            let outputs = kind == "classification" ? classes.count : 1
            let headText = try Heads.text(file)
            let architecture = try Heads.architecture(text: headText, file: file.path, outputs: outputs)
            let loss = try LossSpec(architecture)
            switch (kind, loss) {
            case ("regression", .meanSquaredError), ("binary", .binaryCrossEntropy), ("classification", .softmaxCrossEntropy): break
            default: throw NodeError("param 'tasks': head '\(head)' (\(loss)) does not fit \(kind) task '\(name)'")
            }
            let network = try architecture.build(seed: seed &+ UInt64(index + 1) &* 7919, inputShapes: [[codeSize]], prefix: "heads.\(name)")
            tasks.append(Task(info: .init(name: name, kind: kind, classes: patchTask.classes, head: file.path, weight: weight, mean: nil, std: nil),
                              network: network, loss: loss, targets: try patchSet.labels(name), headText: headText))
        }
        return tasks
    }

    static func loss(_ task: Task, output: Tensor, indices: [Int]) throws -> LossResult {
        let targets = indices.map { task.targets[$0] }
        switch task.loss {
        case .meanSquaredError:
            return try Loss.meanSquaredError(output, targets)
        case .binaryCrossEntropy(let positiveWeight):
            return try Loss.binaryCrossEntropy(logits: output, targets: targets, positiveWeight: positiveWeight)
        case .softmaxCrossEntropy(let weights):
            return try Loss.softmaxCrossEntropy(logits: output, labels: targets.map { $0.isNaN ? -1 : Int($0) }, classWeights: weights)
        case .cox:
            throw NodeError("a Cox head does not fit a patch task")
        }
    }

    struct Evaluation {
        var loss: Double
        /// Per task, in order: its loss and its scores (accuracy and AUC for classification, R² for regression).
        var perTask: [(loss: Double, scores: [(String, Double)])]
    }

    /// Validation loss (sum of weighted task losses) and per task its loss and scores: accuracy and
    /// AUC (macro one-vs-rest over classes) for classification, R² (on the standardised targets) for
    /// regression. Unlabelled patches of a task (NaN) take no part in its scores.
    func evaluate(encoder: Network, tasks: [Task], inputs: EncoderInputs, indices unordered: [Int], codeSize: Int,
                  context: NodeContext) throws -> Evaluation {
        // The loader reads in ascending order (each chunk once); the scores do not depend on the order.
        let indices = unordered.sorted()
        var outputs = tasks.map { _ in [Float]() }
        try inputs.validate(indices, { batch, x in
            try context.checkCancellation()
            let code = try encoder.forward(x, training: false).reshaped([batch.count, codeSize])
            for t in tasks.indices { outputs[t] += try tasks[t].network.forward(code, training: false).data }
        }, result: {})
        var perTask: [(loss: Double, scores: [(String, Double)])] = []
        var total = 0.0
        for t in tasks.indices {
            let width = outputs[t].count / max(1, indices.count)
            let output = Tensor(shape: [indices.count, width], data: outputs[t])
            let loss = try Self.loss(tasks[t], output: output, indices: indices).value
            total += tasks[t].info.weight * loss
            let targets = indices.map { tasks[t].targets[$0] }
            let labelled = targets.indices.filter { !targets[$0].isNaN }
            let rows = labelled.map { i in (0..<width).map { Double(outputs[t][i * width + $0]) } }
            let truth = labelled.map { Double(targets[$0]) }
            perTask.append((loss, Self.scores(kind: tasks[t].info.kind, rows: rows, truth: truth)))
        }
        return Evaluation(loss: total, perTask: perTask)
    }

    /// A task's validation scores from its output rows and labels (class index, 0/1, or value).
    static func scores(kind: String, rows: [[Double]], truth: [Double]) -> [(String, Double)] {
        guard !rows.isEmpty else { return kind == "regression" ? [("r2", .nan)] : [("accuracy", .nan), ("auc", .nan)] }
        switch kind {
        case "regression":
            let mean = truth.reduce(0, +) / Double(truth.count)
            let total = truth.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
            let residual = zip(rows, truth).reduce(0) { $0 + ($1.0[0] - $1.1) * ($1.0[0] - $1.1) }
            return [("r2", total > 0 ? 1 - residual / total : .nan)]
        case "binary":
            let positive = truth.map { $0 > 0.5 }
            let accuracy = Double(zip(rows, positive).filter { ($0.0[0] > 0) == $0.1 }.count) / Double(rows.count)
            return [("accuracy", accuracy), ("auc", ROC.auc(labels: positive, scores: rows.map { $0[0] }) ?? .nan)]
        default:
            let labels = truth.map { Int($0) }
            let predicted = rows.map { row in row.indices.max { row[$0] < row[$1] }! }
            let accuracy = Double(zip(predicted, labels).filter { $0 == $1 }.count) / Double(rows.count)
            let probabilities = rows.map { row -> [Double] in
                let m = row.max()!, e = row.map { exp($0 - m) }, s = e.reduce(0, +)  // invariant: a row has one score per class (at least 2)
                return e.map { $0 / s }
            }
            return [("accuracy", accuracy), ("auc", ROC.macroAUC(labels: labels, probabilities: probabilities) ?? .nan)]
        }
    }
}
