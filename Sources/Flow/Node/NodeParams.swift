import Foundation
import Yams

/// A node type's params, declared once as `@Param` properties of a struct (in the manner of
/// swift-argument-parser's `@Option`): the declaration gives the YAML name (the property's name in
/// snake_case), the type, the default, the doc and the range checks. The engine derives the
/// `ParamSpec` list from it, checks every value at `nic validate` time, and hands `run` the decoded
/// struct, so a node reads `params.folds`, never a string.
///
///     struct Params: NodeParams {
///         @Param(doc: "patient-level folds", .atLeast(2)) var folds = 4
///         @Param(doc: "output head") var head: Reference
///     }
public protocol NodeParams: Decodable, Sendable {
    /// Every param at its default (required ones hold a placeholder); the engine reads the
    /// declarations from it.
    init()
}

/// For node types without params.
public struct NoParams: NodeParams {
    public init() {}
}

// MARK: Values

/// A Swift type a param can be declared with, and how it maps to the YAML-facing `ParamType`.
public protocol ParamConvertible: Sendable {
    static var paramType: ParamType { get }
    /// The value of a required param before decoding (never seen by `run`).
    static var placeholder: Self { get }
    /// nil when `value` does not have this type (the spec checker reports that before decoding).
    init?(paramValue value: ParamValue)
    var paramValue: ParamValue { get }
}

extension Int: ParamConvertible {
    public static var paramType: ParamType { .int }
    public static var placeholder: Int { 0 }
    public init?(paramValue value: ParamValue) {
        guard let i = value.intValue else { return nil }
        self = i
    }
    public var paramValue: ParamValue { .int(self) }
}

extension Double: ParamConvertible {
    public static var paramType: ParamType { .float }
    public static var placeholder: Double { 0 }
    public init?(paramValue value: ParamValue) {
        guard let d = value.doubleValue else { return nil }
        self = d
    }
    public var paramValue: ParamValue { .float(self) }
}

extension Bool: ParamConvertible {
    public static var paramType: ParamType { .bool }
    public static var placeholder: Bool { false }
    public init?(paramValue value: ParamValue) {
        guard let b = value.boolValue else { return nil }
        self = b
    }
    public var paramValue: ParamValue { .bool(self) }
}

extension String: ParamConvertible {
    public static var paramType: ParamType { .string }
    public static var placeholder: String { "" }
    public init?(paramValue value: ParamValue) {
        guard let s = value.stringValue else { return nil }
        self = s
    }
    public var paramValue: ParamValue { .string(self) }
}

extension Array: ParamConvertible where Element: ParamConvertible {
    public static var paramType: ParamType { .list(Element.paramType) }
    public static var placeholder: [Element] { [] }
    public init?(paramValue value: ParamValue) {
        guard let items = value.listValue else { return nil }
        var out: [Element] = []
        for item in items {
            guard let element = Element(paramValue: item) else { return nil }
            out.append(element)
        }
        self = out
    }
    public var paramValue: ParamValue { .list(map(\.paramValue)) }
}

/// An optional param: absent or `null` in YAML is nil.
extension Optional: ParamConvertible where Wrapped: ParamConvertible {
    public static var paramType: ParamType { Wrapped.paramType }
    public static var placeholder: Wrapped? { nil }
    public init?(paramValue value: ParamValue) {
        if value.isNull { self = .none; return }
        guard let wrapped = Wrapped(paramValue: value) else { return nil }
        self = .some(wrapped)
    }
    public var paramValue: ParamValue { self?.paramValue ?? .null }
}

/// Any YAML value, taken as it is (`ParamType.any`).
extension ParamValue: ParamConvertible {
    public static var paramType: ParamType { .any }
    public static var placeholder: ParamValue { .null }
    public init?(paramValue value: ParamValue) { self = value }
    public var paramValue: ParamValue { self }
}

/// A param with a fixed set of spellings: declare a `String` enum with `CaseIterable` and conform it.
public protocol ParamChoice: ParamConvertible, CaseIterable, RawRepresentable where RawValue == String {}

extension ParamChoice {
    public static var paramType: ParamType { .choice(allCases.map(\.rawValue)) }
    public static var placeholder: Self { allCases.first! }  // invariant: a choice enum has at least one case
    public init?(paramValue value: ParamValue) {
        guard let s = value.stringValue, let v = Self(rawValue: s) else { return nil }
        self = v
    }
    public var paramValue: ParamValue { .string(rawValue) }
}

/// A param naming something on disk by path.
public protocol PathParam: ParamConvertible, ExpressibleByStringLiteral, Hashable {
    var path: String { get }
    init(_ path: String)
}

