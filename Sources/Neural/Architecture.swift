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
public struct Architecture {
    public struct LayerSpec {
        public let kind: String
        public let value: Yams.Node?
        public let location: String
        /// The layer's parameters, read and checked when the file is parsed (so at `nic validate`).
        public let config: LayerConfig
    }

    public struct BlockSpec {
        public let name: String
        public let from: [String]
        public let layers: [LayerSpec]
        public let location: String
    }

    public let name: String
    public let file: String
    public let inputs: [(name: String, shape: [Int]?)]
    public let blocks: [BlockSpec]
    public let extra: [String: Yams.Node]

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

    public static func loc(_ file: String, _ node: Yams.Node?) -> String {
        guard let mark = node?.mark else { return file }
        return "\(file):\(mark.line):\(mark.column)"
    }

    public init(node root: Yams.Node, file: String) throws {
        func fail(_ message: String, _ node: Yams.Node?) -> NeuralError {
            .architecture(location: Architecture.loc(file, node), message: message)
        }
        guard let mapping = root.mapping else { throw fail("expected a mapping with 'layers' or 'blocks'", root) }
        self.file = file
        var extra: [String: Yams.Node] = [:]
        var nameValue: String?
        var inputs: [(String, [Int]?)] = []
        var layersNode: Yams.Node?, blocksNode: Yams.Node?
        for (k, v) in mapping {
            guard let key = k.string else { throw fail("keys must be strings", k) }
            switch key {
            case "name": nameValue = v.string
            case "input": inputs = [("input", try Architecture.shape(v, file, key: "input"))]
            case "inputs":
                guard let m = v.mapping else { throw fail("'inputs' must map names to shapes, e.g. {image: [64, 64, 3]}", v) }
                for (ik, iv) in m {
                    guard let n = ik.string else { throw fail("input names must be strings", ik) }
                    inputs.append((n, try Architecture.shape(iv, file, key: "inputs.\(n)")))
                }
            case "layers": layersNode = v
            case "blocks": blocksNode = v
            default: extra[key] = v
            }
        }
        self.name = nameValue ?? URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        var blocks: [BlockSpec] = []
        switch (layersNode, blocksNode) {
        case (.some, .some): throw fail("give either 'layers' (one sequence) or 'blocks', not both", blocksNode)
        case (nil, nil): throw fail("missing 'layers' (or 'blocks')", root)
        case let (.some(l), nil):
            if inputs.isEmpty { inputs = [("input", nil)] }
            guard inputs.count == 1 else { throw fail("'layers' takes one input; use 'blocks' with several inputs", l) }
            blocks = [BlockSpec(name: "layers", from: [inputs[0].0], layers: try Architecture.layers(l, file), location: Architecture.loc(file, l))]
        case let (nil, .some(b)):
            guard let seq = b.sequence else { throw fail("'blocks' must be a list of {name, from, layers}", b) }
            for item in seq {
                guard let m = item.mapping else { throw fail("a block is a mapping {name, from, layers}", item) }
                guard let n = m["name"]?.string else { throw fail("block needs a 'name'", item) }
                var from: [String] = []
                if let f = m["from"] {
                    if let s = f.string { from = [s] } else if let list = f.sequence { from = list.compactMap(\.string) }
                } else {
                    from = [blocks.last?.name ?? inputs.first?.0 ?? "input"]
                }
                guard let l = m["layers"] else { throw fail("block '\(n)' needs 'layers'", item) }
                for key in m.keys.compactMap(\.string) where !["name", "from", "layers"].contains(key) {
                    throw fail("unknown key '\(key)' in block '\(n)' (expected name, from, layers)", m.keys.first { $0.string == key })
                }
                let known = Set(inputs.map(\.0)).union(blocks.map(\.name))
                for s in from where !known.contains(s) {
                    throw fail("block '\(n)' reads '\(s)', which is neither an input nor an earlier block (known: \(known.sorted().joined(separator: ", ")))", m["from"])
                }
                if known.contains(n) { throw fail("block name '\(n)' is already used", m["name"]) }
                blocks.append(BlockSpec(name: n, from: from, layers: try Architecture.layers(l, file), location: Architecture.loc(file, item)))
            }
            if inputs.isEmpty { throw fail("'blocks' needs 'inputs'", b) }
        }
        self.inputs = inputs
        self.blocks = blocks
        self.extra = extra
    }

    static func shape(_ node: Yams.Node, _ file: String, key: String) throws -> [Int] {
        if let i = node.int, i > 0 { return [i] }
        guard let seq = node.sequence, !seq.isEmpty else {
            throw NeuralError.architecture(location: loc(file, node), message: "'\(key)': a shape is a list of positive integers, e.g. [64, 64, 3]")
        }
        return try seq.map {
            guard let i = $0.int, i > 0 else { throw NeuralError.architecture(location: loc(file, $0), message: "'\(key)': shape entries must be positive integers") }
            return i
        }
    }

