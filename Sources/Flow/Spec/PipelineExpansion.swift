import Foundation
import NICBasics
import Yams

/// Which template an expanded node came from, and the value it took on each axis (in the order the
/// axes were written; an evaluator over a model's instances inherits the model's axes first).
public struct NodeInstance: Hashable, Sendable {
    /// The template's name (`model` for `model@mtl-cnn-score`).
    public var template: String
    public var axes: [String]
    public var labels: [String]
    /// For `foreach:` over other nodes: the first template (or plain node) of the chain each item
    /// came from (`encoder` for an evaluator of a model of grids of an encoder's instances)...
    public var source: String?
    /// ...and the template of the item itself (`model`).
    public var from: String?

    public init(template: String, axes: [String], labels: [String], source: String?, from: String? = nil) {
        self.template = template
        self.axes = axes
        self.labels = labels
        self.source = source
        self.from = from
    }

    public func label(_ axis: String) -> String? { axes.firstIndex(of: axis).map { labels[$0] } }
}

/// A `defaults:` entry: every node of `type` gets `value` for `param` unless it writes its own.
public struct DefaultParam {
    public var type: String
    public var typeLocation: SourceLocation
    public var entry: ParamEntry
}

/// The pipeline language on top of plain nodes, resolved before any checking so that every error
/// still points into the file the user wrote:
/// - `include:` other pipeline files (their inputs, defaults and nodes come first);
/// - `defaults:` params per node type;
/// - `matrix:` named axes whose product gives one node per combination, named `template@a-b-c`;
///   an axis written as a mapping names its entries, and an entry that is itself a mapping adds its
///   fields to the instance's params;
/// - `foreach:` over the instances of other nodes (`${item}` is the instance's name, and its axes
///   stay in scope) or over named items (a mapping; `${item}` is the name, `${item.field}` a field);
/// - `${name}` / `${name.field}` substitution in every value of a template.
enum PipelineExpansion {
    /// One node (or input) ready for the plain parser.
    struct Entry {
        var name: String
        var keyNode: Yams.Node
        var body: Yams.Node
        var file: String
        var isInput: Bool
        var instance: NodeInstance?
    }

    struct Result {
        var inputs: [Entry] = []
        var nodes: [Entry] = []
        var defaults: [DefaultParam] = []
        /// Included files, as displayed, in reading order.
        var included: [String] = []
        /// Template name → where it was written and its instances' names.
        var templates: [(name: String, location: SourceLocation, instances: [String])] = []
    }

    /// One file's own sections, before expansion.
    private struct RawFile {
        var file: String
        var inputs: [(Yams.Node, Yams.Node)] = []
        var nodes: [(Yams.Node, Yams.Node)] = []
        var defaults: [String: [String: (DefaultParam)]] = [:]
        var defaultOrder: [(String, String)] = []
    }

    static let templateKeys = ["matrix", "foreach"]
    /// Instances of one template: a typo'd product (1000 × 1000) is refused before it takes the machine.
    static let maxInstances = 10_000

    // MARK: reading files

    /// `top` is the main file's root mapping (already checked for its own keys by the parser).
    static func expand(top: [(Yams.Node, Yams.Node)], file: String, directory: URL, errors: inout [SpecError]) -> Result {
        var result = Result()
        var files: [RawFile] = []
        let mainPath = directory.appendingPathComponent((file as NSString).lastPathComponent).standardizedFileURL.path
        var visited: Set<String> = [mainPath]
        var stack: [String] = [mainPath]
        let defaults = read(top: top, file: file, directory: directory, stack: &stack, visited: &visited,
                            files: &files, included: &result.included, errors: &errors, isMain: true)
        result.defaults = defaults.order.compactMap { defaults.values[$0.0]?[$0.1] }
        expandAll(files, into: &result, errors: &errors)
        return result
    }