extension PathParam {
    public init(stringLiteral value: String) { self.init(value) }
    public var url: URL { URL(fileURLWithPath: path) }
    public static var placeholder: Self { Self("") }
    public init?(paramValue value: ParamValue) {
        guard let s = value.stringValue else { return nil }
        self.init(s)
    }
    public var paramValue: ParamValue { .string(path) }
}

/// A file on disk (`ParamType.file`); it enters the cache key by content. The default, when one is
/// written, is a path relative to the pipeline file.
public struct FileParam: PathParam {
    public let path: String
    public init(_ path: String) { self.path = path }
    public static var paramType: ParamType { .file }
}

/// A folder on disk (`ParamType.directory`); it enters the cache key by the content of every file below it.
public struct DirectoryParam: PathParam {
    public let path: String
    public init(_ path: String) { self.path = path }
    public static var paramType: ParamType { .directory }
}

/// A reusable YAML definition (an architecture, a recipe, usually under `nodes/`): `run` gets its
/// parsed content, the text it was parsed from and its path; the key covers the content only. A node
/// reads `content` or `text`, never the path again: the file may have changed since it was keyed.
public struct Reference: ParamConvertible, ExpressibleByStringLiteral, Sendable {
    /// The file's path (absolute once the spec is checked), for messages.
    public let path: String
    /// The parsed YAML (null before checking).
    public let content: ParamValue
    /// The file's text as read when the node was keyed (nil before checking).
    public let text: String?
    public init(stringLiteral value: String) { path = value; content = .null; text = nil }
    /// A default: a path relative to the pipeline file.
    public init(_ path: String) { self.init(path: path, content: .null) }
    public init(path: String, content: ParamValue, text: String? = nil) { self.path = path; self.content = content; self.text = text }
    public var url: URL { URL(fileURLWithPath: path) }
    public static var paramType: ParamType { .reference }
    public static var placeholder: Reference { Reference(stringLiteral: "") }
    /// Decoding sees `{"path", "content", "text"}` (see `NodeParamsDecoding`); a declaration's default is a path.
    public init?(paramValue value: ParamValue) {
        if let s = value.stringValue { self.init(stringLiteral: s); return }
        guard let map = value.mapValue, let path = map["path"]?.stringValue else { return nil }
        self.init(path: path, content: map["content"] ?? .null, text: map["text"]?.stringValue)
    }
    public var paramValue: ParamValue { .string(path) }

    /// The YAML as it was read when the node was keyed (with line and column marks); the content
    /// when there is no text (a reference built in code).
    public func yamlNode() throws -> Yams.Node {
        guard let text else { return content.yamlNode }
        do {
            guard let node = try Yams.compose(yaml: text) else { return ParamValue.null.yamlNode }
            return node
        } catch {
            throw NodeError("\(path): not valid YAML: \(error)")
        }
    }
}

/// A folder of small definitions a node picks from by name at run time (`heads_dir`): `run` gets every
/// file's text as read when the node was keyed, and the key hashes exactly that text (the same hash as
/// a `DirectoryParam` on those files, so switching a param between the two keeps keys).
public struct DefinitionFolder: ParamConvertible, Sendable {
    /// The folder's path (absolute once the spec is checked), for messages and for resolving names.
    public let path: String
    /// Relative path → text, as read when the node was keyed (empty before checking).
    public let files: [String: String]
    public init(_ path: String, files: [String: String] = [:]) { self.path = path; self.files = files }
    public var url: URL { URL(fileURLWithPath: path) }
    public static var paramType: ParamType { .definitions }
    public static var placeholder: DefinitionFolder { DefinitionFolder("") }
    /// Decoding sees `{"path", "files"}` (see `NodeParamsDecoding`); a declaration's default is a path.
    public init?(paramValue value: ParamValue) {
        if let s = value.stringValue { self.init(s); return }
        guard let map = value.mapValue, let path = map["path"]?.stringValue else { return nil }
        var files: [String: String] = [:]
        for (name, text) in map["files"]?.mapValue ?? [:] {
            guard let text = text.stringValue else { return nil }
            files[name] = text
        }
        self.init(path, files: files)
    }
    public var paramValue: ParamValue { .string(path) }

    /// How the graph names a file's text among a node's texts.
    static func textKey(param: String, relative: String) -> String { param + "/" + relative }

    /// The files of `param` among a node's texts.
    static func files(param: String, in texts: [String: String]) -> [String: String] {
        let prefix = param + "/"
        return Dictionary(uniqueKeysWithValues: texts.filter { $0.key.hasPrefix(prefix) }.map { (String($0.key.dropFirst(prefix.count)), $0.value) })
    }

    /// `FileHasher.hash(directoryAt:)` of a folder holding exactly these files.
    public static func hash(of files: [String: String]) -> String {
        var lines = ""
        for (relative, text) in files.sorted(by: { $0.key < $1.key }) {
            lines += relative + "\u{0}" + Hashing.sha256Hex(text) + "\n"
        }
        return Hashing.sha256Hex(lines)
    }
}

