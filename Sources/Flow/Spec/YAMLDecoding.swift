import Foundation
import NICBasics
import Yams

/// What a structured param value or a referenced file must look like (a task list, a recipe, an
/// architecture). The engine checks it at `nic validate`, against the YAML as written, so every
/// problem points at its `file:line:column` — inside a referenced file too.
public protocol YAMLSchema {
    /// The problems of `node`, read from `file`; empty when it fits.
    static func problems(in node: Yams.Node, file: String) -> [SpecError]
}

/// A `Decodable` type read from YAML by `YAMLValueDecoder`: the one way nested YAML is decoded.
/// Unknown keys (with a did-you-mean), wrong types and values a type's `init(from:)` rejects
/// (`DecodingError.dataCorrupted…` at the offending key) are errors located in the file.
public protocol YAMLDecodable: Decodable, YAMLSchema, Sendable {}

extension YAMLDecodable {
    public static func problems(in node: Yams.Node, file: String) -> [SpecError] {
        do {
            _ = try YAMLValueDecoder.decode(Self.self, from: node, file: file)
            return []
        } catch let error as SpecErrors {
            return error.errors
        } catch let error as SpecError {
            return [error]
        } catch {
            return [SpecError("\(error)", at: YAMLValueDecoder.location(node, file))]
        }
    }

    /// Decodes a checked param value (its order of mapping keys is lost; nothing here depends on it).
    public static func decode(_ value: ParamValue, file: String) throws -> Self {
        try YAMLValueDecoder.decode(Self.self, from: value.yamlNode, file: file)
    }

    /// Decodes a referenced file's text (what the engine read when it keyed the node).
    public static func decode(_ reference: Reference) throws -> Self {
        try YAMLValueDecoder.decode(Self.self, from: reference.yamlNode(), file: reference.path)
    }
}
