import NICBasics
import Flow
import Foundation
import Neural
import Slides

/// Trains a patch encoder, or packages a weight-free encoder (mean-RGB, the floor), as a `Model`.
/// The node builds the encoder and hands it to one training mode (`EncoderTrainingMode`), chosen by
/// `training`: supervised multi-task learning (the MTL-NIC method, `SupervisedTraining`), or
/// unsupervised as a BiGAN, a VAE or by contrast. Each mode declares the params only it reads as a
/// group; in YAML they stay flat beside the shared ones, and `nic validate` refuses another mode's.
public struct EncoderNode: NodeType {
    public static let name = "encoder"
    public static let version = 3
    public static let summary = "Trains a patch encoder by supervised multi-task learning (or packages mean-RGB) as a Model."
    public static let inputs = [PortSpec("patches", .patchSet, doc: "training patches with task labels (e.g. tile_sampler → augmenter)")]
    public static let outputs = [PortSpec("model", .model, doc: "model.json, encoder.yaml/.safetensors, heads, curves.csv")]
    public enum Training: String, ParamChoice { case supervised, bigan, vae, contrastive, none }

    public struct Params: NodeParams {
        @Param(doc: "encoder architecture, e.g. nodes/encoders/nic-encoder.yaml", schema: Architecture.self) var architecture: Reference
        @Param(doc: "supervised: multi-task training on the PatchSet's tasks; bigan, vae, contrastive: unsupervised; none: weight-free encoders (mean-RGB)")
        var training = Training.supervised
        @ParamGroup(when: "training", is: Training.supervised.rawValue) var supervised = SupervisedTraining.Params()
        @ParamGroup(when: "training", is: Training.bigan.rawValue) var bigan = BiGANTraining.Params()
        @ParamGroup(when: "training", is: Training.vae.rawValue) var vae = VAETraining.Params()
        @ParamGroup(when: "training", is: Training.contrastive.rawValue) var contrastive = ContrastiveTraining.Params()
        @Param(doc: "the most epochs to train (with early stopping, a cap)", .within(1, 100_000), readWhen: Training.trained())
        var epochs = 8
        @Param(doc: "stop after this many epochs without a better validation loss, keeping the best epoch (0: train every epoch)", .atLeast(0),
               readWhen: Training.trained(except: [.bigan: BiGANTraining.Ignored.earlyStopping]))
        var earlyStopping = 0
        @Param(doc: "patches per step (batch norm needs 2)", .within(2, 65536), readWhen: Training.trained()) var batchSize = 64
        @Param(doc: "Adam learning rate", .positive, readWhen: Training.trained()) var learningRate = 1e-3
        @Param(doc: "L2 weight decay", .atLeast(0), readWhen: Training.trained(except: [.bigan: BiGANTraining.Ignored.weightDecay]))
        var weightDecay = 0.0
        @Param(doc: "fraction of slides (supervised) or patches (vae, contrastive) held out for validation", .within(0, 0.9),
               readWhen: Training.trained(except: [.bigan: BiGANTraining.Ignored.validation]))
        var validation = 0.2
        @Param(doc: "epochs without validation improvement before the learning rate ÷10", .atLeast(1),
               readWhen: Training.trained(except: [.bigan: BiGANTraining.Ignored.plateau]))
        var patience = 2
        @Param(doc: "floor of the plateau schedule", .atLeast(0), readWhen: Training.trained(except: [.bigan: BiGANTraining.Ignored.plateau]))
        var minLearningRate = 1e-5
        @Param(doc: "box-average factor from patch to network input; default: patch size ÷ the architecture's input size (2 for nic-encoder.yaml's 64 px, 1 for nic-encoder-128.yaml)", .within(1, 64))
        var downsample: Int? = nil
        @Param(doc: "initialisation, shuffling and augmentation seed", readWhen: Training.trained()) var seed = 0
        @Param(doc: "patches in the shuffle buffer: training reads chunks of 256 patches in a seeded order and draws batches from a window of this many decoded patches (memory ≈ this × a patch; at least the patch count shuffles uniformly)", .within(1, 16_777_216),
               readWhen: Training.trained())
        var shuffleBuffer = 4096
        public init() {}
    }

    public init() {}

    public static func problems(_ params: Params) -> [ParamProblem] {
        params.training == .supervised ? SupervisedTraining.problems(params.supervised) : []
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
        let out = try context.output("model")
        try params.architecture.write(to: out.appendingPathComponent("encoder.yaml"))

        var info = EncoderModel.Info(training: params.training.rawValue, patchSize: patchSet.info.size, downsample: downsample,
                                     input: [side, side, 3], codeSize: encoder.outputShape.reduce(1, *), tasks: [], bestEpoch: nil,
                                     epochs: 0, trainPatches: 0, validationPatches: 0, codeFrom: nil)
        info.mpp = patchSet.info.mpp
        let setup = EncoderTrainingSetup(context: context, params: params, patchSet: patchSet, encoder: encoder, info: info, out: out,
                                         seed: seed, started: started)
        switch params.training {
        case .none:
            guard encoder.parameters.isEmpty else {
                throw NodeError("training 'none' is for weight-free encoders such as mean-RGB; \(architectureURL.lastPathComponent) has \(encoder.parameterCount) weights")
            }
            try Self.writeInfo(info, to: out)
        case .supervised: try SupervisedTraining(setup, params.supervised).train()
        case .bigan: try BiGANTraining(setup, params.bigan).train()
        case .vae: try VAETraining(setup, params.vae).train()
        case .contrastive: try ContrastiveTraining(setup, params.contrastive).train()
        }
    }

    /// Why `training: none` ignores the params of training (`nic validate` refuses them with it).
    static let untrained = "it trains nothing (a weight-free encoder such as mean-RGB has nothing to initialise, shuffle or fit)"

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
}

extension EncoderNode.Training {
    /// A shared param that every mode that trains reads but `others` (each with why it ignores the
    /// param); `none` trains nothing.
    static func trained(except others: [Self: String] = [:]) -> ParamCondition {
        ParamCondition(param: "training", ignoredBy: others.merging([Self.none: EncoderNode.untrained]) { own, _ in own })
    }
}