    static func layers(_ node: Yams.Node, _ file: String) throws -> [LayerSpec] {
        guard let seq = node.sequence else {
            throw NeuralError.architecture(location: loc(file, node), message: "'layers' must be a list, e.g. [{conv: {filters: 32, kernel: 3}}, relu]")
        }
        return try seq.map { item in
            let kind: String, value: Yams.Node?, at: Yams.Node
            if let s = item.string, item.scalar != nil {
                kind = s; value = nil; at = item
            } else if let m = item.mapping, m.count == 1, let k = m.keys.first!.string {
                kind = k; value = m.values.first!; at = m.keys.first!
            } else {
                throw NeuralError.architecture(location: loc(file, item), message: "a layer is `kind` or `{kind: params}` with one key")
            }
            guard layerKinds.contains(kind) else {
                let suggestion = layerKinds.min { editDistance($0, kind) < editDistance($1, kind) }!
                throw NeuralError.architecture(location: loc(file, at), message: "unknown layer '\(kind)' (did you mean '\(suggestion)'?); known: \(layerKinds.joined(separator: ", "))")
            }
            var params = try LayerParams(kind: kind, value: value, location: loc(file, at), file: file)
            let config = try LayerConfig(kind: kind, &params)
            try params.finish()
            return LayerSpec(kind: kind, value: value, location: loc(file, at), config: config)
        }
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(1, a.count) where !a.isEmpty {
            var prev = row[0]
            row[0] = i
            for j in stride(from: 1, through: b.count, by: 1) {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
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

    /// Reads the parameters of a `kind` layer; `finish()` then rejects the keys it did not ask for.
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
        default: throw p.fail("unknown layer", nil)
        }
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { i >= 0 && i < count ? self[i] : nil }
}

/// The parameters of one layer entry: either a bare value (`leaky_relu: 0.2`, the primary parameter)
/// or a mapping. Every key must be used, so a typo is an error rather than a silent default.
struct LayerParams {
    let kind: String
    let location: String
    let file: String
    var mapping: [String: Yams.Node] = [:]
    var keyNodes: [String: Yams.Node] = [:]
    var scalar: Yams.Node?
    var used: Set<String> = []

    init(kind: String, value: Yams.Node?, location: String, file: String) throws {
        self.kind = kind
        self.location = location
        self.file = file
        guard let v = value else { return }
        if let m = v.mapping {
            for (k, val) in m {
                guard let key = k.string else { throw NeuralError.architecture(location: location, message: "parameter names must be strings") }
                mapping[key] = val
                keyNodes[key] = k
            }
        } else if v.null != nil || v.string == "" {
            return
        } else {
            scalar = v
        }
    }

    func fail(_ message: String, _ node: Yams.Node?) -> NeuralError {
        let at = node?.mark.map { "\(file):\($0.line):\($0.column)" } ?? location
        return .architecture(location: at, message: "\(kind): \(message)")
    }

    /// A required key that is not written; a written key one typo away is pointed at instead.
    func missing(_ key: String) -> NeuralError {
        let typo = mapping.keys.filter { !used.contains($0) && Architecture.editDistance($0, key) <= 2 }
            .min { Architecture.editDistance($0, key) < Architecture.editDistance($1, key) }
        guard let typo else { return fail("missing '\(key)'", nil) }
        return fail("missing '\(key)' ('\(typo)' is written: a typo?)", keyNodes[typo])
    }

    mutating func node(_ key: String, primary: Bool) -> Yams.Node? {
        used.insert(key)
        if let n = mapping[key] { return n }
        if primary, let s = scalar { return s }
        return nil
    }

    mutating func int(_ key: String, default d: Int? = nil, primary: Bool = false) throws -> Int {
        guard let n = node(key, primary: primary) else {
            if let d { return d }
            throw missing(key)
        }
        // Every integer a layer takes (filters, units, kernel, stride, groups, factor) counts something.
        guard let i = n.int, i > 0 else { throw fail("'\(key)' must be a positive integer", n) }
        return i
    }

    /// A number; `within` says which values make sense (a dropout rate of 1 drops everything), and
    /// `range` how to say so.
    mutating func float(_ key: String, default d: Float, primary: Bool = false,
                        within: (Double) -> Bool = { $0.isFinite }, range: String = "finite") throws -> Float {
        guard let n = node(key, primary: primary) else { return d }
        guard let f = n.float else { throw fail("'\(key)' must be a number", n) }
        guard within(f) else { throw fail("'\(key)' must be \(range), got \(f)", n) }
        return Float(f)
    }

    mutating func l2() throws -> Float {
        try float("l2", default: 0, within: { $0 >= 0 && $0.isFinite }, range: "≥ 0")
    }

    mutating func bool(_ key: String, default d: Bool) throws -> Bool {
        guard let n = node(key, primary: false) else { return d }
        guard let b = n.bool else { throw fail("'\(key)' must be true or false", n) }
        return b
    }

    mutating func pair(_ key: String, default d: (Int, Int)?, primary: Bool = false) throws -> (Int, Int) {
        guard let n = node(key, primary: primary) else {
            if let d { return d }
            throw missing(key)
        }
        if let i = n.int, i > 0 { return (i, i) }
        if let s = n.sequence, s.count == 2, let a = s[0].int, let b = s[1].int, a > 0, b > 0 { return (a, b) }
        throw fail("'\(key)' must be a positive integer or [h, w]", n)
    }

    mutating func shape(_ key: String, primary: Bool) throws -> [Int] {
        guard let n = node(key, primary: primary) else { throw missing(key) }
        guard let s = n.sequence, !s.isEmpty else { throw fail("'\(key)' must be a list of positive integers", n) }
        return try s.map {
            guard let i = $0.int, i > 0 else { throw fail("'\(key)' entries must be positive integers", $0) }
            return i
        }
    }

    mutating func padding() throws -> Padding {
        guard let n = node("padding", primary: false) else { return .valid }
        guard let s = n.string, let p = Padding(rawValue: s) else { throw fail("'padding' must be valid or same", n) }
        return p
    }

    /// Rejects keys nobody asked for (typos such as `filter:` for `filters:`).
    func finish() throws {
        for key in mapping.keys.sorted() where !used.contains(key) {
            let known = used.sorted()
            let closest = known.min { Architecture.editDistance($0, key) < Architecture.editDistance($1, key) }
            let hint = closest.flatMap { Architecture.editDistance($0, key) <= max(1, min(3, $0.count / 3)) ? " (did you mean '\($0)'?)" : nil } ?? ""
            throw fail("unknown parameter '\(key)'\(hint)\(known.isEmpty ? "" : "; known: \(known.joined(separator: ", "))")", keyNodes[key])
        }
        if scalar != nil, used.isEmpty { throw fail("takes no value", scalar) }
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

    public init(_ architecture: Architecture) throws {
        let file = architecture.file
        guard let node = architecture.extra["loss"] else {
            throw NeuralError.architecture(location: file, message: "a head needs 'loss:' (mse, binary_cross_entropy, softmax_cross_entropy or cox)")
        }
        let file_ = file
        func fail(_ message: String, _ at: Yams.Node?) -> NeuralError {
            .architecture(location: Architecture.loc(file_, at ?? node), message: "loss: \(message)")
        }
        let typeNode: Yams.Node?
        var params: [(key: Yams.Node, value: Yams.Node)] = []
        if node.scalar != nil {
            typeNode = node
        } else if let m = node.mapping {
            params = m.filter { $0.key.string != "type" }
            typeNode = m.first { $0.key.string == "type" }?.value
            guard typeNode != nil else { throw fail("missing 'type' (mse, binary_cross_entropy, softmax_cross_entropy or cox)", node) }
        } else {
            throw fail("'loss' is a name (mse) or a mapping ({type: cox, ties: efron})", node)
        }
        let types = ["mse", "binary_cross_entropy", "softmax_cross_entropy", "cox"]
        let known: [String: [String]] = ["mse": [], "binary_cross_entropy": ["positive_weight"],
                                         "softmax_cross_entropy": ["class_weights"], "cox": ["ties", "risk_set"]]
        guard let type = typeNode?.string, let allowed = known[type] else {
            let written = typeNode?.string ?? "?"
            let closest = types.min { Architecture.editDistance($0, written) < Architecture.editDistance($1, written) }!  // invariant: not empty
            throw fail("unknown type '\(written)' (did you mean '\(closest)'?); known: \(types.joined(separator: ", "))", typeNode)
        }
        for (key, _) in params where !allowed.contains(key.string ?? "") {
            let name = key.string ?? "?"
            let closest = allowed.min { Architecture.editDistance($0, name) < Architecture.editDistance($1, name) }
            let hint = closest.map { " (did you mean '\($0)'?)" } ?? ""
            throw fail("unknown parameter '\(name)' for \(type)\(hint)\(allowed.isEmpty ? "" : "; known: \(allowed.joined(separator: ", "))")", key)
        }
        func value(_ key: String) -> Yams.Node? { params.first { $0.key.string == key }?.value }
        func word<T: RawRepresentable>(_ key: String, default d: T, _ options: String) throws -> T where T.RawValue == String {
            guard let n = value(key) else { return d }
            guard n.scalar != nil, let s = n.string, let v = T(rawValue: s) else { throw fail("'\(key)' must be \(options), got \(n.string.map { "'\($0)'" } ?? "a \(n.mapping != nil ? "mapping" : "list")")", n) }
            return v
        }
        switch type {
        case "mse":
            self = .meanSquaredError
        case "binary_cross_entropy":
            var w = 1.0
            if let n = value("positive_weight") {
                guard let f = n.float, f > 0, f.isFinite else { throw fail("'positive_weight' must be a positive number", n) }
                w = f
            }
            self = .binaryCrossEntropy(positiveWeight: Float(w))
        case "softmax_cross_entropy":
            var weights: [Float]?
            if let n = value("class_weights") {
                guard let list = n.sequence?.map({ $0.float }), let ws = list as? [Double], ws.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
                    throw fail("'class_weights' must be a list of numbers ≥ 0", n)
                }
                weights = ws.map(Float.init)
            }
            self = .softmaxCrossEntropy(classWeights: weights)
        default:
            self = .cox(ties: try word("ties", default: CoxTies.breslow, "breslow or efron"),
                        riskSet: try word("risk_set", default: CoxRiskSet.batch, "batch or fold"))
        }
    }
}
