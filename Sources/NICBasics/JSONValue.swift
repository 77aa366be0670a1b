import Foundation

/// A JSON value: a node param once read from YAML and checked (`ParamValue` in Flow), and zarr
/// `attributes` and zarr.json (`ZarrJSON` in TensorStore). One type, one writer, one string escaper.
///
/// Integers and floating-point numbers are kept apart (`.int` / `.float`) so that `3` reads back as
/// `3`, not `3.0`, and 64-bit integers survive unrounded. Non-finite doubles are written as the strings
/// "NaN", "Infinity" and "-Infinity" (the zarr convention for fill values); JSON has no literal for them.
public enum JSONValue: Hashable, Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([JSONValue])
    case map([String: JSONValue])

    public subscript(key: String) -> JSONValue? {
        if case .map(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    /// An integer, also from a floating-point number with no fractional part.
    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .float(let d): return Int(exactly: d)
        default: return nil
        }
    }
    /// The value of a number (either kind); nil for anything else.
    public var doubleValue: Double? {
        switch self {
        case .float(let d): return d
        case .int(let i): return Double(i)
        default: return nil
        }
    }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var listValue: [JSONValue]? { if case .list(let l) = self { return l }; return nil }
    public var mapValue: [String: JSONValue]? { if case .map(let m) = self { return m }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    /// Canonical JSON: sorted keys, no spaces, shortest round-trip numbers. Two values that mean the
    /// same thing give the same bytes, which is what makes cache keys independent of YAML formatting.
    public var canonicalJSON: String { serialized(pretty: false) }

    /// Compact canonical JSON.
    public var description: String { canonicalJSON }

    /// A short human form for messages and plan output.
    public var display: String {
        if case .string(let s) = self { return s }
        return canonicalJSON
    }

    /// JSON text with object keys sorted, so equal values always give identical bytes (zarr.json
    /// content stays stable and diffs quiet). Pretty output keeps lists of scalars on one line, which
    /// keeps shapes like `[5, 7, 3]` readable.
    public func serialized(pretty: Bool = true) -> String {
        var out = ""
        write(to: &out, indent: pretty ? 0 : nil)
        return out
    }

    private func write(to out: inout String, indent: Int?) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .float(let d): out += Self.format(d)
        case .string(let s): out += Self.jsonQuoted(s)
        case .list(let elements):
            if elements.isEmpty { out += "[]"; return }
            let inline = indent == nil || elements.allSatisfy(\.isScalar)
            out += "["
            for (n, element) in elements.enumerated() {
                if n > 0 { out += inline ? (indent == nil ? "," : ", ") : "," }
                if !inline { Self.newline(&out, (indent ?? 0) + 1) }
                element.write(to: &out, indent: indent.map { $0 + 1 })
            }
            if !inline { Self.newline(&out, indent ?? 0) }
            out += "]"
        case .map(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{"
            for (n, key) in members.keys.sorted().enumerated() {
                if n > 0 { out += "," }
                if let indent { Self.newline(&out, indent + 1) }
                out += Self.jsonQuoted(key)
                out += indent == nil ? ":" : ": "
                members[key]!.write(to: &out, indent: indent.map { $0 + 1 })  // invariant: key taken from members.keys
            }
            if let indent { Self.newline(&out, indent) }
            out += "}"
        }
    }

    private var isScalar: Bool {
        switch self {
        case .list(let a): return a.isEmpty
        case .map(let o): return o.isEmpty
        default: return true
        }
    }

    private static func newline(_ out: inout String, _ level: Int) {
        out += "\n"
        out += String(repeating: "  ", count: level)
    }

    /// Shortest text that reads back as the same Double, always marked as floating point ("2.0", not
    /// "2") so that readers keep the float-ness; -0.0 is written "0.0" (as cache keys always had it).
    public static func format(_ d: Double) -> String {
        if d.isNaN { return "\"NaN\"" }
        if d.isInfinite { return d < 0 ? "\"-Infinity\"" : "\"Infinity\"" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) + ".0" }
        // Swift prints e.g. 1e-05 and 1e+20, both valid JSON numbers.
        return d.description
    }

    /// `s` as a JSON string literal: quotes, backslashes and control characters escaped.
    public static func jsonQuoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// No `ExpressibleByNilLiteral`: `nil` for an optional value must stay `.none`, never `.null`.
extension JSONValue: ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .float(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .map(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue: Codable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .float(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let l = try? c.decode([JSONValue].self) { self = .list(l) }
        else { self = .map(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .float(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .list(let l): try c.encode(l)
        case .map(let m): try c.encode(m)
        }
    }
}