    /// A file's defaults after its includes': its own override theirs; two included files that set
    /// the same default differently is an error in both.
    private struct MergedDefaults {
        var values: [String: [String: DefaultParam]] = [:]
        var order: [(String, String)] = []
        mutating func set(_ d: DefaultParam) {
            if values[d.type]?[d.entry.name] == nil { order.append((d.type, d.entry.name)) }
            values[d.type, default: [:]][d.entry.name] = d
        }
    }

    private static func read(top: [(Yams.Node, Yams.Node)], file: String, directory: URL, stack: inout [String],
                             visited: inout Set<String>, files: inout [RawFile], included: inout [String],
                             errors: inout [SpecError], isMain: Bool) -> MergedDefaults {
        func loc(_ node: Yams.Node?) -> SourceLocation { location(node, file) }
        var raw = RawFile(file: file)
        var merged = MergedDefaults()
        for (keyNode, value) in top {
            switch keyNode.scalar?.string {
            case "include":
                let items: [Yams.Node]
                if value.scalar != nil, value.tagName != .null { items = [value] }
                else if let seq = value.sequence { items = Array(seq) }
                else { errors.append(SpecError("'include' must be a pipeline file or a list of them, found \(SpecParser.describeKind(value))", at: loc(value))); continue }
                for item in items {
                    guard let path = item.scalar?.string, !path.isEmpty else {
                        errors.append(SpecError("'include' entries must be pipeline file paths, found \(SpecParser.describeKind(item))", at: loc(item)))
                        continue
                    }
                    let url = URL(fileURLWithPath: (path as NSString).expandingTildeInPath, relativeTo: directory).standardizedFileURL
                    let display = displayPath(path, includer: file)
                    if stack.contains(url.path) {
                        errors.append(SpecError("include cycle: \(display) includes, directly or not, the file including it", at: loc(item)))
                        continue
                    }
                    // A file included twice (two includes sharing a third) is read once.
                    guard visited.insert(url.path).inserted else { continue }
                    let text: String
                    let root: Yams.Node?
                    do {
                        text = try YAMLLimits.readText(url, display: display, at: loc(item))
                        do { root = try YAMLLimits.compose(text, file: display) }
                        catch let error as YamlError {
                            var e = SpecParser.yamlSyntaxError(error, text: text, file: display)
                            e.message += " (included from \(loc(item)))"
                            errors.append(e)
                            continue
                        }
                    } catch let error as SpecError { errors.append(error); continue }
                    catch { errors.append(SpecError("cannot read \(display): \(error)", at: loc(item))); continue }
                    guard let mapping = root?.mapping else {
                        errors.append(SpecError("included file \(display) must be a pipeline (a mapping with 'pipeline' and 'nodes')", at: loc(item)))
                        continue
                    }
                    included.append(display)
                    for (k, _) in mapping {
                        if let key = k.scalar?.string, !SpecParser.topLevelKeys.contains(key) {
                            errors.append(SpecError("unknown key '\(key)' at the top of the pipeline; expected one of \(Suggest.list(SpecParser.topLevelKeys))\(Suggest.hint(for: key, among: SpecParser.topLevelKeys))", at: location(k, display)))
                        }
                    }
                    stack.append(url.path)
                    let theirs = read(top: Array(mapping), file: display, directory: url.deletingLastPathComponent(), stack: &stack,
                                      visited: &visited, files: &files, included: &included, errors: &errors, isMain: false)
                    stack.removeLast()
                    for (type, param) in theirs.order {
                        let d = theirs.values[type]![param]!  // invariant: order lists the keys of values
                        if let other = merged.values[type]?[param], ParamCoercion.plainValue(other.entry.value) != ParamCoercion.plainValue(d.entry.value) {
                            errors.append(SpecError("defaults for '\(type)' param '\(param)' conflict between included files: \(ParamCoercion.plainValue(d.entry.value).display) here, \(ParamCoercion.plainValue(other.entry.value).display) at \(other.entry.valueLocation); set it in the including file (\(file)) to choose", at: d.entry.valueLocation))
                            errors.append(SpecError("defaults for '\(type)' param '\(param)' conflict with \(d.entry.valueLocation) (both included by \(file))", at: other.entry.valueLocation))
                            continue
                        }
                        merged.set(d)
                    }
                }
            case "defaults":
                guard let types = value.mapping else {
                    if value.tagName != .null { errors.append(SpecError("'defaults' must map node types to params, like {evaluator: {bootstrap: 2000}}, found \(SpecParser.describeKind(value))", at: loc(value))) }
                    continue
                }
                for (typeNode, params) in types {
                    guard let type = typeNode.scalar?.string else { errors.append(SpecError("keys must be plain names", at: loc(typeNode))); continue }
                    guard let pMap = params.mapping else {
                        errors.append(SpecError("defaults for '\(type)' must be a mapping of param names to values, found \(SpecParser.describeKind(params))", at: loc(params)))
                        continue
                    }
                    for (pKey, pValue) in pMap {
                        guard let pName = pKey.scalar?.string else { errors.append(SpecError("keys must be plain names", at: loc(pKey))); continue }
                        let d = DefaultParam(type: type, typeLocation: loc(typeNode),
                                             entry: ParamEntry(name: pName, nameLocation: loc(pKey), value: pValue, valueLocation: loc(pValue)))
                        if raw.defaults[type]?[pName] == nil { raw.defaultOrder.append((type, pName)) }
                        raw.defaults[type, default: [:]][pName] = d
                    }
                }
            case "inputs":
                if let m = value.mapping { raw.inputs = Array(m) }
            case "nodes":
                if let m = value.mapping { raw.nodes = Array(m) }
            default:
                break
            }
        }
        for (type, param) in raw.defaultOrder { merged.set(raw.defaults[type]![param]!) }  // invariant: defaultOrder lists the keys of defaults
        files.append(raw)
        return merged
    }

