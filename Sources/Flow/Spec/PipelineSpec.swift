import Foundation
import NICBasics
import Yams

/// A pipeline as written: names, types, wiring and raw parameter values with their source locations.
/// Checking against node types (ports, param types, files on disk) happens in `PipelineGraph`.
public struct PipelineSpec {
    public var name: String
    /// The spec file as the user named it, for messages.
    public var file: String
    /// Relative paths in params resolve against this folder (see `baseDirectory(for:)`).
    public var baseDirectory: URL
    public var nodes: [NodeSpec]
    /// The spec's text, kept for run records.
    public var source: String
    /// `defaults:` after includes (see `PipelineExpansion`), already applied to `nodes`.
    public var defaults: [DefaultParam] = []
    /// Files read through `include:`, as displayed.
    public var included: [String] = []
    /// Each `matrix:`/`foreach:` node as written and the names of its instances.
    public var templates: [(name: String, location: SourceLocation, instances: [String])] = []

    public func node(named name: String) -> NodeSpec? { nodes.first { $0.name == name } }
}

public struct NodeSpec {
    public var name: String
    public var location: SourceLocation
    public var type: String
    public var typeLocation: SourceLocation
    public var inputs: [InputBinding]
    public var params: [ParamEntry]
    /// Where params are written (for "missing required param" messages).
    public var paramsLocation: SourceLocation
    /// Declared under `inputs:` rather than `nodes:`.
    public var isPipelineInput: Bool
    /// Set when the node is one instance of a `matrix:`/`foreach:` template.
    public var instance: NodeInstance? = nil
}

public struct InputBinding {
    public var port: String
    public var portLocation: SourceLocation
    /// The upstream node, and its output port if written as `node.port`.
    public var sourceNode: String
    public var sourcePort: String?
    public var sourceLocation: SourceLocation
}

public struct ParamEntry {
    public var name: String
    public var nameLocation: SourceLocation
    public var value: Yams.Node
    public var valueLocation: SourceLocation
    /// Came from `defaults:` rather than the node's own params.
    public var fromDefaults = false
}

public enum SpecParser {
    static let topLevelKeys = ["pipeline", "description", "base", "include", "defaults", "inputs", "nodes"]
    static let nodeKeys = ["type", "in", "params", "description", "matrix", "foreach"]

