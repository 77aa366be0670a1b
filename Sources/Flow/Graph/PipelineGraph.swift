import Foundation
import NICBasics
import Yams

/// A node after checking: its type is known, every param is typed (defaults filled in), every input is
/// wired to an output of the right type.
public struct GraphNode {
    public let name: String
    public let spec: NodeSpec
    public let type: any NodeType.Type
    /// Typed values handed to the node. File-like params hold absolute paths; references hold the parsed YAML.
    public let params: [String: ParamValue]
    /// Params naming something on disk (files, folders, references), by param name.
    public let paths: [String: URL]
    /// Input port → (upstream node, upstream output port).
    public let inputs: [String: (node: String, port: String)]
    /// Referenced files' text as read when the node was checked (its content is in `params`), by param name.
    public let texts: [String: String]
}

/// A checked pipeline: nodes in a topological order (each after all of its inputs).
public struct PipelineGraph {
    public let spec: PipelineSpec
    public let nodes: [GraphNode]
    private let index: [String: Int]

    public func node(named name: String) -> GraphNode? { index[name].map { nodes[$0] } }

    /// Checks `spec` against the registry; throws every problem found, each with its location.
    public static func build(_ spec: PipelineSpec, registry: NodeRegistry) throws -> PipelineGraph {
        var errors: [SpecError] = []
        var coercion = ParamCoercion(file: spec.file, baseDirectory: spec.baseDirectory)
        var typed: [String: any NodeType.Type] = [:]
        for node in spec.nodes {
            guard let type = registry[node.type] else {
                errors.append(SpecError("node '\(node.name)': unknown node type '\(node.type)'\(Suggest.hint(for: node.type, among: registry.names)); run `nic nodes` for the list", at: node.typeLocation))
                continue
            }
            if node.isPipelineInput && !type.inputs.isEmpty {
                errors.append(SpecError("input '\(node.name)': kind '\(node.type)' is not a source (it has input ports); declare it under 'nodes' instead", at: node.typeLocation))
            }
            typed[node.name] = type
        }
        let specByName = Dictionary(spec.nodes.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        // A mistake in `defaults:` is reported once, where it is written, not once per node.
        var reportedDefaults = Set<SourceLocation>()
        for d in spec.defaults where registry[d.type] == nil && reportedDefaults.insert(d.typeLocation).inserted {
            errors.append(SpecError("defaults: unknown node type '\(d.type)'\(Suggest.hint(for: d.type, among: registry.names)); run `nic nodes` for the list", at: d.typeLocation))
        }

        var built: [String: GraphNode] = [:]
        var reportedDefaultErrors = Set<SpecError>()
        // A problem inside a shared file (a head of heads_dir) is reported once, naming every node it reaches.
        var fileProblems: [(problem: ParamProblem, nodes: [String])] = []
        // A definitions folder is read once per check, so every node naming it gets the same texts.
        var definitionFolders: [URL: Result<[String: String], Error>] = [:]
        var applied = spec
        for (index, node) in spec.nodes.enumerated() {
            guard let type = typed[node.name] else { continue }
            let errorsBefore = errors.count
            // Params.
            var params: [String: ParamValue] = [:]
            var paths: [String: URL] = [:]
            var texts: [String: String] = [:]
            let declared = Dictionary(type.params.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            var given = Set<String>()
            var unapplied = Set<String>()
            // What a node chooses (e.g. its training mode) is known before the params that depend on it.
            let choices = Set(type.params.compactMap { $0.readWhen?.param })
            for entry in node.params.filter({ choices.contains($0.name) }) + node.params.filter({ !choices.contains($0.name) }) {
                guard let param = declared[entry.name] else {
                    let names = type.params.map(\.name)
                    if entry.fromDefaults {
                        if reportedDefaults.insert(entry.nameLocation).inserted {
                            errors.append(SpecError("defaults for '\(type.name)': unknown param '\(entry.name)'\(Suggest.hint(for: entry.name, among: names)); it takes \(Suggest.list(names))", at: entry.nameLocation))
                        }
                        continue
                    }
                    errors.append(SpecError("node '\(node.name)': unknown param '\(entry.name)' for type '\(type.name)'\(Suggest.hint(for: entry.name, among: names)); it takes \(Suggest.list(names))", at: entry.nameLocation))
                    continue
                }
                let what = entry.fromDefaults ? "defaults for '\(type.name)': param '\(entry.name)'" : "node '\(node.name)' param '\(entry.name)'"
                let taken = take(entry, as: param, what: what, coercion: &coercion)
                // A default is checked once, where it is written, whichever nodes it reaches.
                errors += entry.fromDefaults ? taken.problems.filter { reportedDefaultErrors.insert($0).inserted } : taken.problems
                // A default applies where it fits: a node whose choice ignores the param keeps the declared
                // default, so neither its run, its key nor `nic expand` sees it (a param written on the node is refused below).
                if entry.fromDefaults, let condition = param.readWhen,
                   let chosen = params[condition.param]?.stringValue ?? declared[condition.param]?.defaultValue?.stringValue,
                   !condition.values.contains(chosen) {
                    unapplied.insert(entry.name)
                    continue
                }
                given.insert(entry.name)
                guard let value = taken.value else { continue }
                params[param.name] = value
                paths[param.name] = taken.path
                texts[param.name] = taken.text
            }
            for param in type.params where !given.contains(param.name) {
                if let defaultValue = param.defaultValue {
                    params[param.name] = defaultValue
                    // A default path (e.g. `nodes/heads`) resolves like a written one and enters the key by content.
                    if let relative = defaultValue.stringValue {
                        switch param.type {
                        case .file, .directory, .reference, .definitions:
                            let url = coercion.resolve(relative)
                            var isDir: ObjCBool = false
                            // A missing default is no error here: the node may not need it (it says so if it does).
                            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
                                params[param.name] = .null
                                continue
                            }
                            paths[param.name] = url
                            params[param.name] = .string(url.path)
                            if case .reference = param.type {
                                do {
                                    let loaded = try loadReference(url, from: node.location)
                                    params[param.name] = loaded.content
                                    texts[param.name] = loaded.text
                                    errors += Self.schemaProblems(param, loaded, url: url, what: "node '\(node.name)' param '\(param.name)' (default)", from: node.location)
                                }
                                catch let error as SpecError { errors.append(error) }
                            }
                        default: break
                        }
                    }
                } else {
                    errors.append(SpecError("node '\(node.name)': missing required param '\(param.name)' (\(param.type): \(param.doc))", at: node.isPipelineInput ? node.location : node.paramsLocation))
                }
            }
            // A param that only another choice reads (another training mode's) would be silently ignored.
            for entry in node.params where !entry.fromDefaults {
                guard let condition = declared[entry.name]?.readWhen, let chosen = params[condition.param]?.stringValue,
                      let refusal = condition.refusal(of: entry.name, chosen: chosen) else { continue }
                errors.append(SpecError("node '\(node.name)': \(refusal)", at: entry.nameLocation))
            }
            for param in type.params {
                guard case .definitions = param.type, let url = paths[param.name] else { continue }
                let read = definitionFolders[url] ?? Result { try Self.definitionTexts(url) }
                definitionFolders[url] = read
                switch read {
                case .success(let files):
                    for (relative, text) in files { texts[DefinitionFolder.textKey(param: param.name, relative: relative)] = text }
                case .failure(let error):
                    let written = node.params.first { $0.name == param.name }
                    errors.append(SpecError("node '\(node.name)' param '\(param.name)': \(error)", at: written?.valueLocation ?? node.location))
                }
            }
            if errors.count == errorsBefore {
                for problem in type.problems(values: params, paths: paths, texts: texts) {
                    guard let location = problem.location else {
                        let written = node.params.first { $0.name == problem.param }
                        errors.append(SpecError("node '\(node.name)' param '\(problem.param)': \(problem.message)", at: written?.valueLocation ?? node.paramsLocation))
                        continue
                    }
                    if let i = fileProblems.firstIndex(where: { $0.problem.message == problem.message && $0.problem.param == problem.param && $0.problem.location == location }) {
                        fileProblems[i].nodes.append(node.name)
                    } else {
                        fileProblems.append((problem, [node.name]))
                    }
                }
            }
            var node = node
            node.params.removeAll { $0.fromDefaults && unapplied.contains($0.name) }
            applied.nodes[index] = node

            // Inputs.
            var inputs: [String: (node: String, port: String)] = [:]
            let inputPorts = Dictionary(type.inputs.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            for binding in node.inputs {
                guard let port = inputPorts[binding.port] else {
                    let names = type.inputs.map(\.name)
                    errors.append(SpecError("node '\(node.name)': unknown input port '\(binding.port)' for type '\(type.name)'\(Suggest.hint(for: binding.port, among: names)); it takes \(Suggest.list(names))", at: binding.portLocation))
                    continue
                }
                guard let upstreamSpec = specByName[binding.sourceNode] else {
                    let names = spec.nodes.map(\.name).filter { $0 != node.name }
                    errors.append(SpecError("node '\(node.name)' input '\(binding.port)' refers to '\(binding.sourceNode)', which is not a node or input of this pipeline\(Suggest.hint(for: binding.sourceNode, among: names))", at: binding.sourceLocation))
                    continue
                }
                guard let upstreamType = typed[upstreamSpec.name] else { continue }
                let outputs = upstreamType.outputs
                let output: PortSpec
                if let portName = binding.sourcePort {
                    guard let found = outputs.first(where: { $0.name == portName }) else {
                        errors.append(SpecError("node '\(node.name)' input '\(binding.port)': node '\(upstreamSpec.name)' (\(upstreamType.name)) has no output '\(portName)'\(Suggest.hint(for: portName, among: outputs.map(\.name))); its outputs are \(Suggest.list(outputs.map(\.name)))", at: binding.sourceLocation))
                        continue
                    }
                    output = found
                } else if outputs.count == 1 {
                    output = outputs[0]
                } else if let sameType = outputs.filter({ $0.type == port.type }).first, outputs.filter({ $0.type == port.type }).count == 1 {
                    output = sameType
                } else {
                    errors.append(SpecError("node '\(node.name)' input '\(binding.port)': node '\(upstreamSpec.name)' has several outputs; write '\(upstreamSpec.name).PORT' with PORT one of \(Suggest.list(outputs.map(\.name)))", at: binding.sourceLocation))
                    continue
                }
                if output.type != port.type {
                    errors.append(SpecError("node '\(node.name)' input '\(binding.port)' expects \(port.type), but '\(upstreamSpec.name)' gives \(output.type)\(binding.sourcePort == nil ? "" : " from output '\(output.name)'")", at: binding.sourceLocation))
                    continue
                }
                inputs[binding.port] = (upstreamSpec.name, output.name)
            }
            let bound = Set(node.inputs.map(\.port))
            for port in type.inputs where !port.optional && !bound.contains(port.name) {
                errors.append(SpecError("node '\(node.name)': input port '\(port.name)' (\(port.type)) is not connected; add it under 'in'", at: node.location))
            }
            built[node.name] = GraphNode(name: node.name, spec: node, type: type, params: params, paths: paths, inputs: inputs, texts: texts)
        }

        // Cycles, then a stable topological order (spec order among ready nodes).
        let order = topologicalOrder(spec.nodes.map(\.name), edges: { name in
            (specByName[name]?.inputs ?? []).map(\.sourceNode).filter { specByName[$0] != nil }
        })
        if let cycle = order.cycle {
            let first = specByName[cycle[0]]!  // invariant: cycle members come from specByName
            let binding = first.inputs.first { $0.sourceNode == cycle[1 % cycle.count] }
            errors.append(SpecError("cycle: \((cycle + [cycle[0]]).joined(separator: " -> ")); a node cannot depend on its own output", at: binding?.sourceLocation ?? first.location))
        }
        for (problem, nodes) in fileProblems {
            let named = nodes.count == 1 ? "node '\(nodes[0])'" : "nodes " + nodes.map { "'\($0)'" }.joined(separator: ", ")
            errors.append(SpecError("\(problem.message) (a file of param '\(problem.param)' of \(named))", at: problem.location))
        }
        if !errors.isEmpty {
            errors = Self.collapsingInstances(errors)
            throw SpecErrors(errors.sorted { ($0.location?.line ?? 0, $0.location?.column ?? 0) < ($1.location?.line ?? 0, $1.location?.column ?? 0) })
        }
        let nodes = order.order.compactMap { built[$0] }
        return PipelineGraph(spec: applied, nodes: nodes, index: Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1.name, $0) }))
    }

    /// A param's value as written: coerced to its type, its checks and schema passed, a referenced
    /// file read (its path and text beside its content); no value when it does not fit, and why.
    static func take(_ entry: ParamEntry, as param: ParamSpec, what: String, coercion: inout ParamCoercion)
        -> (value: ParamValue?, path: URL?, text: String?, problems: [SpecError]) {
        coercion.file = entry.valueLocation.file  // an included file's node, or an including file's default
        let value = coercion.coerce(entry.value, to: param.type, what: what)
        // The coercion's complaints about this value go with the value's other problems.
        var problems = coercion.errors
        coercion.errors = []
        guard let value else { return (nil, nil, nil, problems) }
        if let problem = violation(of: param, by: value) {
            return (nil, nil, nil, problems + [SpecError("\(what) must be \(problem), found \(value.display)", at: entry.valueLocation)])
        }
        if let schema = param.schema, param.type.isInline {
            problems += schema.problems(in: entry.value, file: entry.valueLocation.file).map { $0.prefixed("\(what): ") }
        }
        switch param.type {
        case .file, .directory, .definitions:
            return (value, URL(fileURLWithPath: value.stringValue!), nil, problems)  // invariant: file and folder params coerce to strings
        case .reference:
            let url = URL(fileURLWithPath: value.stringValue!)  // invariant: reference params coerce to strings
            do {
                let loaded = try loadReference(url, from: entry.valueLocation)
                return (loaded.content, url, loaded.text, problems + schemaProblems(param, loaded, url: url, what: what, from: entry.valueLocation))
            }
            catch let error as SpecError { return (nil, url, nil, problems + [error]) }
            catch { return (nil, url, nil, problems + [SpecError("\(what): \(error)", at: entry.valueLocation)]) }
        default:
            return (value, nil, nil, problems)
        }
    }

    /// A definitions folder's files as read now, by relative path: the node reads these and the key
    /// hashes these, so an edit between planning and running cannot split them.
    static func definitionTexts(_ url: URL) throws -> [String: String] {
        let files: [String]
        do { files = try FileHasher.listFiles(under: url) } catch { throw FlowError("cannot list \(url.path): \(error)") }
        var texts: [String: String] = [:]
        for relative in files {
            let file = url.appendingPathComponent(relative)
            guard let data = FileManager.default.contents(atPath: file.path) else { throw FlowError("cannot read \(file.path)") }
            guard let text = String(data: data, encoding: .utf8) else { throw FlowError("\(file.path) is not UTF-8 text; a definitions folder holds YAML files only") }
            texts[relative] = text
        }
        return texts
    }

    /// A referenced file's problems against its param's schema, located in that file.
    static func schemaProblems(_ param: ParamSpec, _ loaded: LoadedReference, url: URL, what: String, from: SourceLocation) -> [SpecError] {
        guard let schema = param.schema, let node = loaded.node else { return [] }
        // Shown as the user would type it: relative to the current folder when it is below it.
        let cwd = FileManager.default.currentDirectoryPath
        let shown = url.path.hasPrefix(cwd + "/") ? String(url.path.dropFirst(cwd.count + 1)) : url.path
        return schema.problems(in: node, file: shown).map {
            var error = $0.prefixed("\(what): ")
            error.message += " (referenced from \(from))"
            return error
        }
    }

    /// A mistake in a template repeats in each of its instances at the same place: keep the first,
    /// saying how many more instances have it.
    static func collapsingInstances(_ errors: [SpecError]) -> [SpecError] {
        func generic(_ message: String) -> String {
            message.replacingOccurrences(of: #"'([A-Za-z_][A-Za-z0-9_-]*)@[A-Za-z0-9_@-]+'"#, with: "'$1@*'", options: .regularExpression)
        }
        var order: [String] = []
        var first: [String: SpecError] = [:]
        var count: [String: Int] = [:]
        for error in errors {
            let key = "\(error.location?.description ?? "")|\(generic(error.message))"
            if first[key] == nil { order.append(key); first[key] = error }
            count[key, default: 0] += 1
        }
        return order.map { key in
            var error = first[key]!  // invariant: every key in order has a first error
            if let n = count[key], n > 1 { error.message += " (and \(n - 1) more instance\(n == 2 ? "" : "s") of the same template)" }
            return error
        }
    }

    /// The first declared rule `value` breaks, as the words completing "must be …"; non-finite
    /// numbers are never a meaningful setting.
    static func violation(of param: ParamSpec, by value: ParamValue) -> String? {
        func nonFinite(_ v: ParamValue) -> Bool {
            switch v {
            case .float(let d): return !d.isFinite
            case .list(let items): return items.contains(where: nonFinite)
            default: return false
            }
        }
        if nonFinite(value) { return "a finite number" }
        return param.checks.first { !$0.accepts(value) }?.description
    }

    /// Kahn's order; on a cycle, one cycle's path in dependency direction (a -> b means a reads b).
    static func topologicalOrder(_ names: [String], edges: (String) -> [String]) -> (order: [String], cycle: [String]?) {
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var order: [String] = []
        var stack: [String] = []
        var cycle: [String]?
        func visit(_ name: String) {
            if cycle != nil { return }
            if state[name] == 2 { return }
            if state[name] == 1 {
                let start = stack.lastIndex(of: name)!  // invariant: state 1 means `name` is on the stack
                // stack holds readers before what they read; reverse to list "reads" direction from `name`.
                cycle = Array(stack[start...])
                return
            }
            state[name] = 1
            stack.append(name)
            for upstream in edges(name) { visit(upstream) }
            stack.removeLast()
            state[name] = 2
            order.append(name)
        }
        for name in names { visit(name) }
        return (order, cycle)
    }

    /// Everything downstream of `name`, not including it.
    public func descendants(of name: String) -> Set<String> {
        var result = Set<String>()
        var frontier = [name]
        while let current = frontier.popLast() {
            for node in nodes where node.inputs.values.contains(where: { $0.node == current }) && !result.contains(node.name) {
                result.insert(node.name)
                frontier.append(node.name)
            }
        }
        return result
    }
}

/// A referenced file as read once, at checking: what the node is keyed on and what it reads.
struct LoadedReference {
    let content: ParamValue
    let text: String
    let node: Yams.Node?
}

/// Reads a referenced YAML definition; errors point into that file and say where it was referenced.
func loadReference(_ url: URL, from reference: SourceLocation) throws -> LoadedReference {
    let display = url.path
    let text = try YAMLLimits.readText(url, display: display, at: reference)
    do {
        guard let node = try YAMLLimits.compose(text, file: display) else {
            throw SpecError("referenced file \(display) is empty (referenced from \(reference))", at: SourceLocation(file: display, line: 1, column: 1))
        }
        return LoadedReference(content: ParamCoercion.plainValue(node), text: text, node: node)
    } catch let error as YamlError {
        var located = SpecParser.yamlSyntaxError(error, text: text, file: display)
        located.message += " (referenced from \(reference))"
        throw located
    }
}