    /// `included.yaml` named from `pipelines/main.yaml` displays as `pipelines/included.yaml`.
    static func displayPath(_ path: String, includer: String) -> String {
        if path.hasPrefix("/") || path.hasPrefix("~") { return path }
        let folder = (includer as NSString).deletingLastPathComponent
        let joined = folder.isEmpty ? path : (folder as NSString).appendingPathComponent(path)
        return (joined as NSString).standardizingPath
    }

    static func location(_ node: Yams.Node?, _ file: String) -> SourceLocation {
        SourceLocation(file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1)
    }

    // MARK: expansion

    /// A variable in a template's scope: `${name}` gives `value`, `${name.f}` a field of `fields`.
    struct Variable {
        var label: String
        var value: Yams.Node
        var fields: Yams.Node?
    }

    private struct Instance {
        var name: String
        var vars: [String: Variable]
        var info: NodeInstance
    }

    private struct Template {
        var name: String
        var keyNode: Yams.Node
        var body: Yams.Node
        var file: String
        var foreach: Yams.Node?
        var foreachKey: Yams.Node?
        var matrix: Yams.Node?
        /// Which of the two comes first in the name.
        var foreachFirst: Bool
    }

    private static func expandAll(_ files: [RawFile], into result: inout Result, errors: inout [SpecError]) {
        var claimed: [String: (SourceLocation, String)] = [:]  // name → (where, file)
        func claim(_ name: String, _ keyNode: Yams.Node, _ file: String, template: String?) -> Bool {
            let here = location(keyNode, file)
            // A plain node may carry an instance's name (`nic expand` writes them so).
            if template == nil, !isInstanceName(name) {
                errors.append(SpecError("invalid node name '\(name)': use letters, digits, '_' and '-', starting with a letter or '_' ('@' only as in an instance's name, template@values)", at: here))
                return false
            }
            if let (first, firstFile) = claimed[name] {
                let what = template.map { "instance '\(name)' of '\($0)'" } ?? "'\(name)'"
                if firstFile == file && template == nil {
                    errors.append(SpecError("duplicate node name '\(name)' (first defined at \(first))", at: here))
                } else {
                    errors.append(SpecError("\(what) is defined again here (first at \(first)); names are unique across a pipeline and the files it includes", at: here))
                    if firstFile != file {
                        errors.append(SpecError("'\(name)' is defined here and again at \(here)", at: first))
                    }
                }
                return false
            }
            claimed[name] = (here, file)
            return true
        }

        for raw in files {
            for (keyNode, body) in raw.inputs {
                guard let name = keyNode.scalar?.string, claim(name, keyNode, raw.file, template: nil) else { continue }
                result.inputs.append(Entry(name: name, keyNode: keyNode, body: body, file: raw.file, isInput: true))
            }
        }

        // Plain nodes and templates in file order; a `foreach` over a template written later waits for it.
        var pending: [Template] = []
        var instancesOf: [String: [Instance]] = [:]
        var plainNames = Set<String>()
        var ordered: [(Int, Entry)] = []  // position keeps the written order
        var position = 0
        var positions: [String: Int] = [:]
        for raw in files {
            for (keyNode, body) in raw.nodes {
                position += 1
                guard let name = keyNode.scalar?.string else { continue }
                guard let mapping = body.mapping, mapping.contains(where: { templateKeys.contains($0.key.scalar?.string ?? "") }) else {
                    if claim(name, keyNode, raw.file, template: nil) {
                        plainNames.insert(name)
                        ordered.append((position, Entry(name: name, keyNode: keyNode, body: body, file: raw.file, isInput: false)))
                    }
                    continue
                }
                var template = Template(name: name, keyNode: keyNode, body: body, file: raw.file, foreachFirst: false)
                for (k, v) in mapping {
                    switch k.scalar?.string {
                    case "matrix": template.matrix = v
                    case "foreach":
                        template.foreach = v
                        template.foreachKey = k
                        template.foreachFirst = template.matrix == nil
                    default: break
                    }
                }
                if !SpecParser.isValidName(name) || name.contains("@") {
                    errors.append(SpecError("invalid node name '\(name)': use letters, digits, '_' and '-', starting with a letter or '_'", at: location(keyNode, raw.file)))
                    continue
                }
                positions[name] = positions[name] ?? position
                pending.append(template)
            }
        }

        var templateOrder: [String] = []
        var templateLocations: [String: SourceLocation] = [:]
        var remaining: [String: Int] = [:]
        for template in pending { remaining[template.name, default: 0] += 1 }
        var progress = true
        while progress && !pending.isEmpty {
            progress = false
            var waiting: [Template] = []
            for template in pending {
                let sources = foreachSources(template) ?? []
                if sources.contains(template.name) {
                    errors.append(SpecError("node '\(template.name)': foreach over its own instances", at: location(template.foreachKey, template.file)))
                    remaining[template.name, default: 1] -= 1
                    continue
                }
                // Wait until every file's template of that name is expanded (an including file may add instances).
                if template.foreach?.mapping == nil, sources.contains(where: { remaining[$0, default: 0] > 0 }) {
                    waiting.append(template)
                    continue
                }
                progress = true
                remaining[template.name, default: 1] -= 1
                let instances = expand(template, instancesOf: instancesOf, plainNames: plainNames, errors: &errors)
                var kept: [Instance] = []
                for instance in instances {
                    guard claim(instance.name, template.keyNode, template.file, template: template.name) else { continue }
                    kept.append(instance)
                }
                // The same template name in an including file adds instances to the included one's.
                instancesOf[template.name, default: []].append(contentsOf: kept)
                if templateLocations[template.name] == nil {
                    templateOrder.append(template.name)
                    templateLocations[template.name] = location(template.keyNode, template.file)
                }
                let body = strippedBody(template.body)
                for instance in kept {
                    let substituted = substitute(body, instance: instance, template: template, errors: &errors)
                    let withParams = mergeAxisParams(substituted, instance: instance, template: template)
                    ordered.append((positions[template.name] ?? 0, Entry(name: instance.name, keyNode: template.keyNode, body: withParams,
                                                                          file: template.file, isInput: false, instance: instance.info)))
                }
            }
            pending = waiting
        }
        for template in pending {
            let missing = (foreachSources(template) ?? []).filter { instancesOf[$0] == nil && !plainNames.contains($0) }
            errors.append(SpecError("node '\(template.name)': foreach over \(Suggest.list(missing)), which wait on each other (a cycle of foreach)", at: location(template.foreachKey, template.file)))
        }
        result.nodes = ordered.enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.map { $0.element.1 }
        result.templates = templateOrder.map { name in (name, templateLocations[name]!, (instancesOf[name] ?? []).map(\.name)) }  // invariant: every ordered name has a location
    }

