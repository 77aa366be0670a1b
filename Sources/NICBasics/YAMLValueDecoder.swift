import Foundation
import Yams

extension Yams.Node {
    /// The YAML core-schema tag after implicit resolution (plain `3` is int, quoted "3" is str).
    public var tagName: Tag.Name { Tag.Name(rawValue: tag.rawValue) }
}

extension JSONValue {
    /// The value as a YAML node (no source marks): lets a checked value be decoded by the same
    /// decoder that checked it. Strings are quoted so that "3" stays a string.
    public var yamlNode: Yams.Node {
        switch self {
        case .null: return Yams.Node("null", Tag(.null), .plain)
        case .bool(let b): return Yams.Node(b ? "true" : "false", Tag(.bool), .plain)
        case .int(let i): return Yams.Node(String(i), Tag(.int), .plain)
        case .float(let d):
            let text = d.isNaN ? ".nan" : d.isInfinite ? (d > 0 ? ".inf" : "-.inf") : "\(d)"
            return Yams.Node(text, Tag(.float), .plain)
        case .string(let s): return Yams.Node(s, Tag(.str), .doubleQuoted)
        case .list(let items): return .sequence(.init(items.map(\.yamlNode)))
        case .map(let map):
            return .mapping(.init(map.keys.sorted().map { (Yams.Node($0, Tag(.str), .plain), map[$0]!.yamlNode) }))  // invariant: key from map.keys
        }
    }
}

/// Decodes `Decodable` values from a YAML node, keeping where each value was written.
public enum YAMLValueDecoder {
    public static func decode<T: Decodable>(_ type: T.Type, from node: Yams.Node, file: String) throws -> T {
        let tracker = KeyTracker()
        let value: T
        do {
            value = try T(from: NodeDecoder(node: node, codingPath: [], tracker: tracker, file: file))
        } catch let error as DecodingError {
            throw located(error, root: node, file: file, tracker: tracker)
        }
        let unknown = tracker.unknownKeys(file: file)
        if !unknown.isEmpty { throw SpecErrors(unknown) }
        return value
    }

    /// What a YAML node is, for messages: "a list", "an integer (3)", "a string (\"x\")".
    public static func describeKind(_ node: Yams.Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let s):
            if s.style == .plain {
                switch node.tagName {
                case .null: return "nothing"
                case .bool: return "a boolean (\(s.string))"
                case .int: return "an integer (\(s.string))"
                case .float: return "a number (\(s.string))"
                default: break
                }
            }
            return "a string (\"\(s.string)\")"
        }
    }

    public static func location(_ node: Yams.Node?, _ file: String) -> SourceLocation {
        SourceLocation(file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1)
    }

    public static func pathText(_ path: [CodingKey]) -> String {
        var out = ""
        for key in path {
            if let i = key.intValue, key.stringValue == "Index \(i)" || key.stringValue == String(i) { out += "[\(i + 1)]" }
            else { out += (out.isEmpty ? "" : ".") + key.stringValue }
        }
        return out
    }

    /// The node at `path` below `root` (the deepest one that exists).
    public static func node(at path: [CodingKey], in root: Yams.Node) -> Yams.Node {
        var current = root
        for key in path {
            if let map = current.mapping, let (_, value) = map.first(where: { $0.key.string == key.stringValue }) {
                current = value
            } else if let seq = current.sequence, let i = key.intValue, seq.indices.contains(i) {
                current = seq[i]
            } else {
                break
            }
        }
        return current
    }

    static func located(_ error: DecodingError, root: Yams.Node, file: String, tracker: KeyTracker) -> SpecError {
        func prefix(_ path: [CodingKey]) -> String {
            let text = pathText(path)
            return text.isEmpty ? "" : "'\(text)': "
        }
        switch error {
        case .keyNotFound(let key, let context):
            let at = node(at: context.codingPath, in: root)
            let present = at.mapping?.keys.compactMap(\.string) ?? []
            let closest = Suggest.closest(to: key.stringValue, among: present)
            let typo = closest.map { " ('\($0)' is written: a typo?)" } ?? ""
            // A likely typo is where the reader looks, so the error points at it.
            let written = closest.flatMap { name in at.mapping?.keys.first { $0.string == name } }
            return SpecError("\(prefix(context.codingPath))missing '\(key.stringValue)'\(typo)", at: location(written ?? at, file))
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let at = node(at: context.codingPath, in: root)
            return SpecError("\(prefix(context.codingPath))\(context.debugDescription)", at: location(at, file))
        @unknown default:
            return SpecError("\(error)", at: location(root, file))
        }
    }
}

/// Which keys of each decoded mapping the type asked for; the others are typos.
final class KeyTracker {
    struct Entry {
        let node: Yams.Node
        let path: [CodingKey]
        var asked: Set<String> = []
        var acceptsAll = false
    }
    var entries: [Entry] = []

