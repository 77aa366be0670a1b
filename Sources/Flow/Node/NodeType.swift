import Foundation
import NICBasics

/// The type of data flowing along an edge. The engine only compares names; node modules define the
/// vocabulary (`Table`, `FileSet`, and later `PatchSet`, `Model`, `GridSet`, ...).
public struct PortType: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let name: String
    public init(_ name: String) { self.name = name }
    public init(stringLiteral value: String) { self.name = value }
    public var description: String { name }

    public static let table: PortType = "Table"
    public static let fileSet: PortType = "FileSet"
    public static let metrics: PortType = "Metrics"
    public static let tensor: PortType = "Tensor"
}

public struct PortSpec: Sendable {
    public let name: String
    public let type: PortType
    public let doc: String
    /// An input that may stay unconnected; an output a node may leave unwritten (its consumers then get an empty folder).
    public let optional: Bool

    public init(_ name: String, _ type: PortType, optional: Bool = false, doc: String) {
        self.name = name
        self.type = type
        self.doc = doc
        self.optional = optional
    }
}

/// What a parameter may hold. `file`, `directory` and `reference` name things on disk; they enter the
/// cache key by content, never by path or modification time.
public indirect enum ParamType: Sendable, CustomStringConvertible {
    case int
    case float
    case bool
    case string
    case choice([String])
    case list(ParamType)
    /// An external file (a slide, a CSV); keyed by its SHA-256.
    case file
    /// An external folder; keyed by the SHA-256 of every file below it.
    case directory
    /// A reusable YAML definition (an architecture, a recipe, usually under `nodes/`); the node gets the
    /// parsed content and the key covers that content, so comments and key order in it do not matter.
    case reference
    /// A folder of small text definitions (e.g. `nodes/heads`) that a node picks from by name at run time;
    /// keyed like a folder, and the node gets every file's text as read when it was keyed (never the disk again).
    case definitions
    /// Any YAML value, taken as it is.
    case any

    /// A value written in the pipeline itself (not a path to something on disk).
    var isInline: Bool {
        switch self {
        case .file, .directory, .reference, .definitions: return false
        default: return true
        }
    }

    public var description: String {
        switch self {
        case .int: return "int"
        case .float: return "float"
        case .bool: return "bool"
        case .string: return "string"
        case .choice(let options): return "one of " + options.joined(separator: "|")
        case .list(let element): return "list of \(element)"
        case .file: return "file path"
        case .directory: return "directory path"
        case .reference: return "YAML file path"
        case .definitions: return "folder of definitions"
        case .any: return "any value"
        }
    }
}

/// A param as the engine sees it; node types declare theirs with `@Param` (see `NodeParams`).
public struct ParamSpec: Sendable {
    public let name: String
    public let type: ParamType
    /// nil: the parameter is required. `.null`: optional with no value.
    public let defaultValue: ParamValue?
    public let doc: String
    /// Ranges and rules checked at validate time.
    public let checks: [ParamCheck]
    /// The Swift property declaring it, when it differs from `name`.
    let propertyName: String?
    /// What the value (a structured `any` param) or the referenced file's content must look like,
    /// checked at validate time with locations in the file where it is written.
    public let schema: (any YAMLSchema.Type)?
    /// The choice that makes the node read this param (a `@ParamGroup` member); nil: always read.
    public let readWhen: ParamCondition?

    public init(_ name: String, _ type: ParamType, default defaultValue: ParamValue? = nil, doc: String, checks: [ParamCheck] = []) {
        self.init(name, type, default: defaultValue, doc: doc, checks: checks, propertyName: nil)
    }

    init(_ name: String, _ type: ParamType, default defaultValue: ParamValue?, doc: String, checks: [ParamCheck], propertyName: String?,
         schema: (any YAMLSchema.Type)? = nil, readWhen: ParamCondition? = nil) {
        self.schema = schema
        self.readWhen = readWhen
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.doc = doc
        self.checks = checks
        self.propertyName = propertyName
    }

    public var isRequired: Bool { defaultValue == nil }

    /// The same param, read only when `condition` holds.
    func read(when condition: ParamCondition) -> ParamSpec {
        ParamSpec(name, type, default: defaultValue, doc: doc, checks: checks, propertyName: propertyName, schema: schema, readWhen: condition)
    }
}

/// "Read only when param `param` is one of `values`": a param that only some choices (e.g. some
/// training modes) read, so that giving it with another choice is refused rather than silently
/// ignored.
public struct ParamCondition: Sendable, Equatable, CustomStringConvertible {
    public let param: String
    /// The choices that read it, in declaration order.
    public let values: [String]
    /// Why a choice that does not read it ignores it, for the refusal. A group member needs none:
    /// that it belongs to another choice says it.
    public let reasons: [String: String]