    /// The node names a `foreach:` iterates over; nil when it iterates over named items (a mapping).
    private static func foreachSources(_ template: Template) -> [String]? {
        guard let foreach = template.foreach else { return nil }
        if let s = foreach.scalar?.string { return [s] }
        if let seq = foreach.sequence { return seq.compactMap { $0.scalar?.string } }
        return nil
    }

    private static func strippedBody(_ body: Yams.Node) -> Yams.Node {
        guard case .mapping(var mapping) = body else { return body }
        mapping = Node.Mapping(mapping.filter { !templateKeys.contains($0.key.scalar?.string ?? "") }, mapping.tag, mapping.style, mapping.mark)
        return .mapping(mapping)
    }

    /// One axis: its name and its entries (label, value node for `${axis}`, fields for `${axis.f}`).
    private typealias Axis = (name: String, entries: [Variable], mergesParams: Bool)

    private static func expand(_ template: Template, instancesOf: [String: [Instance]], plainNames: Set<String>,
                               errors: inout [SpecError]) -> [Instance] {
        let file = template.file
        func loc(_ node: Yams.Node?) -> SourceLocation { location(node, file) }
        var axes: [Axis] = []
        var failed = false
        if let matrix = template.matrix {
            guard let mapping = matrix.mapping, !mapping.isEmpty else {
                errors.append(SpecError("node '\(template.name)': 'matrix' must map axis names to lists or mappings of values, like {enc: [mtl, rgb]}, found \(SpecParser.describeKind(matrix))", at: loc(matrix)))
                return []
            }
            for (axisNode, values) in mapping {
                guard let axis = axisNode.scalar?.string, isVariableName(axis) else {
                    errors.append(SpecError("node '\(template.name)': matrix axis names are letters, digits and '_' (they are used as ${name})", at: loc(axisNode)))
                    failed = true
                    continue
                }
                if axis == "item" {
                    errors.append(SpecError("node '\(template.name)': 'item' is the name foreach gives its items; call this axis something else", at: loc(axisNode)))
                    failed = true
                    continue
                }
                guard let entries = axisEntries(values, what: "node '\(template.name)' matrix axis '\(axis)'", file: file, errors: &errors) else { failed = true; continue }
                axes.append((axis, entries, true))
            }
        }
        var sources: [[Instance]]?  // per foreach source, its instances
        if let foreach = template.foreach {
            if let names = foreachSources(template), foreach.mapping == nil {
                var lists: [[Instance]] = []
                let items = foreach.scalar != nil ? [foreach] : Array(foreach.sequence ?? [])
                for item in items {
                    guard let name = item.scalar?.string, !name.isEmpty else {
                        errors.append(SpecError("node '\(template.name)': foreach lists node names, found \(SpecParser.describeKind(item))", at: loc(item)))
                        failed = true
                        continue
                    }
                    if let found = instancesOf[name] { lists.append(found) }
                    else if plainNames.contains(name) {
                        lists.append([Instance(name: name, vars: [:], info: NodeInstance(template: name, axes: [], labels: [], source: nil))])
                    } else {
                        errors.append(SpecError("node '\(template.name)': foreach over '\(name)', which is not a node of this pipeline\(Suggest.hint(for: name, among: Array(instancesOf.keys) + Array(plainNames))); to iterate over values write foreach: {label: value, ...} or a matrix", at: loc(item)))
                        failed = true
                    }
                }
                _ = names
                sources = lists
            } else if foreach.mapping != nil {
                guard let entries = axisEntries(foreach, what: "node '\(template.name)' foreach", file: file, errors: &errors) else { return [] }
                axes.insert(("item", entries, false), at: template.foreachFirst ? 0 : axes.count)
            } else {
                errors.append(SpecError("node '\(template.name)': 'foreach' takes a node name, a list of node names, or a mapping of named items, found \(SpecParser.describeKind(foreach))", at: loc(foreach)))
                return []
            }
        }
        if failed { return [] }

        // Items of a foreach over nodes: (label, vars inherited, axes inherited, source).
        typealias Item = (label: String, name: String, vars: [String: Variable], axes: [String], labels: [String], source: String, from: String)
        var items: [Item]?
        if let sources {
            let several = sources.count > 1
            items = sources.flatMap { list in
                list.map { source -> Item in
                    let suffix = source.name.split(separator: "@", maxSplits: 1).dropFirst().first.map(String.init) ?? source.name
                    let label = several && source.name.contains("@") ? source.info.template + "-" + suffix : suffix
                    // Through a chain of foreach (eval of model of grids of encoder), the first template.
                    return (label, source.name, source.vars, source.info.axes, source.info.labels, source.info.source ?? source.info.template, source.info.template)
                }
            }
        }

        let count = axes.reduce(items?.count ?? 1) { $0.multipliedReportingOverflow(by: $1.entries.count).partialValue }
        guard count <= maxInstances, count >= 0 else {
            errors.append(SpecError("node '\(template.name)': \(count) combinations; a template gives at most \(maxInstances) nodes", at: location(template.keyNode, file)))
            return []
        }
        var combos: [[(String, Variable)]] = [[]]
        for axis in axes {
            combos = combos.flatMap { combo in axis.entries.map { combo + [(axis.name, $0)] } }
        }
        var out: [Instance] = []
        for item in items ?? [nil] as [Item?] {
            for combo in combos {
                var vars = item?.vars ?? [:]
                var axisNames = item?.axes ?? []
                var labels = item?.labels ?? []
                if let item {
                    // No mark of its own: a reference to it is located where `${item}` is written.
                    vars["item"] = Variable(label: item.label, value: .scalar(.init(item.name, .implicit, .plain, nil)), fields: nil)
                }
                var ownLabels: [String] = []
                for (axis, v) in combo {
                    vars[axis] = v
                    ownLabels.append(v.label)
                    if let i = axisNames.firstIndex(of: axis) { labels[i] = v.label } else { axisNames.append(axis); labels.append(v.label) }
                }
                let parts = template.foreachFirst ? [item?.label].compactMap { $0 } + ownLabels : ownLabels + [item?.label].compactMap { $0 }
                let name = template.name + "@" + parts.joined(separator: "-")
                out.append(Instance(name: name, vars: vars,
                                    info: NodeInstance(template: template.name, axes: axisNames, labels: labels, source: item?.source, from: item?.from)))
            }
        }
        return out
    }

