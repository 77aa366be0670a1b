import NICBasics
import Foundation
import Yams

/// A network described in YAML (files under `nodes/`). Changing an architecture is a YAML edit:
///
/// ```yaml
/// name: nic-encoder
/// input: [64, 64, 3]          # item shape, NHWC without the batch
/// layers:
///   - conv: {filters: 128, kernel: 3, stride: 2, padding: valid}
///   - leaky_relu: 0.2
///   - batchnorm: {}
///   - flatten
///   - dense: 128
/// ```
/// Several inputs use `inputs:` (a mapping name → shape) and `blocks:` (a list of `{name, from, layers}`;
/// `from` lists inputs or earlier blocks, concatenated along the last axis). `input` may be omitted
/// when the shape is given at build time (heads on top of an encoder). Other top-level keys (`loss`,
/// `description`, ...) are kept in `extra` for the code that uses the network.
public struct Architecture: Sendable {
    public struct LayerSpec: Sendable {
        public let kind: String
        /// Where the layer is written (`file:line:column` of its kind), for errors found when building.
        public let location: String
        /// The layer's parameters, read and checked when the file is decoded (so at `nic validate`).
        public let config: LayerConfig
    }

    public struct BlockSpec: Sendable {
        public let name: String
        public let from: [String]
        public let layers: [LayerSpec]
        public let location: String
    }

    public let name: String
    public let file: String
    public let inputs: [(name: String, shape: [Int]?)]
    public let blocks: [BlockSpec]
    /// A bag model's pooling (`pool:`); nil for any other network.
    public let pool: BagModel.PoolSpec?
    /// A bag model's layers on the pooled vector (`after:`), with where they are written.
    public let after: (layers: [LayerSpec], location: String)?
    /// The training loss a head (or a pair head) names.
    public let loss: LossSpec?

    public static let layerKinds = [
        "conv", "depthwise_conv", "separable_conv", "dense", "batchnorm", "leaky_relu", "relu", "sigmoid", "tanh",
        "dropout", "spatial_dropout", "upsample", "max_pool", "avg_pool", "global_avg_pool", "global_max_pool",
        "flatten", "reshape", "sample_gaussian",
    ]