// MARK: Checks

/// A range or rule a param's value must satisfy, checked at validate time with a located error.
/// Number rules look at each number (each item of a list on its own); list rules at the whole list;
/// null (an absent optional) passes both.
public struct ParamCheck: Sendable, CustomStringConvertible {
    /// "≥ 1", "in [0, 1]": completes "must be …".
    public let description: String
    private let onList: Bool
    private let holds: @Sendable (ParamValue) -> Bool
    /// The param enters the cache key only when it differs from its default (`unkeyedAtDefault`).
    public let unkeyedAtDefault: Bool

    private init(_ description: String, onList: Bool, unkeyedAtDefault: Bool = false, holds: @escaping @Sendable (ParamValue) -> Bool) {
        self.description = description
        self.onList = onList
        self.unkeyedAtDefault = unkeyedAtDefault
        self.holds = holds
    }

    /// Not a check: a param added to an existing node type whose default keeps what the node computed
    /// before stays out of the cache key at that default, so existing caches stay valid.
    public static let unkeyedAtDefault = ParamCheck("out of the cache key at its default", onList: true, unkeyedAtDefault: true) { _ in true }

    /// Whether `value` passes.
    public func accepts(_ value: ParamValue) -> Bool {
        switch value {
        case .null: return true
        case .list(let items) where !onList: return items.allSatisfy(accepts)
        default: return holds(value)
        }
    }

    private static func number(_ description: String, _ test: @escaping @Sendable (Double) -> Bool) -> ParamCheck {
        ParamCheck(description, onList: false) { value in value.doubleValue.map(test) ?? true }
    }

    private static func show(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)" }

    /// x ≥ low.
    public static func atLeast(_ low: Double) -> ParamCheck { number("≥ \(show(low))") { $0 >= low } }
    /// x = 0 (off) or low ≤ x ≤ high.
    public static func zeroOrWithin(_ low: Double, _ high: Double) -> ParamCheck {
        number("0 or in [\(show(low)), \(show(high))]") { $0 == 0 || ($0 >= low && $0 <= high) }
    }
    /// x > 0.
    public static let positive = number("> 0") { $0 > 0 }
    /// low ≤ x ≤ high.
    public static func within(_ low: Double, _ high: Double) -> ParamCheck {
        number("in [\(show(low)), \(show(high))]") { $0 >= low && $0 <= high }
    }
    /// low < x < high.
    public static func between(_ low: Double, _ high: Double) -> ParamCheck {
        number("strictly between \(show(low)) and \(show(high))") { $0 > low && $0 < high }
    }
    /// A probability or fraction: 0 ≤ x ≤ 1.
    public static let fraction = within(0, 1)
    /// A list of `low` to `high` items.
    public static func count(_ low: Int, _ high: Int = .max) -> ParamCheck {
        let text = high == .max ? "a list of at least \(low) item\(low == 1 ? "" : "s")" : low == high ? "a list of \(low) item\(low == 1 ? "" : "s")" : "a list of \(low) to \(high) items"
        return ParamCheck(text, onList: true) { value in value.listValue.map { $0.count >= low && $0.count <= high } ?? true }
    }
}

// MARK: Declaration

/// One declared param. The wrapper keeps the declaration (doc, checks, YAML name) in the prototype
/// the engine reflects on; a decoded value carries only the value.
@propertyWrapper
public struct Param<Value: ParamConvertible>: Decodable, Sendable {
    public var wrappedValue: Value
    let doc: String
    let checks: [ParamCheck]
    let name: String?
    let isRequired: Bool
    let schema: (any YAMLSchema.Type)?
    let readWhen: ParamCondition?

    /// A param with a default: `@Param(doc: "…") var epochs = 8`. `schema`: what a structured value
    /// (or a referenced file) must look like, checked at validate time. `readWhen`: the choices of
    /// another param that read it (a param shared by some training modes); `nic validate` refuses it
    /// given with another, saying why that one ignores it.
    public init(wrappedValue: Value, name: String? = nil, doc: String, schema: (any YAMLSchema.Type)? = nil, _ checks: ParamCheck...,
                readWhen: ParamCondition? = nil) {
        self.wrappedValue = wrappedValue
        self.doc = doc
        self.checks = checks
        self.name = name
        self.isRequired = false
        self.schema = schema
        self.readWhen = readWhen
    }

    /// A required param: `@Param(doc: "…") var head: Reference`.
    public init(name: String? = nil, doc: String, schema: (any YAMLSchema.Type)? = nil, _ checks: ParamCheck...) {
        self.wrappedValue = Value.placeholder
        self.doc = doc
        self.checks = checks
        self.name = name
        self.isRequired = true
        self.schema = schema
        self.readWhen = nil
    }

