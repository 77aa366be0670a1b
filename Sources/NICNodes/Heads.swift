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
}