    public static func load(file path: String) throws -> Architecture {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw NeuralError.architecture(location: path, message: "cannot read architecture file: \(error.localizedDescription)")
        }
        return try parse(yaml: text, file: path)
    }

    public static func parse(yaml: String, file: String) throws -> Architecture {
        let root: Yams.Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw NeuralError.architecture(location: file, message: "not valid YAML: \(error)")
        }
        guard let root else { throw NeuralError.architecture(location: file, message: "empty architecture file") }
        return try Architecture(node: root, file: file)
    }

    /// Decodes an architecture from its YAML, with every problem at its `file:line:column`.
    public init(node root: Yams.Node, file: String) throws {
        self = try YAMLValueDecoder.decode(Architecture.self, from: root, file: file)
    }

    init(name: String, file: String, inputs: [(name: String, shape: [Int]?)], blocks: [BlockSpec],
         pool: BagModel.PoolSpec? = nil, after: (layers: [LayerSpec], location: String)? = nil, loss: LossSpec? = nil) {
        self.name = name
        self.file = file
        self.inputs = inputs
        self.blocks = blocks
        self.pool = pool
        self.after = after
        self.loss = loss
    }

    /// One sequence of layers on one input of the shape given at build time (a bag model's `after`).
    static func sequential(_ layers: [LayerSpec], file: String, location: String) -> Architecture {
        Architecture(name: stem(file), file: file, inputs: [("input", nil)],
                     blocks: [BlockSpec(name: "layers", from: ["input"], layers: layers, location: location)])
    }

    static func stem(_ file: String) -> String { URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent }

    /// The same network with its last layer, a `dense`, `units` wide (a head sized by its task);
    /// nil when the last layer is not a dense one.
    public func withOutputs(_ units: Int) -> Architecture? {
        guard var block = blocks.last, let last = block.layers.last, case let .dense(_, bias, l2) = last.config else { return nil }
        var layers = block.layers
        layers[layers.count - 1] = LayerSpec(kind: last.kind, location: last.location, config: .dense(units: units, bias: bias, l2: l2))
        block = BlockSpec(name: block.name, from: block.from, layers: layers, location: block.location)
        return Architecture(name: name, file: file, inputs: inputs, blocks: blocks.dropLast() + [block], pool: pool, after: after, loss: loss)
    }

    /// Builds the network with seeded initialisation (same seed → same weights). `inputShapes` overrides
    /// or supplies the shapes of the inputs, in order. `prefix` renames the tensors: a `layers:` network
    /// gets `prefix.0.weight`, ..., a block network `prefix.block.0.weight` (a head next to its trunk).
    public func build(seed: UInt64, inputShapes: [[Int]]? = nil, prefix: String? = nil) throws -> Network {
        var rename: [String: String] = [:]
        for b in blocks {
            rename[b.name] = prefix.map { blocks.count == 1 && b.name == "layers" ? $0 : "\($0).\(b.name)" } ?? b.name
        }
        var shapes: [String: [Int]] = [:]
        var resolvedInputs: [(name: String, shape: [Int])] = []
        for (i, input) in inputs.enumerated() {
            guard let s = inputShapes?[safe: i] ?? input.shape else {
                throw NeuralError.architecture(location: file, message: "input '\(input.name)' has no shape: give 'input: [H, W, C]' or pass it at build time")
            }
            shapes[input.name] = s
            resolvedInputs.append((input.name, s))
        }
        var rng = Xoshiro256StarStar(seed: seed)
        var built: [Network.Block] = []
        var layerIndex: UInt64 = 0
        for block in blocks {
            let blockName = rename[block.name]!
            let sources = block.from.map { rename[$0] ?? $0 }
            let inShapes = sources.map { shapes[$0]! }
            var shape = try Concat(name: block.name).outputShape(inShapes)
            var layers: [Layer] = []
            var shapeBefore: [[Int]] = []
            for (i, spec) in block.layers.enumerated() {
                let next = block.layers[safe: i + 1]
                let previousShape = shape
                layerIndex += 1
                var layerRng = rng.derived(layerIndex)
                let layer: Layer
                do {
                    let flattened = i > 0 && block.layers[i - 1].kind == "flatten" ? shapeBefore[i - 1] : nil
                    layer = try makeLayer(spec, name: "\(blockName).\(i)", input: shape, flattened: flattened,
                                          previousKind: i > 0 ? block.layers[i - 1].kind : nil, next: next, rng: &layerRng)
                    shape = try layer.outputShape(shape)
                } catch let e as NeuralError {
                    if case .architecture = e { throw e }
                    throw NeuralError.architecture(location: spec.location, message: e.description)
                }
                layers.append(layer)
                shapeBefore.append(previousShape)
            }
            _ = rng.next()
            shapes[blockName] = shape
            built.append(Network.Block(name: blockName, sources: sources, layers: layers, inputShapes: inShapes, outputShape: shape))
        }
        return Network(name: name, inputs: resolvedInputs, blocks: built)
    }

    private func makeLayer(_ spec: LayerSpec, name: String, input: [Int], flattened: [Int]?,
                           previousKind: String?, next: LayerSpec?, rng: inout Xoshiro256StarStar) throws -> Layer {
        let channels = input.last ?? 0
        func needImage() throws {
            guard input.count == 3 else { throw NeuralError.shapeMismatch(layer: name, expected: "[H, W, C] (\(spec.kind) needs an image)", got: input) }
        }
        switch spec.config {
        case let .conv(filters, kernel, stride, padding, groups, bias, l2):
            try needImage()
            return try Conv2D(name: name, inChannels: channels, filters: filters, kernel: kernel,
                              stride: stride, padding: padding, groups: groups, bias: bias, l2: l2, rng: &rng)
        case let .depthwiseConv(multiplier, kernel, stride, padding, bias, l2):
            try needImage()
            return try Conv2D(name: name, inChannels: channels, filters: channels * multiplier, kernel: kernel,
                              stride: stride, padding: padding, groups: channels, bias: bias, l2: l2, rng: &rng)
        case let .separableConv(filters, kernel, stride, padding, bias, l2):
            try needImage()
            return try SeparableConv2D(name: name, inChannels: channels, filters: filters, kernel: kernel, stride: stride,
                                       padding: padding, bias: bias, l2: l2, rng: &rng)
        case let .dense(units, bias, l2):
            guard input.count == 1 else { throw NeuralError.shapeMismatch(layer: name, expected: "features [F] (add 'flatten' or a global pool before 'dense')", got: input) }
            let inputImage = flattened?.count == 3 ? flattened : nil
            var outputImage: [Int]?
            if case .reshape(let t)? = next?.config, t.count == 3 { outputImage = t }
            return Dense(name: name, inFeatures: channels, units: units, bias: bias,
                         l2: l2, inputImage: inputImage, outputImage: outputImage, rng: &rng)
        case let .batchnorm(momentum, eps):
            return BatchNorm(name: name, channels: channels, momentum: momentum, eps: eps)
        case .leakyReLU(let alpha):
            return LeakyReLU(name: name, alpha: alpha)
        case .sigmoid: return Sigmoid(name: name)
        case .tanh: return Tanh(name: name)
        case let .dropout(rate, spatial):
            return try Dropout(name: name, rate: rate, spatial: spatial, rng: rng)
        case .upsample(let factor):
            return Upsample(name: name, factor: factor)
        case let .pool(kind, kernel, stride, padding):
            return Pool2D(name: name, kind: kind, kernel: kernel, stride: stride, padding: padding)
        case .globalPool(let kind): return GlobalPool(name: name, kind: kind)
        case .flatten:
            return Flatten(name: name)
        case .reshape(let target):
            // nic images are HWC, PyTorch's CHW: only a dense right before can absorb the reordering on export.
            if target.count == 3, flattened == nil, !(previousKind == "dense") {
                throw NeuralError.architecture(location: spec.location, message: "reshape to an image [H, W, C] must directly follow a dense layer (so that weights export in PyTorch layout)")
            }
            return Reshape(name: name, target: target)
        case .sampleGaussian:
            return SampleGaussian(name: name, rng: rng)
        }
    }

}