    public init(from decoder: Decoder) throws {
        let value = try ParamValue(from: decoder)
        guard let typed = Value(paramValue: value) else {
            throw DecodingError.typeMismatch(Value.self, .init(codingPath: decoder.codingPath, debugDescription: "expected \(Value.paramType), found \(value.canonicalJSON)"))
        }
        wrappedValue = typed
        doc = ""
        checks = []
        name = nil
        isRequired = false
        schema = nil
        readWhen = nil
    }
}

/// What the engine reads from a `Param` without knowing its value type.
protocol ParamDeclaration {
    func spec(propertyName: String) -> ParamSpec
}

/// Params that only one choice of another param reads, declared as their own `NodeParams` struct
/// (e.g. a training mode's): `@ParamGroup(when: "training", is: "vae") var vae = VAETraining.Params()`.
/// In YAML they stay flat beside the node's other params (`kl_weight:`, not `vae: {kl_weight:}`),
/// so a group changes neither a pipeline nor a cache key; `nic validate` refuses a member given
/// while the choice is another, at the member's location.
@propertyWrapper
public struct ParamGroup<Group: NodeParams>: Decodable, Sendable {
    public var wrappedValue: Group
    let condition: ParamCondition?

    public init(wrappedValue: Group, when param: String, is value: String) {
        self.wrappedValue = wrappedValue
        condition = ParamCondition(param: param, value: value)
    }

    public init(from decoder: Decoder) throws {
        wrappedValue = try Group(from: decoder)
        condition = nil
    }
}

/// What the engine reads from a `ParamGroup` without knowing its members' struct.
protocol ParamGroupDeclaration {
    var members: [ParamSpec] { get }
}

extension ParamGroup: ParamGroupDeclaration {
    var members: [ParamSpec] {
        Group.declaredParams.map { member in condition.map { member.read(when: $0) } ?? member }
    }
}

extension Param: ParamDeclaration {
    func spec(propertyName: String) -> ParamSpec {
        ParamSpec(name ?? snakeCase(propertyName), Value.paramType, default: isRequired ? nil : wrappedValue.paramValue,
                  doc: doc, checks: checks, propertyName: propertyName, schema: schema, readWhen: readWhen)
    }
}

/// `learningRate` → `learning_rate`: YAML names follow the field's convention, Swift names Swift's.
func snakeCase(_ name: String) -> String {
    var out = ""
    for character in name {
        if character.isUppercase {
            if !out.isEmpty { out += "_" }
            out += character.lowercased()
        } else {
            out.append(character)
        }
    }
    return out
}

extension NodeParams {
    /// The declared params, in declaration order, a group's members in its place.
    public static var declaredParams: [ParamSpec] { declarations.flatMap { $0.members } }

    /// Each declared param on its own, and each group (its property, its members).
    static var declarations: [(group: String?, members: [ParamSpec])] {
        Mirror(reflecting: Self()).children.compactMap { child in
            guard let label = child.label, label.hasPrefix("_") else { return nil }
            let property = String(label.dropFirst())
            if let declaration = child.value as? ParamDeclaration { return (nil, [declaration.spec(propertyName: property)]) }
            if let group = child.value as? ParamGroupDeclaration { return (property, group.members) }
            return nil
        }
    }

    /// The struct for checked values (defaults filled in; file-like params absolute paths; references
    /// with their parsed content and path).
    static func decode(_ values: [String: ParamValue], paths: [String: URL], texts: [String: String] = [:]) throws -> Self {
        func decodable(_ members: [ParamSpec]) -> [String: ParamValue] {
            var byProperty: [String: ParamValue] = [:]
            for spec in members {
                var value = values[spec.name] ?? spec.defaultValue ?? .null
                if case .reference = spec.type, let url = paths[spec.name] {
                    var reference: [String: ParamValue] = ["path": .string(url.path), "content": value]
                    if let text = texts[spec.name] { reference["text"] = .string(text) }
                    value = .map(reference)
                }
                if case .definitions = spec.type, let url = paths[spec.name] {
                    value = .map(["path": .string(url.path), "files": .map(DefinitionFolder.files(param: spec.name, in: texts).mapValues { .string($0) })])
                }
                byProperty[spec.propertyName ?? spec.name] = value
            }
            return byProperty
        }
        var byProperty: [String: ParamValue] = [:]
        for declaration in declarations {
            if let group = declaration.group {
                byProperty[group] = .map(decodable(declaration.members))
            } else {
                byProperty.merge(decodable(declaration.members)) { _, new in new }
            }
        }
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        let data = try encoder.encode(byProperty)
        do {
            return try JSONDecoder().decode(Self.self, from: data)
        } catch {
            throw NodeError("params do not fit their declaration (an engine bug): \(error)")
        }
    }
}
