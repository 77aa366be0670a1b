/// A JSON value: the representation of zarr `attributes` (and of zarr.json while parsing).
///
/// Integers and floating-point numbers are kept apart (`.int` / `.double`) so that an
/// attribute written as `3` reads back as `3`, not `3.0`, and so that 64-bit integers
/// survive unrounded. Non-finite doubles are written as the strings "NaN", "Infinity"
/// and "-Infinity" (the zarr convention for fill values), since JSON has no literal for them.
public enum ZarrJSON: Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([ZarrJSON])
    case object([String: ZarrJSON])

    public subscript(key: String) -> ZarrJSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value of a number (either kind); nil for anything else.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// An integer, also accepting a floating-point number with no fractional part.
    public var intValue: Int? {
        switch self {
        case .int(let i): return Int(exactly: i)
        case .double(let d): return Int(exactly: d)
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [ZarrJSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: [String: ZarrJSON]? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// Compact JSON with sorted keys.
    public var description: String { serialized(pretty: false) }

    /// JSON text with object keys sorted, so equal values always give identical bytes
    /// (zarr.json content then works as a cache key and diffs stay quiet).
    public func serialized(pretty: Bool = true) -> String {
        var out = ""
        write(to: &out, indent: pretty ? 0 : nil)
        return out
    }

    /// Parses JSON text. Numbers without fraction or exponent that fit in Int64 become `.int`.
    public static func parse(_ text: String) throws -> ZarrJSON {
        var utf8 = Array(text.utf8)
        return try parse(utf8: &utf8)
    }

    public static func parse(bytes: [UInt8]) throws -> ZarrJSON {
        var copy = bytes
        return try parse(utf8: &copy)
    }

    private static func parse(utf8: inout [UInt8]) throws -> ZarrJSON {
        try utf8.withUnsafeBufferPointer { buffer in
            var parser = JSONParser(bytes: buffer)
            parser.skipWhitespace()
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            guard parser.position == buffer.count else { throw parser.failure("unexpected text after the JSON value") }
            return value
        }
    }
}

extension ZarrJSON: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: ZarrJSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, ZarrJSON)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

// MARK: - Serialization

extension ZarrJSON {
    /// `indent == nil` means compact output. Arrays of scalars stay on one line even when
    /// pretty, which keeps shapes like `[5, 7, 3]` readable.
    fileprivate func write(to out: inout String, indent: Int?) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += Self.format(d)
        case .string(let s): Self.writeString(s, to: &out)
        case .array(let elements):
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
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{"
            for (n, key) in members.keys.sorted().enumerated() {
                if n > 0 { out += "," }
                if let indent { Self.newline(&out, indent + 1) }
                Self.writeString(key, to: &out)
                out += indent == nil ? ":" : ": "
                members[key]!.write(to: &out, indent: indent.map { $0 + 1 })
            }
            if let indent { Self.newline(&out, indent) }
            out += "}"
        }
    }

    private var isScalar: Bool {
        switch self {
        case .array(let a): return a.isEmpty
        case .object(let o): return o.isEmpty
        default: return true
        }
    }

    private static func newline(_ out: inout String, _ level: Int) {
        out += "\n"
        out += String(repeating: "  ", count: level)
    }

    /// Shortest text that reads back as the same Double; always marked as floating point
    /// ("0.0", not "0") so that readers keep the float-ness.
    static func format(_ d: Double) -> String {
        if d.isNaN { return "\"NaN\"" }
        if d.isInfinite { return d < 0 ? "\"-Infinity\"" : "\"Infinity\"" }
        // Swift prints e.g. 1e-05 and 1e+20, both valid JSON numbers.
        return d.description
    }

    private static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }
}

// MARK: - Parsing

/// A small strict RFC 8259 parser. Hand-written rather than JSONSerialization because
/// Foundation's NSNumber bridging on Linux blurs ints, doubles and bools, which matters
/// for fill values and attribute round-trips.
private struct JSONParser {
    let bytes: UnsafeBufferPointer<UInt8>
    var position = 0