/// One layer's parameters, typed: what `nodes/*.yaml` may say about a layer of each kind. Decoded
/// when the architecture is parsed, so a typo or a wrong value fails `nic validate` at its line.
public enum LayerConfig: Sendable {
    case conv(filters: Int, kernel: (Int, Int), stride: Int, padding: Padding, groups: Int, bias: Bool, l2: Float)
    case depthwiseConv(multiplier: Int, kernel: (Int, Int), stride: Int, padding: Padding, bias: Bool, l2: Float)
    case separableConv(filters: Int, kernel: (Int, Int), stride: Int, padding: Padding, bias: Bool, l2: Float)
    case dense(units: Int, bias: Bool, l2: Float)
    case batchnorm(momentum: Float, eps: Float)
    /// `relu` is a leaky ReLU with α = 0.
    case leakyReLU(alpha: Float)
    case sigmoid, tanh
    case dropout(rate: Float, spatial: Bool)
    case upsample(factor: Int)
    case pool(Pool2D.Kind, kernel: Int, stride: Int, padding: Padding)
    case globalPool(Pool2D.Kind)
    case flatten
    case reshape([Int])
    case sampleGaussian

    /// Reads the parameters of a `kind` layer; the decoder rejects the keys it did not ask for.
    init(kind: String, _ p: inout LayerParams) throws {
        switch kind {
        case "conv":
            self = .conv(filters: try p.int("filters", primary: true), kernel: try p.pair("kernel", default: nil),
                         stride: try p.int("stride", default: 1), padding: try p.padding(), groups: try p.int("groups", default: 1),
                         bias: try p.bool("bias", default: true), l2: try p.l2())
        case "depthwise_conv":
            self = .depthwiseConv(multiplier: try p.int("multiplier", default: 1), kernel: try p.pair("kernel", default: nil, primary: true),
                                  stride: try p.int("stride", default: 1), padding: try p.padding(),
                                  bias: try p.bool("bias", default: true), l2: try p.l2())
        case "separable_conv":
            self = .separableConv(filters: try p.int("filters", primary: true), kernel: try p.pair("kernel", default: (3, 3)),
                                  stride: try p.int("stride", default: 1), padding: try p.padding(),
                                  bias: try p.bool("bias", default: true), l2: try p.l2())
        case "dense":
            self = .dense(units: try p.int("units", primary: true), bias: try p.bool("bias", default: true), l2: try p.l2())
        case "batchnorm":
            self = .batchnorm(momentum: try p.float("momentum", default: 0.01, within: { $0 > 0 && $0 <= 1 }, range: "in (0, 1]"),
                              eps: try p.float("eps", default: 1e-3, within: { $0 > 0 && $0.isFinite }, range: "positive"))
        case "leaky_relu": self = .leakyReLU(alpha: try p.float("alpha", default: 0.2, primary: true, within: { $0 >= 0 && $0 < 1 }, range: "in [0, 1)"))
        case "relu": self = .leakyReLU(alpha: 0)
        case "sigmoid": self = .sigmoid
        case "tanh": self = .tanh
        case "dropout", "spatial_dropout":
            self = .dropout(rate: try p.float("rate", default: 0.5, primary: true, within: { $0 >= 0 && $0 < 1 }, range: "in [0, 1)"), spatial: kind == "spatial_dropout")
        case "upsample": self = .upsample(factor: try p.int("factor", default: 2, primary: true))
        case "max_pool", "avg_pool":
            let k = try p.int("kernel", default: 2, primary: true)
            self = .pool(kind == "max_pool" ? .max : .average, kernel: k, stride: try p.int("stride", default: k), padding: try p.padding())
        case "global_avg_pool": self = .globalPool(.average)
        case "global_max_pool": self = .globalPool(.max)
        case "flatten": self = .flatten
        case "reshape": self = .reshape(try p.shape("shape", primary: true))
        case "sample_gaussian": self = .sampleGaussian
        default: throw p.invalid(nil, "unknown layer '\(kind)'")
        }
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { i >= 0 && i < count ? self[i] : nil }
}

/// The parameters of one layer entry: either a bare value (`leaky_relu: 0.2`, the primary parameter)
/// or a mapping, whose keys the decoder checks (a typo is an error rather than a silent default).
struct LayerParams {
    let kind: String
    /// The entry's value: where errors about the layer as a whole point.
    let decoder: Decoder
    private var keyed: KeyedDecodingContainer<NameKey>?
    private var scalar: Decoder?
    private var primaryTaken = false

