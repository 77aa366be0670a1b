import Flow
import Foundation
import Neural
import Yams

/// Task heads are YAML files (`nodes/heads/*.yaml`): layers plus a `loss`. The last `dense` layer's
/// width is set from the task (the number of classes), so one classification head serves any task.
enum Heads {
    /// Loads `file` with its last dense layer producing `outputs` units.
    static func architecture(file: URL, outputs: Int) throws -> Architecture {
        let text: String
        do { text = try String(contentsOf: file, encoding: .utf8) }
        catch { throw NodeError("\(file.path): cannot read head: \(error.localizedDescription)") }
        guard let root = try Yams.compose(yaml: text), var map = root.mapping else {
            throw NodeError("\(file.path): a head must be a mapping with 'layers' and 'loss'")
        }
        guard var layers = map["layers"]?.sequence, let lastIndex = layers.indices.last,
              var last = layers[lastIndex].mapping, let dense = last["dense"] else {
            throw NodeError("\(file.path): a head's last layer must be 'dense' (its width is set from the task)")
        }
        if var options = dense.mapping {
            options["units"] = Node(String(outputs))
            last["dense"] = .mapping(options)
        } else {
            last["dense"] = Node(String(outputs))
        }
        layers[lastIndex] = .mapping(last)
        map["layers"] = .sequence(layers)
        return try Architecture(node: .mapping(map), file: file.path)
    }

    /// Resolves a head name (`binary`) to `heads_dir/binary.yaml`, or takes a path ending in .yaml.
    static func file(_ name: String, directory: URL) -> URL {
        name.hasSuffix(".yaml") || name.hasSuffix(".yml")
            ? URL(fileURLWithPath: name, relativeTo: directory.deletingLastPathComponent().deletingLastPathComponent()).standardizedFileURL
            : directory.appendingPathComponent(name + ".yaml")
    }

    /// A second target the patient model learns beside the head's own (multi-task): the head file's
    ///
    /// ```yaml
    /// auxiliary: {target: score, loss: mse, weight: 0.5}   # or loss: binary_cross_entropy, classes: [0, 1]
    /// ```
    /// adds one output to the head's last dense layer, on the same patient embedding, trained on the
    /// labels.csv column `target` (patients without it do not count) with `weight` × its loss. Only
    /// the head's own output is predicted; the auxiliary one shapes the shared embedding.
    struct Auxiliary: Equatable {
        var column: String
        var loss: LossSpec
        var weight: Double
        var classes: [String]
        var file: String
    }

    static func auxiliary(_ architecture: Architecture) throws -> Auxiliary? {
        guard let node = architecture.extra["auxiliary"] else { return nil }
        let at = Architecture.loc(architecture.file, node)
        guard let map = node.mapping else { throw NodeError("\(at): 'auxiliary' is a mapping like {target: score, loss: mse, weight: 0.5}") }
        for key in map.keys.compactMap(\.string) where !["target", "loss", "weight", "classes"].contains(key) {
            throw NodeError("\(at): unknown key '\(key)' in 'auxiliary' (expected target, loss, weight, classes)")
        }
        guard let column = map["target"]?.string, !column.isEmpty else { throw NodeError("\(at): 'auxiliary.target' names a labels.csv column") }
        let loss: LossSpec
        switch map["loss"]?.string ?? "mse" {
        case "mse": loss = .meanSquaredError
        case "binary_cross_entropy": loss = .binaryCrossEntropy(positiveWeight: 1)
        case let other: throw NodeError("\(at): 'auxiliary.loss' must be mse or binary_cross_entropy, got '\(other)'")
        }
        let weight = map["weight"].map { $0.float } ?? 1
        guard let weight, weight >= 0, weight.isFinite else { throw NodeError("\(at): 'auxiliary.weight' must be a number ≥ 0") }
        let classes = map["classes"]?.sequence?.compactMap(\.string) ?? []
        return Auxiliary(column: column, loss: loss, weight: weight, classes: classes, file: architecture.file)
    }
}
