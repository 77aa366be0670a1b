import Foundation
import Neural
@testable import NICNodes
import XCTest

/// The networks the shipped definitions build, pinned: moving how `nodes/` files are read (issue 23:
/// one decoding path for YAML) must not change one weight, layer setting or loss. For every file
/// under nodes/encoders, nodes/patient and nodes/heads, the network built at a fixed seed is reduced
/// to a hash of its parameter names, shapes and initial values, each layer's settings (momentum,
/// alpha, stride, padding, l2, ...) and the loss or pooling the file names. The hashes were taken on
/// the readers before the move (commit 00d14ae); cox-score's again after, when its auxiliary's
/// file path (the checkout's, different on every machine) was taken out of the hash.
final class NetworkWeightsPinTests: XCTestCase {
    static let nodes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("nodes")
    static let seed: UInt64 = 20_231

    static let pinned: [String: String] = [
        "encoders/contrastive-head.yaml": "b8b813094802d4ab",
        "encoders/mean-rgb.yaml": "5f009044a51180d2",
        "encoders/nic-encoder-128.yaml": "549d71ea15bc3725",
        "encoders/nic-encoder.yaml": "c93ffbc833228a02",
        "patient/abmil-gated.yaml": "3dd4978c2f9e1fe3",
        "patient/mil-mean.yaml": "d138066a1ef18edd",
        "patient/nic-sepconv-small.yaml": "1a85e7a05b49512a",
        "patient/nic-sepconv8.yaml": "d58f66ebc67c3637",
        "heads/binary.yaml": "e5d70859cc4f0d11",
        "heads/classification.yaml": "bfa09441f9f6e46",
        "heads/cox-batch.yaml": "3774c640ac51795b",
        "heads/cox-score.yaml": "50602a452d30db93",
        "heads/cox.yaml": "abc20c9890587fe8",
        "heads/regression.yaml": "edaf26f9473879c2",
    ]

    /// FNV-1a, 64 bits: enough to tell two networks apart, and the same on every platform.
    struct Digest {
        var state: UInt64 = 0xcbf2_9ce4_8422_2325
        mutating func add<S: Sequence>(bytes: S) where S.Element == UInt8 {
            for b in bytes { state = (state ^ UInt64(b)) &* 0x100_0000_01b3 }
        }
        mutating func add(_ text: String) { add(bytes: text.utf8); add(bytes: [0]) }
        mutating func add(_ floats: [Float]) {
            for f in floats { withUnsafeBytes(of: f.bitPattern.littleEndian) { add(bytes: $0) } }
        }
        var hex: String { String(state, radix: 16) }
    }

    /// A layer's settings, read by reflection so that no setting can be forgotten: scalars and enum
    /// cases by label; tensors and parameters are hashed by `parameters`, so large arrays are skipped.
    static func settings(_ value: Any, depth: Int = 0) -> String {
        let mirror = Mirror(reflecting: value)
        switch value {
        case is Int, is Float, is Double, is Bool, is String, is UInt64, is Int32, is UInt32: return "\(value)"
        case is Parameter, is Tensor: return "·"
        default: break
        }
        if mirror.displayStyle == .enum, mirror.children.isEmpty { return "\(value)" }
        if depth > 4 { return "…" }
        if mirror.displayStyle == .collection, mirror.children.count > 16 { return "[\(mirror.children.count)]" }
        let inner = mirror.children.map { "\($0.label ?? "_")=\(settings($0.value, depth: depth + 1))" }
        let parent = mirror.superclassMirror.map { m in m.children.map { "\($0.label ?? "_")=\(settings($0.value, depth: depth + 1))" } } ?? []
        return "\(type(of: value))(\((inner + parent).joined(separator: ",")))"
    }

    static func digest(_ layers: [Layer], parameters: [Parameter], extra: String) -> String {
        var d = Digest()
        for layer in layers { d.add(settings(layer)) }
        for p in parameters {
            d.add(p.key)
            d.add(p.value.shape.map(String.init).joined(separator: "x"))
            d.add("l2=\(p.l2)")
            d.add(p.value.data)
        }
        d.add(extra)
        return d.hex
    }