    /// `value` is the entry's value, nil for a bare kind (`- flatten`), written at `layer`.
    init(kind: String, value: Decoder?, layer: Decoder) throws {
        self.kind = kind
        decoder = value ?? layer
        guard let value else { return }
        if let mapping = try? value.container(keyedBy: NameKey.self) {
            keyed = mapping
            return
        }
        let single = try value.singleValueContainer()
        if single.decodeNil() || (try? single.decode(String.self)) == "" { return }
        scalar = value
    }

    /// An error about `key`'s value (or the layer's, with nil); the decoder adds where.
    func invalid(_ at: Decoder?, _ message: String, key: String? = nil) -> DecodingError {
        let path = (at ?? decoder).codingPath
        // A bare value's path ends at the layer kind, so the message names the parameter.
        let named = key.map { path.last?.stringValue == $0 ? "" : "'\($0)' " } ?? ""
        return .dataCorrupted(.init(codingPath: path, debugDescription: "\(named)\(message)"))
    }

    /// A required key that is not written; the decoder points at a written key one typo away.
    func missing(_ key: String) -> DecodingError {
        guard keyed != nil else { return invalid(nil, "\(kind): missing '\(key)'") }
        return .keyNotFound(NameKey(key), .init(codingPath: decoder.codingPath, debugDescription: "missing '\(key)'"))
    }

    mutating func value(_ key: String, primary: Bool) throws -> Decoder? {
        if let keyed {
            guard keyed.contains(NameKey(key)) else { return nil }
            return try keyed.superDecoder(forKey: NameKey(key))
        }
        if primary, let scalar {
            primaryTaken = true
            return scalar
        }
        return nil
    }

    mutating func int(_ key: String, default d: Int? = nil, primary: Bool = false) throws -> Int {
        guard let v = try value(key, primary: primary) else {
            if let d { return d }
            throw missing(key)
        }
        // Every integer a layer takes (filters, units, kernel, stride, groups, factor) counts something.
        let i = try Int(from: v)
        guard i > 0 else { throw invalid(v, "must be a positive integer, got \(i)", key: key) }
        return i
    }