    func register(_ node: Yams.Node, path: [CodingKey]) -> Int {
        entries.append(Entry(node: node, path: path))
        return entries.count - 1
    }

    /// The same written node (by its place; a node built in code, by its value).
    static func same(_ a: Yams.Node, _ b: Yams.Node) -> Bool {
        if let ma = a.mark, let mb = b.mark { return ma.line == mb.line && ma.column == mb.column }
        return a == b
    }

    func unknownKeys(file: String) -> [SpecError] {
        var errors: [SpecError] = []
        var seen = Set<SourceLocation>()
        for entry in entries where !entry.acceptsAll {
            guard let map = entry.node.mapping else { continue }
            // A mapping decoded twice (a type trying two shapes) counts every key asked either time.
            let asked = entries.filter { Self.same($0.node, entry.node) }
                .reduce(into: Set<String>()) { $0.formUnion($1.asked) }
            for keyNode in map.keys {
                guard let key = keyNode.string, !asked.contains(key) else { continue }
                let at = YAMLValueDecoder.location(keyNode, file)
                guard seen.insert(at).inserted else { continue }
                let where_ = YAMLValueDecoder.pathText(entry.path)
                let known = asked.sorted()
                errors.append(SpecError("unknown key '\(key)'\(where_.isEmpty ? "" : " in '\(where_)'")\(Suggest.hint(for: key, among: known)); expected \(Suggest.list(known))", at: at))
            }
        }
        return errors
    }
}

extension CodingUserInfoKey {
    /// Where the value being decoded was written (a `SourceLocation`), when `YAMLValueDecoder` decodes it.
    public static let yamlLocation = CodingUserInfoKey(rawValue: "nic.yamlLocation")!  // invariant: a literal key
    /// Where the key of the value being decoded was written, when the value is a mapping's.
    public static let yamlKeyLocation = CodingUserInfoKey(rawValue: "nic.yamlKeyLocation")!  // invariant: a literal key
}

extension Decoder {
    /// Where this value was written, for errors found after decoding (a network that does not
    /// build); nil from a decoder that does not know.
    public var yamlLocation: SourceLocation? { userInfo[.yamlLocation] as? SourceLocation }
    /// Where the key of this value was written (`conv` in `- conv: {filters: 8}`), else the value's place.
    public var yamlKeyLocation: SourceLocation? { userInfo[.yamlKeyLocation] as? SourceLocation ?? yamlLocation }
}

/// A mapping key known only when decoding (a layer kind, an input name).
public struct NameKey: CodingKey, ExpressibleByStringLiteral {
    public let stringValue: String
    public var intValue: Int? { nil }
    public init(_ name: String) { stringValue = name }
    public init(stringLiteral name: String) { stringValue = name }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { return nil }
}

public struct IndexKey: CodingKey {
    public let intValue: Int?
    public var stringValue: String { "Index \(intValue!)" }  // invariant: built from an index
    public init(_ index: Int) { intValue = index }
    public init?(stringValue: String) { return nil }
    public init?(intValue: Int) { self.intValue = intValue }
}

struct NodeDecoder: Decoder {
    let node: Yams.Node
    let codingPath: [CodingKey]
    let tracker: KeyTracker
    let file: String
    /// The key this value was written under, when it is a mapping's value.
    var keyNode: Yams.Node?

    init(node: Yams.Node, codingPath: [CodingKey], tracker: KeyTracker, file: String, keyNode: Yams.Node? = nil) {
        self.node = node
        self.codingPath = codingPath
        self.tracker = tracker
        self.file = file
        self.keyNode = keyNode
    }

    var userInfo: [CodingUserInfoKey: Any] {
        var info: [CodingUserInfoKey: Any] = [.yamlLocation: YAMLValueDecoder.location(node, file)]
        if let keyNode { info[.yamlKeyLocation] = YAMLValueDecoder.location(keyNode, file) }
        return info
    }

    func mismatch(_ expected: String) -> DecodingError {
        .typeMismatch(Any.self, .init(codingPath: codingPath, debugDescription: "expected \(expected), found \(YAMLValueDecoder.describeKind(node))"))
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard let map = node.mapping else { throw mismatch("a mapping") }
        let index = tracker.register(node, path: codingPath)
        return KeyedDecodingContainer(KeyedNodeContainer<Key>(map: map, decoder: self, entry: index))
    }

    func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard let seq = node.sequence else { throw mismatch("a list") }
        return UnkeyedNodeContainer(items: Array(seq), decoder: self)
    }

    func singleValueContainer() throws -> SingleValueDecodingContainer { SingleNodeContainer(decoder: self) }

    func child(_ node: Yams.Node, key: CodingKey, keyNode: Yams.Node? = nil) -> NodeDecoder {
        NodeDecoder(node: node, codingPath: codingPath + [key], tracker: tracker, file: file, keyNode: keyNode)
    }
}

