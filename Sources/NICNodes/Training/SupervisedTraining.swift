import NICBasics
import Flow
import Foundation
import Neural
import Slides
import Stats
import Yams

/// Supervised multi-task encoder training (the MTL-NIC method): one shared trunk (the encoder), one
/// head per task (`tasks`: task → head name in `heads_dir`, or `{head, weight}`); the loss is the
/// weighted sum of the per-task losses, where a patch without a label for a task simply does not
/// count for that task. Patches are freshly augmented every epoch when the PatchSet comes through an
/// `augmenter`. A part of the slides (`validation`) is held out; the learning rate drops on a
/// validation plateau and the best epoch's weights are kept.
final class SupervisedTraining: EncoderTrainingMode {
    struct Params: NodeParams {
        @Param(doc: "task → head name (or {head, weight}); default: every task of the PatchSet, classification/regression heads", schema: EncoderTasks.self)
        var tasks: ParamValue = .null
        @Param(doc: "folder of head definitions; the heads are read from it once, when the node is keyed") var headsDir: DefinitionFolder? = DefinitionFolder("nodes/heads")
        @Param(doc: "what early stopping, the plateau and the best epoch watch. sum: the weighted sum of the tasks' validation losses. each_task: each task's validation loss on its own; training goes on (at its learning rate) while any task still improves, so a one-epoch spike in one task's loss cannot end or slow the training of the others, and the best epoch has the lowest mean of the tasks' losses, each relative to its first epoch", .unkeyedAtDefault)
        var monitor = Monitor.sum
        init() {}
    }

    enum Monitor: String, ParamChoice {
        case sum
        case eachTask = "each_task"
    }

    struct Task {
        var info: EncoderModel.TaskInfo
        var network: Network
        var loss: LossSpec
        var targets: [Float]  // per patch; NaN = missing (class index for classification)
        /// The head file as read once, for the model folder's copy.
        var headText: String
    }

    let setup: EncoderTrainingSetup
    let monitor: Monitor
    let encoder: Network
    let codeShape: [Int]
    let codeSize: Int
    var tasks: [Task]

    init(_ setup: EncoderTrainingSetup, _ params: Params) throws {
        self.setup = setup
        monitor = params.monitor
        encoder = setup.encoder
        codeShape = encoder.outputShape
        codeSize = codeShape.reduce(1, *)
        tasks = try Self.makeTasks(params, patchSet: setup.patchSet, codeSize: codeSize, seed: setup.seed)
        guard !tasks.isEmpty else { throw NodeError("no tasks to train: the PatchSet has none and param 'tasks' names none") }
    }

    /// Holds out whole slides, so validation measures generalisation to unseen slides.
    func split() -> (train: [Int], validation: [Int], validationSlides: Set<String>) {
        let records = setup.patchSet.records
        let slides = Array(Set(records.map(\.slide))).sorted()
        var rng = Xoshiro256StarStar(seed: SeedStream(setup.seed).derive(.supervisedValidation))
        let order = rng.permutation(slides.count).map { slides[$0] }
        let held = slides.count >= 2 ? max(1, Int((Double(slides.count) * setup.params.validation).rounded())) : 0
        let validationSlides = Set(order.prefix(min(held, slides.count - 1)))
        return (records.indices.filter { !validationSlides.contains(records[$0].slide) },
                records.indices.filter { validationSlides.contains(records[$0].slide) }, validationSlides)
    }