    /// A number; `within` says which values make sense (a dropout rate of 1 drops everything), and
    /// `range` how to say so.
    mutating func float(_ key: String, default d: Float, primary: Bool = false,
                        within: (Double) -> Bool = { $0.isFinite }, range: String = "finite") throws -> Float {
        guard let v = try value(key, primary: primary) else { return d }
        let f = try Double(from: v)
        guard within(f) else { throw invalid(v, "must be \(range), got \(f)", key: key) }
        return Float(f)
    }

    mutating func l2() throws -> Float {
        try float("l2", default: 0, within: { $0 >= 0 && $0.isFinite }, range: "≥ 0")
    }

    mutating func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let v = try value(key, primary: false) else { return d }
        return try Bool(from: v)
    }

    mutating func pair(_ key: String, default d: (Int, Int)?, primary: Bool = false) throws -> (Int, Int) {
        guard let v = try value(key, primary: primary) else {
            if let d { return d }
            throw missing(key)
        }
        if let i = try? Int(from: v), i > 0 { return (i, i) }
        if let s = try? [Int](from: v), s.count == 2, s[0] > 0, s[1] > 0 { return (s[0], s[1]) }
        throw invalid(v, "must be a positive integer or [h, w]", key: key)
    }

    mutating func shape(_ key: String, primary: Bool) throws -> [Int] {
        guard let v = try value(key, primary: primary) else { throw missing(key) }
        return try Architecture.Shape(from: v).dims
    }

    mutating func padding() throws -> Padding {
        guard let v = try value("padding", primary: false) else { return .valid }
        let s = try String(from: v)
        guard let p = Padding(rawValue: s) else { throw invalid(v, "must be valid or same, got '\(s)'", key: "padding") }
        return p
    }

    /// A bare value given to a layer that has no parameter to take it (`flatten: 3`).
    func finish() throws {
        if let scalar, !primaryTaken { throw invalid(scalar, "takes no value") }
    }
}

extension Architecture: Decodable {
    /// The top-level keys of an architecture file. A file kind may allow fewer (a head has no
    /// `pool`): the decoder then reports the others as unknown. `kl_weight` in nodes/vae/encoder.yaml
    /// records the paper's γ beside the encoder; the node's own `kl_weight` param is what trains,
    /// and the key stays so that the file's content (its cache key) does not change.
    public enum Key: String, CodingKey, CaseIterable, Sendable {
        case name, description, input, inputs, layers, blocks, pool, after, loss
        case klWeight = "kl_weight"
    }

    public init(from decoder: Decoder) throws {
        try self.init(from: decoder, keys: Set(Key.allCases))
    }