    public static func parse(file url: URL, displayPath: String? = nil) throws -> PipelineSpec {
        let display = displayPath ?? url.path
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw SpecErrors([SpecError("pipeline file not found: \(url.path)", at: nil)])
        }
        let text: String
        do { text = try YAMLLimits.readText(url, display: display, at: SourceLocation(file: display, line: 1, column: 1)) }
        catch let error as SpecError { throw SpecErrors([error]) }
        return try parse(text: text, file: display, directory: url.deletingLastPathComponent())
    }

    public static func parse(text: String, file: String, directory: URL) throws -> PipelineSpec {
        var errors: [SpecError] = []
        func loc(_ mark: Mark?) -> SourceLocation {
            SourceLocation(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1)
        }
        func fail(_ message: String, _ node: Yams.Node?) { errors.append(SpecError(message, at: loc(node?.mark))) }

        let root: Yams.Node
        do {
            guard let composed = try YAMLLimits.compose(text, file: file) else {
                throw SpecErrors([SpecError("the pipeline file is empty; expected a mapping with 'pipeline' and 'nodes'", at: loc(nil))])
            }
            root = composed
        } catch let error as YamlError {
            throw SpecErrors([yamlSyntaxError(error, text: text, file: file)])
        } catch let error as SpecError {
            throw SpecErrors([error])
        }

        guard let top = root.mapping else {
            throw SpecErrors([SpecError("expected a mapping with keys 'pipeline' and 'nodes' at the top of the file, found \(describeKind(root))", at: loc(root.mark))])
        }
        var name = ""
        var base: String?
        var inputsNode: Yams.Node?
        var nodesNode: Yams.Node?
        for (keyNode, value) in top {
            guard let key = keyNode.scalar?.string else { fail("keys must be plain names", keyNode); continue }
            switch key {
            case "pipeline":
                if let s = value.scalar?.string, !s.isEmpty, value.tagName != .null { name = s }
                else { fail("'pipeline' must be a name (a non-empty string), found \(describeKind(value))", value) }
            case "description":
                if value.scalar == nil { fail("'description' must be a string", value) }
            case "base":
                if let s = value.scalar?.string { base = s } else { fail("'base' must be a folder path", value) }
            case "inputs": inputsNode = value
            case "nodes": nodesNode = value
            case "include", "defaults": break  // read by PipelineExpansion
            default:
                fail("unknown key '\(key)' at the top of the pipeline; expected one of \(Suggest.list(topLevelKeys))\(Suggest.hint(for: key, among: topLevelKeys))", keyNode)
            }
        }
        if top.first(where: { $0.key.scalar?.string == "pipeline" }) == nil {
            fail("missing required key 'pipeline' (the pipeline's name)", root)
        }
        if nodesNode == nil && inputsNode == nil && !top.contains(where: { $0.key.scalar?.string == "include" }) {
            fail("missing required key 'nodes' (the mapping of node names to node definitions)", root)
        }

        if let inputsNode, inputsNode.mapping == nil, inputsNode.tagName != .null {
            fail("'inputs' must be a mapping of input names to {kind: ..., ...}, found \(describeKind(inputsNode))", inputsNode)
        }
        if let nodesNode, nodesNode.mapping == nil, nodesNode.tagName != .null {
            fail("'nodes' must be a mapping of node names to node definitions, found \(describeKind(nodesNode))", nodesNode)
        }
        // Includes, defaults, matrix and foreach become plain nodes here, each keeping the file and
        // line it was written at.
        let expanded = PipelineExpansion.expand(top: Array(top), file: file, directory: directory, errors: &errors)
        var nodes: [NodeSpec] = []
        for entry in expanded.inputs {
            let entryFile = entry.file
            func eloc(_ mark: Mark?) -> SourceLocation { SourceLocation(file: entryFile, line: mark?.line ?? 1, column: mark?.column ?? 1) }
            func efail(_ message: String, _ node: Yams.Node?) { errors.append(SpecError(message, at: eloc(node?.mark))) }
            let nodeName = entry.name, keyNode = entry.keyNode, value = entry.body
            guard let body = value.mapping else {
                efail("input '\(nodeName)' must be a mapping like {kind: table, path: data/labels.csv}, found \(describeKind(value))", value)
                continue
            }
            var kind: (String, Yams.Node)?
            var params: [ParamEntry] = []
            for (pKey, pValue) in body {
                guard let pName = pKey.scalar?.string else { efail("keys must be plain names", pKey); continue }
                if pName == "kind" {
                    if let s = pValue.scalar?.string { kind = (s, pValue) } else { efail("'kind' must be a node type name", pValue) }
                } else {
                    params.append(ParamEntry(name: pName, nameLocation: eloc(pKey.mark), value: pValue, valueLocation: eloc(pValue.mark)))
                }
            }
            guard let kind else { efail("input '\(nodeName)' needs a 'kind' (a source node type such as 'table' or 'files')", value); continue }
            nodes.append(NodeSpec(name: nodeName, location: eloc(keyNode.mark), type: kind.0, typeLocation: eloc(kind.1.mark),
                                  inputs: [], params: params, paramsLocation: eloc(value.mark), isPipelineInput: true))
        }
        for entry in expanded.nodes {
            let entryFile = entry.file
            func eloc(_ mark: Mark?) -> SourceLocation { SourceLocation(file: entryFile, line: mark?.line ?? 1, column: mark?.column ?? 1) }
            func efail(_ message: String, _ node: Yams.Node?) { errors.append(SpecError(message, at: eloc(node?.mark))) }
            if var node = parseNode(name: entry.name, keyNode: entry.keyNode, body: entry.body, loc: eloc, fail: efail) {
                node.instance = entry.instance
                nodes.append(node)
            }
        }
        // A node's own params win over its type's defaults.
        let defaultsByType = Dictionary(grouping: expanded.defaults, by: \.type)
        for i in nodes.indices {
            guard let defaults = defaultsByType[nodes[i].type] else { continue }
            let own = Set(nodes[i].params.map(\.name))
            for d in defaults where !own.contains(d.entry.name) {
                var entry = d.entry
                entry.fromDefaults = true
                nodes[i].params.append(entry)
            }
        }

        if !errors.isEmpty { throw SpecErrors(errors) }
        let baseURL = base.map { URL(fileURLWithPath: $0, relativeTo: directory).standardizedFileURL } ?? defaultBase(for: directory)
        return PipelineSpec(name: name, file: file, baseDirectory: baseURL, nodes: nodes, source: text,
                            defaults: expanded.defaults, included: expanded.included, templates: expanded.templates)
    }

    private static func parseNode(name: String, keyNode: Yams.Node, body: Yams.Node,
                                  loc: (Mark?) -> SourceLocation, fail: (String, Yams.Node?) -> Void) -> NodeSpec? {
        guard let mapping = body.mapping else {
            fail("node '\(name)' must be a mapping with 'type' (and 'in', 'params'), found \(describeKind(body))", body)
            return nil
        }
        var type: (String, Yams.Node)?
        var inputs: [InputBinding] = []
        var params: [ParamEntry] = []
        var paramsLocation = loc(body.mark)
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else { fail("keys must be plain names", keyNode); continue }
            switch key {
            case "type":
                if let s = value.scalar?.string, !s.isEmpty { type = (s, value) }
                else { fail("node '\(name)': 'type' must be a node type name, found \(describeKind(value))", value) }
            case "description":
                break
            case "in":
                guard let inMap = value.mapping else {
                    if value.tagName != .null {
                        fail("node '\(name)': 'in' must map input ports to upstream nodes, like {table: labels}, found \(describeKind(value))", value)
                    }
                    continue
                }
                for (portNode, sourceNode) in inMap {
                    guard let port = portNode.scalar?.string else { fail("keys must be plain names", portNode); continue }
                    guard let ref = sourceNode.scalar?.string, !ref.isEmpty else {
                        fail("node '\(name)' input '\(port)' must name an upstream node ('node' or 'node.port'), found \(describeKind(sourceNode))", sourceNode)
                        continue
                    }
                    let parts = ref.split(separator: ".", maxSplits: 1).map(String.init)
                    inputs.append(InputBinding(port: port, portLocation: loc(portNode.mark), sourceNode: parts[0],
                                               sourcePort: parts.count > 1 ? parts[1] : nil, sourceLocation: loc(sourceNode.mark)))
                }
            case "params":
                paramsLocation = loc(value.mark)
                guard let pMap = value.mapping else {
                    if value.tagName != .null {
                        fail("node '\(name)': 'params' must be a mapping of parameter names to values, found \(describeKind(value))", value)
                    }
                    continue
                }
                for (pKey, pValue) in pMap {
                    guard let pName = pKey.scalar?.string else { fail("keys must be plain names", pKey); continue }
                    params.append(ParamEntry(name: pName, nameLocation: loc(pKey.mark), value: pValue, valueLocation: loc(pValue.mark)))
                }
            default:
                fail("node '\(name)': unknown key '\(key)'; expected one of \(Suggest.list(nodeKeys))\(Suggest.hint(for: key, among: nodeKeys))", keyNode)
            }
        }
        guard let type else {
            fail("node '\(name)' needs a 'type' (run `nic nodes` for the list)", keyNode)
            return nil
        }
        return NodeSpec(name: name, location: loc(keyNode.mark), type: type.0, typeLocation: loc(type.1.mark),
                        inputs: inputs, params: params, paramsLocation: paramsLocation, isPipelineInput: false)
    }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || CharacterSet.letters.contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0 == "_" || $0 == "-" || CharacterSet.alphanumerics.contains($0) }
    }

    /// Pipelines usually live in `pipelines/` and name shared definitions as `nodes/...`: relative paths
    /// resolve against the nearest folder at or above the pipeline that holds a `nodes/` folder, else the
    /// pipeline's own folder. `base:` in the spec overrides this.
    static func defaultBase(for directory: URL) -> URL {
        var candidate = directory.standardizedFileURL
        while true {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("nodes").path, isDirectory: &isDir), isDir.boolValue {
                return candidate
            }
            let parent = candidate.deletingLastPathComponent()
            if parent.path == candidate.path { return directory.standardizedFileURL }
            candidate = parent
        }
    }

    static func describeKind(_ node: Yams.Node) -> String { YAMLValueDecoder.describeKind(node) }

    static func yamlSyntaxError(_ error: YamlError, text: String, file: String) -> SpecError {
        func at(_ mark: Mark) -> SourceLocation { SourceLocation(file: file, line: mark.line, column: mark.column) }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _), .composer(let context, let problem, let mark, _):
            let ctx = context.map { " (\($0.text) at line \($0.mark.line))" } ?? ""
            return SpecError("YAML syntax: \(problem)\(ctx)", at: at(mark))
        case .duplicatedKeysInMapping(let duplicates, let context):
            let key = duplicates.first ?? "?"
            // Yams points at the first occurrence; the mistake is usually the later one.
            let lines = text.components(separatedBy: "\n")
            var later = SourceLocation(file: file, line: context.mark.line, column: context.mark.column)
            for (i, line) in lines.enumerated() where i + 1 > context.mark.line {
                let trimmed = line.drop(while: { $0 == " " })
                if trimmed.hasPrefix(key + ":") || trimmed.hasPrefix("\"\(key)\":") || trimmed.hasPrefix("'\(key)':") {
                    later = SourceLocation(file: file, line: i + 1, column: line.count - trimmed.count + 1)
                    break
                }
            }
            return SpecError("duplicate key '\(key)' (first defined at \(file):\(context.mark.line):\(context.mark.column)); names in a mapping must be unique", at: later)
        case .reader(let problem, let offset, _, _):
            var line = 1, column = 1
            if let offset {
                for ch in text.prefix(offset) { if ch == "\n" { line += 1; column = 1 } else { column += 1 } }
            }
            return SpecError("cannot read YAML: \(problem)", at: SourceLocation(file: file, line: line, column: column))
        default:
            return SpecError("YAML error: \(error)", at: SourceLocation(file: file, line: 1, column: 1))
        }
    }
}