    /// A list of scalars (each its own label) or a mapping of labels to values.
    private static func axisEntries(_ values: Yams.Node, what: String, file: String, errors: inout [SpecError]) -> [Variable]? {
        var entries: [Variable] = []
        var seen = Set<String>()
        func add(_ label: String, _ keyNode: Yams.Node, _ value: Yams.Node, fields: Yams.Node?) -> Bool {
            guard isLabel(label) else {
                errors.append(SpecError("\(what): '\(label)' cannot be part of a node name (letters, digits, '_' and '-'); name it: write the axis as a mapping {name: \(label)}", at: location(keyNode, file)))
                return false
            }
            guard seen.insert(label).inserted else {
                errors.append(SpecError("\(what): '\(label)' appears twice", at: location(keyNode, file)))
                return false
            }
            entries.append(Variable(label: label, value: value, fields: fields))
            return true
        }
        if let seq = values.sequence, !seq.isEmpty {
            for item in seq {
                guard let s = item.scalar?.string, item.tagName != .null else {
                    errors.append(SpecError("\(what): list entries must be plain values (to give an entry several fields, write the axis as a mapping {name: {field: value}}), found \(SpecParser.describeKind(item))", at: location(item, file)))
                    return nil
                }
                guard add(s, item, item, fields: nil) else { return nil }
            }
        } else if let mapping = values.mapping, !mapping.isEmpty {
            for (k, v) in mapping {
                guard let s = k.scalar?.string else { return nil }
                let keyValue = Yams.Node.scalar(.init(s, .implicit, .plain, k.mark))
                guard add(s, k, keyValue, fields: v) else { return nil }
            }
        } else {
            errors.append(SpecError("\(what) must be a non-empty list or mapping of values, found \(SpecParser.describeKind(values))", at: location(values, file)))
            return nil
        }
        return entries
    }

