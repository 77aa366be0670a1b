import Flow
import Foundation
import Neural
import NICBasics
import Yams

/// Task heads are YAML files (`nodes/heads/*.yaml`): layers plus a `loss`. The last `dense` layer's
/// width is set from the task (the number of classes), so one classification head serves any task.
enum Heads {
    /// Loads `file` (a model's own copy, or a head named in a task list) with its last dense layer
    /// producing `outputs` units.
    static func architecture(file: URL, outputs: Int) throws -> Architecture {
        try architecture(text: try text(file), file: file.path, outputs: outputs)
    }

    /// The referenced head, from the text the node was keyed on.
    static func architecture(_ reference: Reference, outputs: Int) throws -> Architecture {
        try architecture(reference.yamlNode(), file: reference.path, outputs: outputs)
    }

    static func text(_ file: URL) throws -> String {
        do { return try String(contentsOf: file, encoding: .utf8) }
        catch { throw NodeError("\(file.path): cannot read head: \(error.localizedDescription)") }
    }

    static func architecture(text: String, file: String, outputs: Int) throws -> Architecture {
        let root: Yams.Node?
        do { root = try Yams.compose(yaml: text) } catch { throw NodeError("\(file): not valid YAML: \(error)") }
        guard let root else { throw NodeError("\(file): a head must be a mapping with 'layers' and 'loss'") }
        return try architecture(root, file: file, outputs: outputs)
    }

    static func architecture(_ root: Yams.Node, file: String, outputs: Int) throws -> Architecture {
        guard var map = root.mapping else {
            throw NeuralError.architecture(location: Architecture.loc(file, root), message: "a head must be a mapping with 'layers' and 'loss'")
        }
        guard var layers = map["layers"]?.sequence, let lastIndex = layers.indices.last,
              var last = layers[lastIndex].mapping, let dense = last["dense"] else {
            throw NeuralError.architecture(location: Architecture.loc(file, map["layers"] ?? root), message: "a head's last layer must be 'dense' (its width is set from the task)")
        }
        // The width written is replaced by the task's, but it must still be a width: a typo there
        // is reported, not silently overwritten.
        let written = dense.mapping?["units"] ?? (dense.scalar != nil && dense.null == nil ? dense : nil)
        if let written, (written.int ?? 0) <= 0 {
            throw NeuralError.architecture(location: Architecture.loc(file, written), message: "dense: 'units' must be a positive integer")
        }
        if var options = dense.mapping {
            options["units"] = Node(String(outputs))
            last["dense"] = .mapping(options)
        } else {
            last["dense"] = Node(String(outputs))
        }
        layers[lastIndex] = .mapping(last)
        map["layers"] = .sequence(layers)
        return try Architecture(node: .mapping(map), file: file)
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
        let definition: AuxiliaryDefinition
        do { definition = try YAMLValueDecoder.decode(AuxiliaryDefinition.self, from: node, file: architecture.file) }
        catch let errors as SpecErrors { throw SpecErrors(errors.errors.map { SpecError("auxiliary: " + $0.message, at: $0.location) }) }
        catch let error as SpecError { throw SpecError("auxiliary: " + error.message, at: error.location) }
        return Auxiliary(column: definition.target, loss: definition.loss == "binary_cross_entropy" ? .binaryCrossEntropy(positiveWeight: 1) : .meanSquaredError,
                         weight: definition.weight, classes: definition.classes, file: architecture.file)
    }

    /// `auxiliary:` as written in a head file.
    struct AuxiliaryDefinition: Decodable {
        var target: String
        var loss: String
        var weight: Double
        var classes: [String]
        enum CodingKeys: String, CodingKey { case target, loss, weight, classes }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            target = try c.decode(String.self, forKey: .target)
            guard !target.isEmpty else { throw DecodingError.dataCorruptedError(forKey: .target, in: c, debugDescription: "auxiliary: 'target' names a labels.csv column") }
            loss = try c.decodeIfPresent(String.self, forKey: .loss) ?? "mse"
            guard ["mse", "binary_cross_entropy"].contains(loss) else {
                throw DecodingError.dataCorruptedError(forKey: .loss, in: c, debugDescription: "auxiliary: 'loss' must be mse or binary_cross_entropy, found '\(loss)'")
            }
            weight = try c.decodeIfPresent(Double.self, forKey: .weight) ?? 1
            guard weight >= 0, weight.isFinite else {
                throw DecodingError.dataCorruptedError(forKey: .weight, in: c, debugDescription: "auxiliary: 'weight' must be a number ≥ 0, found \(weight)")
            }
            classes = try c.decodeIfPresent([String].self, forKey: .classes) ?? []
        }
    }
}
