import Foundation

/// A JSON-shaped value: what a parameter holds once read from YAML and checked against its declared type.
public enum ParamValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([ParamValue])
    case map([String: ParamValue])

    /// Canonical JSON: sorted keys, no spaces, shortest round-trip numbers. Two specs that mean the same
    /// thing produce the same bytes, which is what makes cache keys independent of YAML formatting.
    public var canonicalJSON: String {
        var out = ""
        writeCanonical(into: &out)
        return out
    }

    private func writeCanonical(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .float(let d):
            if d.isNaN { out += "\"NaN\"" }
            else if d.isInfinite { out += d > 0 ? "\"Infinity\"" : "\"-Infinity\"" }
            else if d == d.rounded(), abs(d) < 1e15 { out += String(Int(d)) + ".0" }
            else { out += "\(d)" }
        case .string(let s): out += ParamValue.jsonQuoted(s)
        case .list(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.writeCanonical(into: &out)
            }
            out += "]"
        case .map(let dict):
            out += "{"
            for (i, key) in dict.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                out += ParamValue.jsonQuoted(key) + ":"
                dict[key]!.writeCanonical(into: &out)  // invariant: key taken from dict.keys
            }
            out += "}"
        }
    }

    static func jsonQuoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) }
                else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    /// A short human form for messages and plan output.
    public var display: String {
        switch self {
        case .string(let s): return s
        default: return canonicalJSON
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var intValue: Int? { if case .int(let i) = self { return i }; return nil }
    public var doubleValue: Double? {
        switch self {
        case .float(let d): return d
        case .int(let i): return Double(i)
        default: return nil
        }
    }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var listValue: [ParamValue]? { if case .list(let l) = self { return l }; return nil }
    public var mapValue: [String: ParamValue]? { if case .map(let m) = self { return m }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }
}

extension ParamValue: Codable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .float(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let l = try? c.decode([ParamValue].self) { self = .list(l) }
        else { self = .map(try c.decode([String: ParamValue].self)) }
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
