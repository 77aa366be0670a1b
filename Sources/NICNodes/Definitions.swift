import Flow
import Foundation
import Neural
import NICBasics
import Yams

/// The YAML definitions under `nodes/` that node params reference, as schemas the engine checks at
/// `nic validate` (every layer's parameters, a head's loss and auxiliary target), and the readers a
/// node uses at run time: always from the text the node was keyed on, never from the path again.
enum ArchitectureFile: YAMLSchema {
    /// The top-level keys an architecture may have: its network, a bag model's `pool` and `after`,
    /// a pair head's `loss`. `kl_weight` in nodes/vae/encoder.yaml records the paper's γ beside the
    /// encoder; the node's own `kl_weight` param is what trains, and the key stays so that the
    /// file's content (its cache key) does not change.
    static let keys = ["name", "description", "input", "inputs", "layers", "blocks", "pool", "after", "loss", "kl_weight"]

    static func problems(in node: Yams.Node, file: String) -> [SpecError] {
        let unknown = unknownKeys(in: node, file: file, allowed: keys)
        do {
            let architecture = try Architecture(node: node, file: file)
            // What only some users read is checked here too, so a typo in it fails at validate.
            _ = try BagModel.poolSpec(architecture)
            if let after = architecture.extra["after"] {
                _ = try Architecture(node: .mapping(Yams.Node.Mapping([(Yams.Node("layers"), after)])), file: file)
            }
            if architecture.extra["loss"] != nil { _ = try LossSpec(architecture) }
            return unknown
        } catch {
            return unknown + [located(error, file: file, node: node)]
        }
    }

    /// A top-level key nobody reads, at its place, with the closest known key.
    static func unknownKeys(in node: Yams.Node, file: String, allowed: [String]) -> [SpecError] {
        guard let mapping = node.mapping else { return [] }
        return mapping.keys.compactMap { key in
            guard let name = key.string, !allowed.contains(name) else { return nil }
            return SpecError("unknown key '\(name)'\(Suggest.hint(for: name, among: allowed)); expected \(Suggest.list(allowed))",
                             at: SourceLocation(file: file, line: key.mark?.line ?? 1, column: key.mark?.column ?? 1))
        }
    }

    /// A Neural error's `file:line:column` (its location string) as an engine location.
    static func located(_ error: Error, file: String, node: Yams.Node) -> SpecError {
        let fallback = SourceLocation(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1)
        guard case let .architecture(location, message)? = error as? NeuralError else { return SpecError("\(error)", at: fallback) }
        let parts = location.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count >= 3, let line = Int(parts[parts.count - 2]), let column = Int(parts[parts.count - 1]) {
            return SpecError(message, at: SourceLocation(file: parts.dropLast(2).joined(separator: ":"), line: line, column: column))
        }
        return SpecError(message, at: SourceLocation(file: location, line: fallback.line, column: fallback.column))
    }
}

/// A head (`nodes/heads/*.yaml`): layers ending in `dense`, a `loss`, an optional `auxiliary` target.
enum HeadFile: YAMLSchema {
    static let keys = ["name", "description", "input", "layers", "loss", "auxiliary"]

    static func problems(in node: Yams.Node, file: String) -> [SpecError] {
        let unknown = ArchitectureFile.unknownKeys(in: node, file: file, allowed: keys)
        // A misspelt `loss` is reported as the typo it is, not as a missing loss.
        if !unknown.isEmpty { return unknown }
        do {
            let architecture = try Heads.architecture(node, file: file, outputs: 1)
            _ = try LossSpec(architecture)
            _ = try Heads.auxiliary(architecture)
            return []
        } catch let error as SpecErrors {
            return error.errors
        } catch let error as SpecError {
            return [error]
        } catch let error as NodeError {
            return [SpecError(error.message, at: SourceLocation(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1))]
        } catch {
            return [ArchitectureFile.located(error, file: file, node: node)]
        }
    }
}

extension Architecture {
    /// The referenced architecture, parsed from the text the node was keyed on.
    init(_ reference: Reference) throws {
        try self.init(node: reference.yamlNode(), file: reference.path)
    }
}

extension Reference {
    /// The text the node was keyed on, for a model folder's copy of its definitions.
    func keyedText() throws -> String {
        guard let text else { throw NodeError("\(path): the definition was not read when the pipeline was checked") }
        return text
    }

    /// Writes the keyed text to `url` (a model folder's copy), replacing what is there.
    func write(to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(try keyedText().utf8).write(to: url)
    }
}