    public init(from decoder: Decoder, keys: Set<Key>) throws {
        let c = try decoder.container(keyedBy: Key.self)
        func ask<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
            keys.contains(key) ? try c.decodeIfPresent(T.self, forKey: key) : nil
        }
        let file = decoder.yamlLocation?.file ?? ""
        _ = try ask(String.self, .description)
        _ = try ask(Double.self, .klWeight)
        var inputs: [(name: String, shape: [Int]?)] = []
        if let shape = try ask(Shape.self, .input) { inputs = [("input", shape.dims)] }
        if keys.contains(.inputs), c.contains(.inputs) {
            let named = try c.nestedContainer(keyedBy: NameKey.self, forKey: .inputs)
            for key in named.allKeys { inputs.append((key.stringValue, try named.decode(Shape.self, forKey: key).dims)) }
        }
        var blocks: [BlockSpec] = []
        let hasLayers = c.contains(.layers), hasBlocks = keys.contains(.blocks) && c.contains(.blocks)
        if hasLayers, hasBlocks {
            throw DecodingError.dataCorruptedError(forKey: .blocks, in: c, debugDescription: "give either 'layers' (one sequence) or 'blocks', not both")
        } else if hasBlocks {
            var list = try c.nestedUnkeyedContainer(forKey: .blocks)
            while !list.isAtEnd {
                let item = try list.superDecoder()
                let block = try item.container(keyedBy: BlockKey.self)
                let name = try block.decode(String.self, forKey: .name)
                let from = try block.decodeIfPresent(Names.self, forKey: .from)?.names ?? [blocks.last?.name ?? inputs.first?.name ?? "input"]
                let layers = try block.decode([LayerSpec].self, forKey: .layers)
                let known = Set(inputs.map(\.name)).union(blocks.map(\.name))
                for source in from where !known.contains(source) {
                    throw DecodingError.dataCorruptedError(forKey: .from, in: block, debugDescription:
                        "block '\(name)' reads '\(source)', which is neither an input nor an earlier block (known: \(known.sorted().joined(separator: ", ")))")
                }
                if known.contains(name) { throw DecodingError.dataCorruptedError(forKey: .name, in: block, debugDescription: "block name '\(name)' is already used") }
                blocks.append(BlockSpec(name: name, from: from, layers: layers, location: item.yamlLocation?.description ?? file))
            }
            if inputs.isEmpty { throw DecodingError.dataCorruptedError(forKey: .blocks, in: c, debugDescription: "'blocks' needs 'inputs'") }
        } else {
            let layers = try c.superDecoder(forKey: .layers)
            guard hasLayers else { throw DecodingError.keyNotFound(Key.layers, .init(codingPath: c.codingPath, debugDescription: "missing 'layers'")) }
            if inputs.isEmpty { inputs = [("input", nil)] }
            guard inputs.count == 1 else {
                throw DecodingError.dataCorruptedError(forKey: .layers, in: c, debugDescription: "'layers' takes one input; use 'blocks' with several inputs")
            }
            blocks = [BlockSpec(name: "layers", from: [inputs[0].name], layers: try [LayerSpec](from: layers), location: layers.yamlLocation?.description ?? file)]
        }
        var after: (layers: [LayerSpec], location: String)?
        if keys.contains(.after), c.contains(.after) {
            let written = try c.superDecoder(forKey: .after)
            after = (try [LayerSpec](from: written), written.yamlLocation?.description ?? file)
        }
        self.init(name: try ask(String.self, .name) ?? Self.stem(file), file: file, inputs: inputs, blocks: blocks,
                  pool: try ask(BagModel.PoolSpec.self, .pool), after: after, loss: try ask(LossSpec.self, .loss))
    }

    enum BlockKey: String, CodingKey { case name, from, layers }

    /// `from: image` or `from: [image, code]`.
    struct Names: Decodable {
        let names: [String]
        init(from decoder: Decoder) throws {
            if let list = try? [String](from: decoder) { names = list } else { names = [try String(from: decoder)] }
        }
    }

    /// A shape: a list of positive integers, or one for a vector.
    struct Shape: Decodable {
        let dims: [Int]
        init(from decoder: Decoder) throws {
            func wrong(_ path: [CodingKey], _ message: String) -> DecodingError { .dataCorrupted(.init(codingPath: path, debugDescription: message)) }
            if var list = try? decoder.unkeyedContainer() {
                var dims: [Int] = []
                while !list.isAtEnd {
                    let index = list.currentIndex
                    let i = try list.decode(Int.self)
                    guard i > 0 else { throw wrong(decoder.codingPath + [IndexKey(index)], "shape entries must be positive integers, got \(i)") }
                    dims.append(i)
                }
                guard !dims.isEmpty else { throw wrong(decoder.codingPath, "a shape is a list of positive integers, e.g. [64, 64, 3]") }
                self.dims = dims
            } else if let i = try? Int(from: decoder), i > 0 {
                dims = [i]
            } else {
                throw wrong(decoder.codingPath, "a shape is a list of positive integers, e.g. [64, 64, 3]")
            }
        }
    }
}

extension Architecture.LayerSpec: Decodable {
    /// `- flatten` or `- conv: {filters: 32, kernel: 3}` (one key: the kind).
    public init(from decoder: Decoder) throws {
        let kind: String, value: Decoder?, location: SourceLocation?
        if let mapping = try? decoder.container(keyedBy: NameKey.self), mapping.allKeys.count == 1, let key = mapping.allKeys.first {
            kind = key.stringValue
            value = try mapping.superDecoder(forKey: key)
            location = value?.yamlKeyLocation
        } else if let name = try? String(from: decoder) {
            kind = name
            value = nil
            location = decoder.yamlLocation
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a layer is `kind` or `{kind: params}` with one key"))
        }
        guard Architecture.layerKinds.contains(kind) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription:
                "unknown layer '\(kind)'\(Suggest.hint(for: kind, among: Architecture.layerKinds)); known: \(Architecture.layerKinds.joined(separator: ", "))"))
        }
        var params = try LayerParams(kind: kind, value: value, layer: decoder)
        let config = try LayerConfig(kind: kind, &params)
        try params.finish()
        self.init(kind: kind, location: location?.description ?? "", config: config)
    }
}