    init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    func failure(_ message: String) -> ZarrError {
        ZarrError(path: "", message: "invalid JSON at byte \(position): \(message)")
    }

    mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    mutating func parseValue(depth: Int) throws -> ZarrJSON {
        // Deeply nested input would otherwise overflow the stack.
        guard depth < 512 else { throw failure("nesting too deep") }
        guard position < bytes.count else { throw failure("unexpected end of input") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw failure("unexpected character '\(Character(Unicode.Scalar(bytes[position])))'")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count else { throw failure("unexpected end of input") }
        for i in 0..<count where bytes[position + i] != literal.utf8Start[i] {
            throw failure("expected \(literal)")
        }
        position += count
    }

    private mutating func parseObject(depth: Int) throws -> ZarrJSON {
        position += 1
        var members: [String: ZarrJSON] = [:]
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw failure("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw failure("expected ':'") }
            position += 1
            skipWhitespace()
            members[key] = try parseValue(depth: depth + 1)
            skipWhitespace()
            guard position < bytes.count else { throw failure("unexpected end of input in object") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
            throw failure("expected ',' or '}'")
        }
    }

    private mutating func parseArray(depth: Int) throws -> ZarrJSON {
        position += 1
        var elements: [ZarrJSON] = []
        skipWhitespace()
        if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard position < bytes.count else { throw failure("unexpected end of input in array") }
            if bytes[position] == UInt8(ascii: ",") { position += 1; continue }
            if bytes[position] == UInt8(ascii: "]") { position += 1; return .array(elements) }
            throw failure("expected ',' or ']'")
        }
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw failure("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[position]
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
            default: throw failure("bad hex digit in \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    private mutating func parseString() throws -> String {
        position += 1
        var raw: [UInt8] = []
        while true {
            guard position < bytes.count else { throw failure("unterminated string") }
            let c = bytes[position]
            position += 1
            switch c {
            case UInt8(ascii: "\""):
                guard let s = String(validating: raw, as: UTF8.self) else { throw failure("string is not valid UTF-8") }
                return s
            case UInt8(ascii: "\\"):
                guard position < bytes.count else { throw failure("unterminated escape") }
                let e = bytes[position]
                position += 1
                switch e {
                case UInt8(ascii: "\""): raw.append(0x22)
                case UInt8(ascii: "\\"): raw.append(0x5C)
                case UInt8(ascii: "/"): raw.append(0x2F)
                case UInt8(ascii: "b"): raw.append(0x08)
                case UInt8(ascii: "f"): raw.append(0x0C)
                case UInt8(ascii: "n"): raw.append(0x0A)
                case UInt8(ascii: "r"): raw.append(0x0D)
                case UInt8(ascii: "t"): raw.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if (0xD800..<0xDC00).contains(code) {
                        // A high surrogate must be followed by an escaped low surrogate.
                        guard position + 2 <= bytes.count, bytes[position] == UInt8(ascii: "\\"),
                            bytes[position + 1] == UInt8(ascii: "u")
                        else { throw failure("unpaired surrogate") }
                        position += 2
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw failure("unpaired surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw failure("invalid \\u escape") }
                    raw.append(contentsOf: Array(String(Character(scalar)).utf8))
                default: throw failure("invalid escape")
                }
            default:
                guard c >= 0x20 else { throw failure("control character in string") }
                raw.append(c)
            }
        }
    }

    private mutating func parseNumber() throws -> ZarrJSON {
        let start = position
        var isInteger = true
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.position
            while p.position < p.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(p.bytes[p.position]) {
                p.position += 1
            }
            return p.position - s
        }
        let intStart = position
        let intDigits = digits(&self)
        guard intDigits > 0 else { throw failure("expected digits") }
        if intDigits > 1, bytes[intStart] == UInt8(ascii: "0") { throw failure("leading zero in number") }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard digits(&self) > 0 else { throw failure("expected digits after '.'") }
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            isInteger = false
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            guard digits(&self) > 0 else { throw failure("expected exponent digits") }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        if isInteger, let i = Int64(text) { return .int(i) }
        guard let d = Double(text) else { throw failure("bad number \(text)") }
        return .double(d)
    }
}