    /// Regression targets standardised on the training patches (the mean and spread go to model.json).
    func standardiseRegressionTargets(on trainIndices: [Int]) {
        for t in tasks.indices where tasks[t].info.kind == "regression" {
            let values = trainIndices.map { tasks[t].targets[$0] }.filter { !$0.isNaN }.map(Double.init)
            let mean = values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count)
            let variance = values.isEmpty ? 1 : values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, values.count - 1))
            let std = max(variance.squareRoot(), 1e-6)
            tasks[t].info.mean = mean
            tasks[t].info.std = std
            tasks[t].targets = tasks[t].targets.map { $0.isNaN ? .nan : Float((Double($0) - mean) / std) }
        }
    }

    /// What the forward pass keeps for the backward one: each task's loss on the batch.
    struct Forward {
        var losses: [LossResult]
    }

    /// x → encoder → code → every head; each head's loss on the batch's labels (a patch without a
    /// label for a task does not count for it).
    func forward(_ x: Tensor, batch: [Int]) throws -> Forward {
        let code = try encoder.forward(x, training: true).reshaped([batch.count, codeSize])
        return Forward(losses: try tasks.map { task in try Self.loss(task, output: try task.network.forward(code, training: true), indices: batch) })
    }

    /// Each head's loss gradient, weighted by its task's weight, back to the code (summed over heads
    /// in task order), then the code's gradient back through the encoder.
    func backward(_ forward: Forward, batch: [Int]) throws {
        var dCode = Tensor(zeros: [batch.count, codeSize])
        for (task, loss) in zip(tasks, forward.losses) {
            let weight = Float(task.info.weight)
            let grads = try task.network.backward(Tensor(shape: loss.gradient.shape, data: loss.gradient.data.map { $0 * weight }))
            for k in 0..<dCode.count { dCode.data[k] += grads[0].data[k] }
        }
        try encoder.backward(dCode.reshaped([batch.count] + codeShape))
    }

    /// A training step's loss (the weighted sum) and each task's, for the curves.
    func result(_ forward: Forward) -> StepResult {
        var stepLoss = 0.0
        for (task, loss) in zip(tasks, forward.losses) { stepLoss += task.info.weight * loss.value }
        return StepResult(loss: stepLoss, metrics: zip(tasks, forward.losses).map { ("\($0.info.name)_train_loss", $1.value) })
    }

    func train() throws {
        let (context, params) = (setup.context, setup.params)
        var info = setup.info
        let (trainIndices, validationIndices, validationSlides) = split()
        info.trainPatches = trainIndices.count
        info.validationPatches = validationIndices.count
        standardiseRegressionTargets(on: trainIndices)

        let inputs = try setup.inputs()
        let parameters = encoder.parameters + tasks.flatMap(\.network.parameters)
        let optimizer = Adam(learningRate: Float(params.learningRate), weightDecay: Float(params.weightDecay))
        var schedule = params.schedule
        schedule.monitor = monitor == .eachTask ? .eachPart : .total
        let trainer = Trainer.encoder(schedule: schedule, update: .optimizer(optimizer, parameters: parameters), context: context)
        let outcome = try trainer.fit(
            order: inputs.order(trainIndices),
            prefetch: { epoch, batches in inputs.prefetch(epoch: epoch, batches: batches) },
            step: { batch, _ in try inputs.step(batch) { x in
                let pass = try self.forward(x, batch: batch)
                try self.backward(pass, batch: batch)
                return self.result(pass)
            } },
            validate: { _ in
                let validation = try self.evaluate(inputs: inputs, indices: validationIndices.isEmpty ? trainIndices : validationIndices)
                var metrics: [(String, Double)] = []
                for t in self.tasks.indices {
                    metrics.append(("\(self.tasks[t].info.name)_loss", validation.perTask[t].loss))
                    metrics += validation.perTask[t].scores.map { ("\(self.tasks[t].info.name)_\($0.0)", $0.1) }
                }
                return ValidationResult(loss: validation.loss, metrics: metrics, parts: validation.perTask.map(\.loss))
            },
            snapshot: { (encoder: self.encoder.stateDict(), heads: self.tasks.flatMap { $0.network.stateDict() }) })
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
        try EncoderNode.writeTrained(outcome, info: info, time: inputs.time, context: context, weights: { [("encoder.safetensors", $0.encoder), ("heads.safetensors", $0.heads)] },
                                     definitions: tasks.map { ($0.headText, "heads/\($0.info.name).yaml") }, to: setup.out)
    }

    /// Found at `nic validate`: a head file of `heads_dir` that is not a head (every one is checked: the
    /// folder is keyed, and a task without a named head gets one from it by the PatchSet's task kinds,
    /// known only when the node runs), and a head named in `tasks` that the folder does not hold.
    static func problems(_ params: Params) -> [ParamProblem] {
        guard let headsDir = params.headsDir else { return [] }
        var found: [ParamProblem] = []
        let cwd = FileManager.default.currentDirectoryPath + "/"
        for (relative, text) in headsDir.files.sorted(by: { $0.key < $1.key }) where relative.hasSuffix(".yaml") || relative.hasSuffix(".yml") {
            let path = headsDir.url.appendingPathComponent(relative).path
            let shown = path.hasPrefix(cwd) ? String(path.dropFirst(cwd.count)) : path
            do {
                guard let node = try Yams.compose(yaml: text) else {
                    found.append(ParamProblem("heads_dir", "\(shown) is empty; a head needs 'layers' and 'loss'"))
                    continue
                }
                found += HeadFile.problems(in: node, file: shown).map { ParamProblem("heads_dir", $0.message, at: $0.location) }
            } catch {
                found.append(ParamProblem("heads_dir", "\(shown) is not valid YAML: \(error)"))
            }
        }
        for request in (try? EncoderTasks.decode(params.tasks, file: "param 'tasks'").requests ?? []) ?? [] {
            guard let head = request.head else { continue }
            do { _ = try Heads.definition(head, task: request.task, in: headsDir) }
            catch { found.append(ParamProblem("tasks", "\(error)")) }
        }
        return found
    }

    /// The tasks to train, with their heads built for the right number of outputs.
    static func makeTasks(_ params: Params, patchSet: PatchSet, codeSize: Int, seed: UInt64) throws -> [Task] {
        guard let headsDir = params.headsDir else {
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
            let file: String, headText: String
            do { (file, headText) = try Heads.definition(head, task: name, in: headsDir) }
            catch let error as NodeError { throw NodeError("param 'tasks': \(error.message)") }
            let outputs = kind == "classification" ? classes.count : 1
            let architecture = try Heads.architecture(text: headText, file: file, outputs: outputs)
            let loss = try LossSpec(architecture)
            switch (kind, loss) {
            case ("regression", .meanSquaredError), ("binary", .binaryCrossEntropy), ("classification", .softmaxCrossEntropy): break
            default: throw NodeError("param 'tasks': head '\(head)' (\(loss)) does not fit \(kind) task '\(name)'")
            }
            let network = try architecture.build(seed: SeedStream(seed).derive(.taskHead, index), inputShapes: [[codeSize]], prefix: "heads.\(name)")
            tasks.append(Task(info: .init(name: name, kind: kind, classes: patchTask.classes, head: file, weight: weight, mean: nil, std: nil),
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
    func evaluate(inputs: EncoderInputs, indices unordered: [Int]) throws -> Evaluation {
        // The loader reads in ascending order (each chunk once); the scores do not depend on the order.
        let indices = unordered.sorted()
        var outputs = tasks.map { _ in [Float]() }
        try inputs.validate(indices, { batch, x in
            try setup.context.checkCancellation()
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