    /// Read with one choice only (a `@ParamGroup`'s members).
    public init(param: String, value: String) {
        self.param = param
        values = [value]
        reasons = [:]
    }

    /// Read with every choice of `param` but those in `ignoredBy`, each with why it ignores the param.
    public init<Choice: ParamChoice & Hashable>(param: String, ignoredBy: [Choice: String]) {
        self.param = param
        values = Choice.allCases.filter { ignoredBy[$0] == nil }.map(\.rawValue)
        reasons = Dictionary(uniqueKeysWithValues: ignoredBy.map { ($0.key.rawValue, $0.value) })
    }

    public var description: String { "\(param): \(values.joined(separator: "|"))" }

    /// Why param `name` must not be given to a node whose `param` is `chosen`; nil when it is read.
    func refusal(of name: String, chosen: String) -> String? {
        guard !values.contains(chosen) else { return nil }
        let why = reasons[chosen].map { ", which ignores it: \($0)" } ?? ""
        return "param '\(name)' is read only with \(param) \(Suggest.list(values)), but this node's \(param) is '\(chosen)'\(why)"
    }
}

/// What `NodeType.problems` found: the param it concerns, what is wrong, and where, when that is in a
/// file the param names (else the error points at the param in the pipeline).
public struct ParamProblem: Sendable {
    public var param: String
    public var message: String
    public var location: SourceLocation?
    public init(_ param: String, _ message: String, at location: SourceLocation? = nil) {
        self.param = param
        self.message = message
        self.location = location
    }
}

/// A kind of node a pipeline can use. Implementations are stateless: everything a run needs comes
/// through the context, so the engine can cache, retry and run them in parallel.
public protocol NodeType: Sendable {
    /// The `type:` written in YAML.
    static var name: String { get }
    /// Bump whenever the output for the same params and inputs would change; it is part of the cache key.
    static var version: Int { get }
    static var summary: String { get }
    static var inputs: [PortSpec] { get }
    static var outputs: [PortSpec] { get }
    /// The params, declared once as `@Param` properties (`NoParams` when there are none).
    associatedtype Params: NodeParams = NoParams

    /// True when the node's work is a list of items (`context.cachedItems`) computed anywhere, then
    /// gathered: a cluster executor computes the missing items as a job array before the node runs.
    static var splitsIntoItems: Bool { get }

    /// Problems only the params together show (a name that must be a file of a folder another param
    /// names, a definition in a folder), found at `nic validate`. Called once each param passed its own checks.
    static func problems(_ params: Params) -> [ParamProblem]

    init()
    /// Reads inputs from `context`, writes every output port's folder. `params` are checked against
    /// their declarations before any node runs.
    func run(_ context: NodeContext, _ params: Params) throws
}

extension NodeType {
    public static var inputs: [PortSpec] { [] }
    public static var splitsIntoItems: Bool { false }
    /// The params the spec checker and `nic nodes` see, derived from `Params`.
    public static var params: [ParamSpec] { Params.declaredParams }

    public static func problems(_ params: Params) -> [ParamProblem] { [] }

    /// `problems` of checked values; values that do not decode were reported already.
    static func problems(values: [String: ParamValue], paths: [String: URL], texts: [String: String]) -> [ParamProblem] {
        guard let params = try? Params.decode(values, paths: paths, texts: texts) else { return [] }
        return problems(params)
    }

    /// Decodes the context's checked params and runs the node.
    func execute(_ context: NodeContext) throws {
        try run(context, try Params.decode(context.params, paths: context.paths, texts: context.texts))
    }
}

/// The node types a pipeline may use, by name.
public struct NodeRegistry: Sendable {
    public private(set) var types: [String: any NodeType.Type] = [:]

    public init(_ types: [any NodeType.Type] = []) {
        for type in types { register(type) }
    }

    public mutating func register(_ type: any NodeType.Type) {
        // invariant: registries are built from code, never from user input; a clash is a programming error
        precondition(types[type.name] == nil, "node type '\(type.name)' registered twice")  // invariant: registries are built once in code from distinct node types, never from input
        types[type.name] = type
    }

    public func merging(_ other: [any NodeType.Type]) -> NodeRegistry {
        var copy = self
        for type in other { copy.register(type) }
        return copy
    }

    public subscript(name: String) -> (any NodeType.Type)? { types[name] }
    public var names: [String] { types.keys.sorted() }

    /// The node types that ship with the engine.
    public static let builtin = NodeRegistry([TableSource.self, FilesSource.self, JoinTables.self, DescribeTable.self, TableToTensor.self])
}
