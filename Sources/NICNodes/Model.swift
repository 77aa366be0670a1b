import Flow
import Foundation
import Neural
import Slides

public extension PortType {
    /// A trained patch encoder: `model.json`, `encoder.yaml`, `encoder.safetensors` (PyTorch layout),
    /// task heads, and `curves.csv` (see `EncoderModel`).
    static let model: PortType = "Model"
}

/// A patch encoder as stored in a `Model` port:
///
/// ```
/// model.json            {"training", "patch_size", "downsample", "input": [64,64,3], "code_size", "tasks": [...], "best_epoch", ...}
/// encoder.yaml          the architecture (a copy of the nodes/encoders file used)
/// encoder.safetensors   the encoder's weights, PyTorch layout (absent for weight-free encoders such as mean-RGB)
/// heads/<task>.yaml     each task head's architecture; heads.safetensors: their weights
/// curves.csv            epoch, learning_rate, train_loss, val_loss, and per task train/val loss and accuracy
/// ```
/// Patches are 128 px at 0.5 µm/px, box-averaged by `downsample`, scaled to [-1, 1] (x/255·2 − 1).
public struct EncoderModel {
    public struct TaskInfo: Codable, Equatable {
        public var name: String
        /// classification, binary or regression
        public var kind: String
        public var classes: [String]?
        public var head: String
        public var weight: Double
        /// Regression targets are standardised for training; predictions are mapped back with these.
        public var mean: Double?
        public var std: Double?
        /// Validation scores at the kept (best) epoch: loss, accuracy and AUC, or R². A score that
        /// cannot be computed (AUC of a one-class validation split) is null, with why in `unavailable`.
        public var validation: [String: Double?]?
        public var unavailable: [String: String]?
    }

    public struct Info: Codable, Equatable {
        public var training: String
        public var patchSize: Int
        public var downsample: Int
        public var input: [Int]
        public var codeSize: Int
        public var tasks: [TaskInfo]
        public var bestEpoch: Int?
        public var epochs: Int
        public var trainPatches: Int
        public var validationPatches: Int
        /// The code is the first `codeFrom` outputs of the network (a VAE's μ of its [μ, log σ²]); nil: all.
        public var codeFrom: Int?
        /// The epoch cap, and whether early stopping ended training before it.
        public var maxEpochs: Int?
        public var stoppedEarly: Bool?
        /// Set when training diverged and the best finite epoch was kept: what diverged and where.
        public var diverged: String?
        /// Where the training's time went (absent for weight-free encoders and older models).
        public var time: TrainingTime?
        /// The µm/px of the patches it was trained on (absent in models from before it was recorded):
        /// the magnification a compressor applies it at unless told otherwise.
        public var mpp: Double?

        enum CodingKeys: String, CodingKey {
            case training, downsample, input, tasks, epochs, time, mpp, codeFrom = "code_from"
            case maxEpochs = "max_epochs", stoppedEarly = "stopped_early", diverged
            case patchSize = "patch_size", codeSize = "code_size", bestEpoch = "best_epoch"
            case trainPatches = "train_patches", validationPatches = "validation_patches"
        }
    }

    public let info: Info
    public let network: Network

    /// Loads the encoder (not the heads) for compression.
    public init(folder: URL) throws {
        let infoURL = folder.appendingPathComponent("model.json")
        do { info = try JSONDecoder().decode(Info.self, from: Data(contentsOf: infoURL)) }
        catch { throw NodeError("\(infoURL.path): not a readable model description (\(error))") }
        let architecture = try Architecture.load(file: folder.appendingPathComponent("encoder.yaml").path)
        network = try architecture.build(seed: 0, inputShapes: [info.input], prefix: "encoder")
        let weights = folder.appendingPathComponent("encoder.safetensors")
        if FileManager.default.fileExists(atPath: weights.path) { try network.load(from: weights) }
        else if !network.parameters.isEmpty { throw NodeError("\(weights.path) is missing; the encoder has \(network.parameterCount) weights") }
    }

    /// Patches (size × size × 3 uint8 each) → network input [n, size/d, size/d, 3] in [-1, 1].
    public static func preprocess(_ patches: [RGBImage], downsample d: Int) -> Tensor {
        guard let first = patches.first else { return Tensor(zeros: [0, 1, 1, 3]) }
        let w = first.width / d, h = first.height / d
        let scale = 2 / (255 * Float(d * d))
        return Tensor(uninitialized: [patches.count, h, w, 3]) { out, _ in
            for (n, patch) in patches.enumerated() {
                patch.pixels.withUnsafeBufferPointer { src in
                    let base = n * h * w * 3
                    for y in 0..<h {
                        for x in 0..<w {
                            for c in 0..<3 {
                                var sum = 0
                                for dy in 0..<d {
                                    let row = ((y * d + dy) * patch.width + x * d) * 3 + c
                                    for dx in 0..<d { sum += Int(src[row + dx * 3]) }
                                }
                                out[base + (y * w + x) * 3 + c] = Float(sum) * scale - 1
                            }
                        }
                    }
                }
            }
        }
    }

    /// Codes [n, codeSize] for patches.
    public func encode(_ patches: [RGBImage]) throws -> Tensor {
        let out = try network.forward(Self.preprocess(patches, downsample: info.downsample), training: false)
        let width = out.count / max(1, patches.count)
        guard let take = info.codeFrom, take < width else { return out.reshaped([patches.count, width]) }
        var code = [Float](repeating: 0, count: patches.count * take)
        for i in 0..<patches.count { for j in 0..<take { code[i * take + j] = out.data[i * width + j] } }
        return Tensor(shape: [patches.count, take], data: code)
    }
}

/// The eight symmetries of the square (4 rotations × optional mirror), applied to patches and grids alike.
public enum Dihedral {
    /// Maps (x, y) in an n×m (width × height) image under orientation k (0–7) to the output's
    /// coordinates and size: k & 3 quarter turns counter-clockwise after a horizontal mirror if k ≥ 4.
    public static func map(x: Int, y: Int, width: Int, height: Int, orientation k: Int) -> (x: Int, y: Int, width: Int, height: Int) {
        var (x, y, w, h) = (x, y, width, height)
        if k >= 4 { x = w - 1 - x }
        for _ in 0..<(k & 3) {
            (x, y) = (y, w - 1 - x)
            (w, h) = (h, w)
        }
        return (x, y, w, h)
    }

    public static func apply(_ image: RGBImage, orientation k: Int) -> RGBImage {
        if k == 0 { return image }
        let size = map(x: 0, y: 0, width: image.width, height: image.height, orientation: k)
        var out = [UInt8](repeating: 0, count: image.pixels.count)
        for y in 0..<image.height {
            for x in 0..<image.width {
                let t = map(x: x, y: y, width: image.width, height: image.height, orientation: k)
                let s = (y * image.width + x) * 3, d = (t.y * size.width + t.x) * 3
                out[d] = image.pixels[s]; out[d + 1] = image.pixels[s + 1]; out[d + 2] = image.pixels[s + 2]
            }
        }
        return RGBImage(width: size.width, height: size.height, pixels: out)
    }
}