    static func build(_ relative: String) throws -> String {
        let url = nodes.appendingPathComponent(relative)
        if relative.hasPrefix("heads/") {
            let head = try Heads.architecture(file: url, outputs: 3)
            let network = try head.build(seed: seed, inputShapes: [[32]], prefix: "head")
            let auxiliary = try HeadFile.parse(text: String(contentsOf: url, encoding: .utf8), file: url.path).auxiliary
            // The auxiliary's `file` is where the checkout lies, not what it builds: left out of the hash.
            let described = auxiliary.map { "column=\($0.column) loss=\($0.loss) weight=\($0.weight) classes=\($0.classes)" } ?? "nil"
            let extra = "loss=\(try LossSpec(head)) auxiliary=\(described)"
            return digest(network.layers, parameters: network.parameters, extra: extra)
        }
        let architecture = try Architecture.load(file: url.path)
        if let pool = architecture.pool {
            let head = try Heads.architecture(file: nodes.appendingPathComponent("heads/regression.yaml"), outputs: 1)
            let model = try BagModel(architecture: architecture, features: 24, head: head, seed: seed)
            let layers = (model.instance?.layers ?? []) + (model.after?.layers ?? []) + model.head.layers
            return digest(layers, parameters: model.parameters, extra: "pool=\(pool) poolDropout=\(String(describing: model.pooling.dropout.map { settings($0) }))")
        }
        let network = try architecture.build(seed: seed, inputShapes: architecture.inputs.map { $0.shape ?? [24] }, prefix: "model")
        let loss = architecture.loss.map { "\($0)" } ?? "none"
        return digest(network.layers, parameters: network.parameters, extra: "name=\(network.name) loss=\(loss)")
    }

    func testEveryShippedDefinitionBuildsThePinnedNetwork() throws {
        var found: [String] = []
        for folder in ["encoders", "patient", "heads"] {
            let names = try FileManager.default.contentsOfDirectory(atPath: Self.nodes.appendingPathComponent(folder).path)
            found += names.filter { $0.hasSuffix(".yaml") }.map { "\(folder)/\($0)" }
        }
        XCTAssertEqual(Set(found), Set(Self.pinned.keys), "a definition was added or removed: pin it")
        var actual: [String: String] = [:]
        for relative in found.sorted() {
            actual[relative] = try Self.build(relative)
            XCTAssertEqual(actual[relative], Self.pinned[relative], relative)
        }
        if actual != Self.pinned {
            print("pinned:\n" + actual.keys.sorted().map { "        \"\($0)\": \"\(actual[$0]!)\"," }.joined(separator: "\n"))
        }
    }

    /// The digest sees what the pin is for: a different seed, layer setting or loss changes it.
    func testTheDigestSeesWeightsSettingsAndLoss() throws {
        let base = "input: [8]\nlayers: [{dense: 4}, {leaky_relu: 0.2}]\nloss: mse\n"
        func digest(_ yaml: String, seed: UInt64 = 1) throws -> String {
            let a = try Architecture.parse(yaml: yaml, file: "t.yaml")
            let n = try a.build(seed: seed)
            return Self.digest(n.layers, parameters: n.parameters, extra: "\(try LossSpec(a))")
        }
        let reference = try digest(base)
        XCTAssertEqual(reference, try digest(base))
        XCTAssertNotEqual(reference, try digest(base, seed: 2))
        XCTAssertNotEqual(reference, try digest(base.replacingOccurrences(of: "0.2", with: "0.3")))
        XCTAssertNotEqual(reference, try digest(base.replacingOccurrences(of: "mse", with: "binary_cross_entropy")))
        XCTAssertNotEqual(reference, try digest(base.replacingOccurrences(of: "{dense: 4}", with: "{dense: {units: 4, l2: 0.1}}")))
    }
}
