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
        try HeadFile.decode(reference).architecture(outputs: outputs)
    }

    static func text(_ file: URL) throws -> String {
        do { return try String(contentsOf: file, encoding: .utf8) }
        catch { throw NodeError("\(file.path): cannot read head: \(error.localizedDescription)") }
    }

    static func architecture(text: String, file: String, outputs: Int) throws -> Architecture {
        try HeadFile.parse(text: text, file: file).architecture(outputs: outputs)
    }

    /// A head named in a task list, from the folder's text as keyed: a name (`binary`) is
    /// `binary.yaml` in the folder; a path ending in .yaml (`nodes/heads/binary.yaml`, relative to the
    /// folder's grandparent, the project root for `nodes/heads`) must lie inside the folder, since only
    /// the folder's files enter the cache key. Returns the file's path (for messages) and its text.
    static func definition(_ name: String, task: String, in folder: DefinitionFolder) throws -> (file: String, text: String) {
        let root = folder.url.standardizedFileURL
        let file = name.hasSuffix(".yaml") || name.hasSuffix(".yml")
            ? URL(fileURLWithPath: name, relativeTo: root.deletingLastPathComponent().deletingLastPathComponent()).standardizedFileURL
            : root.appendingPathComponent(name + ".yaml")
        guard file.path.hasPrefix(root.path + "/") else {
            throw NodeError("head '\(name)' for task '\(task)' is \(file.path), outside param 'heads_dir' (\(root.path)); only that folder's files are keyed, so move the head there or point 'heads_dir' at its folder")
        }
        guard let text = folder.files[String(file.path.dropFirst(root.path.count + 1))] else {
            let names = folder.files.keys.filter { $0.hasSuffix(".yaml") }.map { String($0.dropLast(5)) }.sorted()
            throw NodeError("head '\(name)' for task '\(task)' not found (\(file.path))\(Suggest.hint(for: name, among: names)); \(root.path) has \(Suggest.list(names))")
        }
        return (file.path, text)
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
            guard !target.isEmpty else { throw DecodingError.dataCorruptedError(forKey: .target, in: c, debugDescription: "names a labels.csv column") }
            loss = try c.decodeIfPresent(String.self, forKey: .loss) ?? "mse"
            guard ["mse", "binary_cross_entropy"].contains(loss) else {
                throw DecodingError.dataCorruptedError(forKey: .loss, in: c, debugDescription: "must be mse or binary_cross_entropy, found '\(loss)'")
            }
            weight = try c.decodeIfPresent(Double.self, forKey: .weight) ?? 1
            guard weight >= 0, weight.isFinite else {
                throw DecodingError.dataCorruptedError(forKey: .weight, in: c, debugDescription: "must be a number ≥ 0, found \(weight)")
            }
            classes = try c.decodeIfPresent([String].self, forKey: .classes) ?? []
        }
    }
}

/// A head file (`nodes/heads/*.yaml`) as written: layers ending in `dense`, a `loss`, an optional
/// `auxiliary` target. It asks for these keys only, so anything else (a `pool`, a typo) is reported.
struct HeadFile: YAMLDecodable {
    static let keys: Set<Architecture.Key> = [.name, .description, .input, .layers, .loss]
    /// The network as written; `architecture(outputs:)` sizes it for a task.
    let written: Architecture
    let loss: LossSpec
    let auxiliary: Heads.Auxiliary?

    enum Key: String, CodingKey { case layers, loss, auxiliary }

    init(from decoder: Decoder) throws {
        written = try Architecture(from: decoder, keys: Self.keys)
        let c = try decoder.container(keyedBy: Key.self)
        guard let loss = written.loss else {
            throw DecodingError.keyNotFound(Key.loss, .init(codingPath: decoder.codingPath, debugDescription: "a head needs 'loss'"))
        }
        // The width written is replaced by the task's; it was checked as a width when decoded.
        guard written.withOutputs(1) != nil else {
            throw DecodingError.dataCorruptedError(forKey: .layers, in: c, debugDescription: "a head's last layer must be 'dense' (its width is set from the task)")
        }
        self.loss = loss
        let file = decoder.yamlLocation?.file ?? written.file
        auxiliary = try c.decodeIfPresent(Heads.AuxiliaryDefinition.self, forKey: .auxiliary).map {
            Heads.Auxiliary(column: $0.target, loss: $0.loss == "binary_cross_entropy" ? .binaryCrossEntropy(positiveWeight: 1) : .meanSquaredError,
                            weight: $0.weight, classes: $0.classes, file: file)
        }
    }

    static func parse(text: String, file: String) throws -> HeadFile {
        let root: Yams.Node?
        do { root = try Yams.compose(yaml: text) } catch { throw NodeError("\(file): not valid YAML: \(error)") }
        guard let root else { throw NodeError("\(file): a head must be a mapping with 'layers' and 'loss'") }
        return try YAMLValueDecoder.decode(HeadFile.self, from: root, file: file)
    }

    /// The network with its last dense layer `outputs` wide.
    func architecture(outputs: Int) -> Architecture {
        written.withOutputs(outputs)!  // invariant: checked when decoded
    }
}
