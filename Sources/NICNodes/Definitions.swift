import Flow
import Foundation
import Neural
import NICBasics

/// The architectures under `nodes/` that node params reference are checked at `nic validate` by the
/// decoder that reads them at run time (every layer's parameters, a bag model's `pool` and `after`,
/// a pair head's `loss`), always from the text the node was keyed on, never from the path again.
/// Heads are `HeadFile`s (Heads.swift).
extension Architecture: YAMLDecodable {
    /// The referenced architecture, decoded from the text the node was keyed on.
    init(_ reference: Reference) throws {
        self = try Architecture.decode(reference)
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