/// The training loss a head file names: `loss: mse`, or `loss: {type: cox, ties: efron}`.
public enum LossSpec: Equatable, Sendable {
    case meanSquaredError
    case binaryCrossEntropy(positiveWeight: Float)
    case softmaxCrossEntropy(classWeights: [Float]?)
    /// `risk_set` absent means `batch`: a head written before the option keeps its behaviour (and
    /// its cache key says so); the shipped nodes/heads/cox.yaml asks for `fold`.
    case cox(ties: CoxTies, riskSet: CoxRiskSet = .batch)

    public static let types = ["mse", "binary_cross_entropy", "softmax_cross_entropy", "cox"]

    /// The loss `architecture` names; a head without one cannot train.
    public init(_ architecture: Architecture) throws {
        guard let loss = architecture.loss else {
            throw NeuralError.architecture(location: architecture.file, message: "a head needs 'loss:' (\(Self.types.joined(separator: ", ")))")
        }
        self = loss
    }
}

extension LossSpec: Decodable {
    enum Key: String, CodingKey {
        case type, ties
        case positiveWeight = "positive_weight", classWeights = "class_weights", riskSet = "risk_set"
    }

    /// `mse`, or `{type: cox, ties: efron}`: each type asks only for its own keys.
    public init(from decoder: Decoder) throws {
        let entry = try TypedEntry(from: decoder, typeKey: Key.type, expected: "'loss' is a name (mse) or a mapping ({type: cox, ties: efron})")
        let type = entry.type, c = entry.options
        func number(_ key: Key) throws -> Double? { try c?.decodeIfPresent(Double.self, forKey: key) }
        func word<T: RawRepresentable>(_ key: Key, default d: T, _ options: String) throws -> T where T.RawValue == String {
            guard let c, let written = try c.decodeIfPresent(String.self, forKey: key) else { return d }
            guard let value = T(rawValue: written) else { throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be \(options), got '\(written)'") }
            return value
        }
        switch type {
        case "mse":
            self = .meanSquaredError
        case "binary_cross_entropy":
            let weight = try number(.positiveWeight) ?? 1
            guard weight > 0, weight.isFinite else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [Key.positiveWeight], debugDescription: "must be a positive number, got \(weight)"))
            }
            self = .binaryCrossEntropy(positiveWeight: Float(weight))
        case "softmax_cross_entropy":
            let weights = try c?.decodeIfPresent([Double].self, forKey: .classWeights)
            if let weights, !weights.allSatisfy({ $0 >= 0 && $0.isFinite }) {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [Key.classWeights], debugDescription: "must be a list of numbers ≥ 0"))
            }
            self = .softmaxCrossEntropy(classWeights: weights?.map(Float.init))
        case "cox":
            self = .cox(ties: try word(.ties, default: CoxTies.breslow, "breslow or efron"),
                        riskSet: try word(.riskSet, default: CoxRiskSet.batch, "batch or fold"))
        default:
            throw entry.unknownType("unknown type '\(type)'\(Suggest.hint(for: type, among: Self.types)); known: \(Self.types.joined(separator: ", "))")
        }
    }
}

/// A kind written alone (`loss: mse`, `pool: mean`) or as the `type` of a mapping of its options
/// (`{type: cox, ties: efron}`).
struct TypedEntry<Key: CodingKey> {
    let type: String
    /// The options, nil when the kind is written alone.
    let options: KeyedDecodingContainer<Key>?
    private let typePath: [CodingKey]

    init(from decoder: Decoder, typeKey: Key, expected: String) throws {
        if let mapping = try? decoder.container(keyedBy: Key.self) {
            options = mapping
            type = try mapping.decode(String.self, forKey: typeKey)
            typePath = decoder.codingPath + [typeKey]
        } else if let name = try? String(from: decoder) {
            options = nil
            type = name
            typePath = decoder.codingPath
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: expected))
        }
    }

    /// An error at the written type.
    func unknownType(_ message: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: typePath, debugDescription: message))
    }
}