    static func isInstanceName(_ s: String) -> Bool {
        let parts = s.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        return SpecParser.isValidName(parts[0]) && (parts.count == 1 || isLabel(parts[1]))
    }

    static func isVariableName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first == "_" || CharacterSet.letters.contains(first) else { return false }
        return s.unicodeScalars.allSatisfy { $0 == "_" || CharacterSet.alphanumerics.contains($0) }
    }

    static func isLabel(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy { $0 == "_" || $0 == "-" || CharacterSet.alphanumerics.contains($0) }
    }

    /// An axis entry written as a mapping adds its fields as params (the node's own params win).
    private static func mergeAxisParams(_ body: Yams.Node, instance: Instance, template: Template) -> Yams.Node {
        guard case .mapping(let mapping) = body else { return body }
        var axisNames: [String] = []
        if let matrix = template.matrix?.mapping { axisNames = matrix.compactMap { $0.key.scalar?.string } }
        var added: [(Yams.Node, Yams.Node)] = []
        for axis in axisNames {
            guard let fields = instance.vars[axis]?.fields?.mapping else { continue }
            for (k, v) in fields where !added.contains(where: { $0.0.scalar?.string == k.scalar?.string }) { added.append((k, v)) }
        }
        if added.isEmpty { return body }
        var pairs = Array(mapping)
        if let i = pairs.firstIndex(where: { $0.0.scalar?.string == "params" }), let existing = pairs[i].1.mapping {
            let own = Set(existing.compactMap { $0.key.scalar?.string })
            let merged = added.filter { !own.contains($0.0.scalar?.string ?? "") } + Array(existing)
            pairs[i].1 = .mapping(.init(merged, existing.tag, existing.style, existing.mark))
        } else if let i = pairs.firstIndex(where: { $0.0.scalar?.string == "params" }), pairs[i].1.tagName == .null || pairs[i].1.scalar?.string == "" {
            pairs[i].1 = .mapping(.init(added, .implicit, .any, pairs[i].1.mark))
        } else if !pairs.contains(where: { $0.0.scalar?.string == "params" }) {
            pairs.append((.scalar(.init("params", .implicit, .plain, template.keyNode.mark)), .mapping(.init(added, .implicit, .any, template.matrix?.mark))))
        }
        return .mapping(.init(pairs, mapping.tag, mapping.style, mapping.mark))
    }

    // MARK: substitution

    /// Replaces `${...}` in every scalar value (keys stay as written). A scalar that is exactly one
    /// `${...}` takes the variable's value whole (a list stays a list, 20 stays an int); otherwise the
    /// pieces are joined as text.
    private static func substitute(_ node: Yams.Node, instance: Instance, template: Template, errors: inout [SpecError]) -> Yams.Node {
        switch node {
        case .scalar(let scalar):
            guard scalar.string.contains("${") else { return node }
            do { return try interpolate(scalar, vars: instance.vars) }
            catch let problem as SubstitutionProblem {
                let message = "node '\(instance.name)' (from template '\(template.name)'): \(problem.message)"
                let at = location(node, template.file)
                // One template mistake would otherwise be reported once per instance.
                if !errors.contains(where: { $0.location == at && $0.message.hasSuffix(problem.message) }) {
                    errors.append(SpecError(message, at: at))
                }
                return node
            } catch { return node }
        case .mapping(let mapping):
            let pairs = mapping.map { ($0.key, substitute($0.value, instance: instance, template: template, errors: &errors)) }
            return .mapping(.init(pairs, mapping.tag, mapping.style, mapping.mark))
        case .sequence(let seq):
            return .sequence(.init(seq.map { substitute($0, instance: instance, template: template, errors: &errors) }, seq.tag, seq.style, seq.mark))
        case .alias:
            return node
        }
    }

    struct SubstitutionProblem: Error { var message: String }

    static func interpolate(_ scalar: Node.Scalar, vars: [String: Variable]) throws -> Yams.Node {
        let text = scalar.string
        var pieces: [(literal: String, expr: String?)] = []
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                throw SubstitutionProblem(message: "'${' without a closing '}' in \"\(text)\"")
            }
            pieces.append((String(rest[..<start.lowerBound]), String(rest[start.upperBound..<end]).trimmingCharacters(in: .whitespaces)))
            rest = rest[rest.index(after: end)...]
        }
        pieces.append((String(rest), nil))
        if pieces.count == 2, pieces[0].literal.isEmpty, pieces[1].literal.isEmpty, let expr = pieces[0].expr {
            var whole = try resolve(expr, vars: vars)
            if whole.mark == nil, case .scalar(var s) = whole {
                s.mark = scalar.mark
                whole = .scalar(s)
            }
            return whole
        }
        var out = ""
        for piece in pieces {
            out += piece.literal
            guard let expr = piece.expr else { continue }
            let value = try resolve(expr, vars: vars)
            guard let s = value.scalar?.string else {
                throw SubstitutionProblem(message: "'${\(expr)}' is \(SpecParser.describeKind(value)), which cannot be part of the text \"\(text)\"; write it alone as the whole value")
            }
            out += s
        }
        var result = scalar
        result.string = out
        if scalar.style != .plain { result.tag = scalar.tag }
        return .scalar(result)
    }

    static func resolve(_ expr: String, vars: [String: Variable]) throws -> Yams.Node {
        let path = expr.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        let known = vars.keys.sorted()
        guard let head = path.first, let variable = vars[head] else {
            throw SubstitutionProblem(message: "unknown variable '${\(expr)}'\(Suggest.hint(for: path.first ?? expr, among: known)); this template has \(known.isEmpty ? "none" : Suggest.list(known))")
        }
        if path.count == 1 { return variable.value }
        var current = variable.fields
        var walked = head + "[\(variable.label)]"
        for field in path.dropFirst() {
            guard let mapping = current?.mapping else {
                throw SubstitutionProblem(message: "'${\(expr)}': \(walked) has no fields (it is \(current.map(SpecParser.describeKind) ?? "a plain value"))")
            }
            guard let next = mapping.first(where: { $0.key.scalar?.string == field })?.value else {
                let names = mapping.compactMap { $0.key.scalar?.string }
                throw SubstitutionProblem(message: "'${\(expr)}': \(walked) has no field '\(field)'\(Suggest.hint(for: field, among: names)); it has \(Suggest.list(names))")
            }
            current = next
            walked += "." + field
        }
        return current!  // invariant: the loop ran at least once and set it
    }
}