struct KeyedNodeContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let map: Yams.Node.Mapping
    let decoder: NodeDecoder
    let entry: Int
    var codingPath: [CodingKey] { decoder.codingPath }

    var allKeys: [Key] {
        decoder.tracker.entries[entry].acceptsAll = true
        return map.keys.compactMap { $0.string.flatMap(Key.init(stringValue:)) }
    }

    private func value(_ key: Key) -> Yams.Node? { pair(key)?.value }

    private func pair(_ key: Key) -> (key: Yams.Node, value: Yams.Node)? {
        decoder.tracker.entries[entry].asked.insert(key.stringValue)
        return map.first { $0.key.string == key.stringValue }
    }

    private func child(_ key: Key) -> NodeDecoder? {
        pair(key).map { decoder.child($0.value, key: key, keyNode: $0.key) }
    }

    func contains(_ key: Key) -> Bool { value(key) != nil }

    func decodeNil(forKey key: Key) throws -> Bool {
        guard let child = child(key) else { return true }
        return SingleNodeContainer(decoder: child).decodeNil()
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        guard let child = child(key) else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing '\(key.stringValue)'"))
        }
        return try SingleNodeContainer(decoder: child).decode(T.self)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        guard let child = child(key) else { throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing")) }
        return try child.container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
        guard let child = child(key) else { throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing")) }
        return try child.unkeyedContainer()
    }

    func superDecoder() throws -> Decoder { decoder }
    func superDecoder(forKey key: Key) throws -> Decoder {
        child(key) ?? decoder.child(Yams.Node("null", Tag(.null), .plain), key: key)
    }
}

struct UnkeyedNodeContainer: UnkeyedDecodingContainer {
    let items: [Yams.Node]
    let decoder: NodeDecoder
    var currentIndex = 0
    var codingPath: [CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    private mutating func next() throws -> NodeDecoder {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath, debugDescription: "expected more than \(items.count) items"))
        }
        defer { currentIndex += 1 }
        return decoder.child(items[currentIndex], key: IndexKey(currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { return false }
        if SingleNodeContainer(decoder: decoder.child(items[currentIndex], key: IndexKey(currentIndex))).decodeNil() {
            currentIndex += 1
            return true
        }
        return false
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try SingleNodeContainer(decoder: try next()).decode(T.self)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer { try next().unkeyedContainer() }
    mutating func superDecoder() throws -> Decoder { try next() }
}

/// Scalars follow the YAML core schema as the pipeline's own params do: plain `3` is an int (and a
/// float), quoted "3" a string; a whole float is accepted as an int.
struct SingleNodeContainer: SingleValueDecodingContainer {
    let decoder: NodeDecoder
    var codingPath: [CodingKey] { decoder.codingPath }
    var node: Yams.Node { decoder.node }

    func decodeNil() -> Bool {
        guard let scalar = node.scalar else { return false }
        return scalar.style == .plain && node.tagName == .null
    }

    private func plain() -> String? {
        guard let scalar = node.scalar, scalar.style == .plain else { return nil }
        return scalar.string
    }

    private func integer() throws -> Int {
        if plain() != nil, node.tagName == .int, let i = node.int { return i }
        if plain() != nil, node.tagName == .float, let d = node.float, d == d.rounded(), abs(d) < 9e15 { return Int(d) }
        throw decoder.mismatch("an integer")
    }

    private func number() throws -> Double {
        if plain() != nil, node.tagName == .int, let i = node.int { return Double(i) }
        if plain() != nil, node.tagName == .float, let d = node.float { return d }
        throw decoder.mismatch("a number")
    }

    private func fixed<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let i = try integer()
        guard let v = I(exactly: i) else {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "\(i) is out of range for \(I.self)"))
        }
        return v
    }

    func decode(_ type: Bool.Type) throws -> Bool {
        guard plain() != nil, node.tagName == .bool, let b = node.bool else { throw decoder.mismatch("true or false") }
        return b
    }

    func decode(_ type: String.Type) throws -> String {
        guard let scalar = node.scalar, !decodeNil() else { throw decoder.mismatch("a string") }
        return scalar.string
    }

    func decode(_ type: Double.Type) throws -> Double { try number() }
    func decode(_ type: Float.Type) throws -> Float { Float(try number()) }
    func decode(_ type: Int.Type) throws -> Int { try integer() }
    func decode(_ type: Int8.Type) throws -> Int8 { try fixed(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try fixed(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try fixed(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try fixed(Int64.self) }
    func decode(_ type: UInt.Type) throws -> UInt { try fixed(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try fixed(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try fixed(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try fixed(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try fixed(UInt64.self) }

    /// Other types decode themselves from this node (`Int.init(from:)` comes back to `decode(Int.self)`).
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try T(from: decoder) }
}
