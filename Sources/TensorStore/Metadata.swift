/// One entry of the zarr v3 `codecs` list that this store understands.
public enum ZarrCodec: Sendable, Equatable {
    public enum Endian: String, Sendable { case little, big }

    /// array -> bytes. `endian` nil means the configuration was absent, which the spec
    /// allows only for one-byte types (zarr-python writes uint8 that way).
    case bytes(endian: Endian?)
    /// bytes -> bytes. `checksum` is zstd's own frame checksum, independent of crc32c.
    case zstd(level: Int, checksum: Bool)
    /// bytes -> bytes: CRC-32C of the input appended as 4 little-endian bytes.
    case crc32c

    var json: ZarrJSON {
        switch self {
        case .bytes(let endian):
            guard let endian else { return ["name": "bytes"] }
            return ["name": "bytes", "configuration": ["endian": .string(endian.rawValue)]]
        case .zstd(let level, let checksum):
            return ["name": "zstd", "configuration": ["level": .int(Int(level)), "checksum": .bool(checksum)]]
        case .crc32c:
            return ["name": "crc32c"]
        }
    }
}

/// How chunk indices become file names. Writers always use `.default("/")`; `.v2` is
/// read for arrays converted from zarr v2 layouts.
public enum ZarrChunkKeyEncoding: Sendable, Equatable {
    case `default`(separator: String)
    case v2(separator: String)

    var json: ZarrJSON {
        switch self {
        case .default(let s): return ["name": "default", "configuration": ["separator": .string(s)]]
        case .v2(let s): return ["name": "v2", "configuration": ["separator": .string(s)]]
        }
    }
}

/// The content of an array's zarr.json.
///
/// `attributes` uses `ZarrJSON`, a JSON value enum, so any JSON the spec allows there
/// round-trips (e.g. `["unit": "m", "scale": 0.5, "axes": ["z", "y", "x"]]`).
/// `fillValue` is a Double: exact for every float value and for integers up to 2^53.
public struct ZarrArrayMetadata: Sendable, Equatable {
    public var shape: [Int]
    public var chunkShape: [Int]
    public var dataType: ZarrDataType
    public var fillValue: Double
    public var attributes: [String: ZarrJSON]
    /// In storage order: the array->bytes codec first, then bytes->bytes codecs.
    public var codecs: [ZarrCodec]
    public var chunkKeyEncoding: ZarrChunkKeyEncoding
    /// nil writes `"dimension_names": null`.
    public var dimensionNames: [String?]?

    /// The standard layout of this store: bytes(little) -> zstd(level) -> crc32c.
    public init(
        shape: [Int], chunkShape: [Int], dataType: ZarrDataType, fillValue: Double = 0,
        compressionLevel: Int = 3, attributes: [String: ZarrJSON] = [:]
    ) {
        self.init(
            shape: shape, chunkShape: chunkShape, dataType: dataType, fillValue: fillValue,
            codecs: [.bytes(endian: .little), .zstd(level: compressionLevel, checksum: false), .crc32c],
            attributes: attributes)
    }

    public init(
        shape: [Int], chunkShape: [Int], dataType: ZarrDataType, fillValue: Double = 0,
        codecs: [ZarrCodec], chunkKeyEncoding: ZarrChunkKeyEncoding = .default(separator: "/"),
        dimensionNames: [String?]? = nil, attributes: [String: ZarrJSON] = [:]
    ) {
        self.shape = shape
        self.chunkShape = chunkShape
        self.dataType = dataType
        self.fillValue = fillValue
        self.codecs = codecs
        self.chunkKeyEncoding = chunkKeyEncoding
        self.dimensionNames = dimensionNames
        self.attributes = attributes
    }

    /// The zstd level, or nil when chunks are stored uncompressed.
    public var compressionLevel: Int? {
        for case .zstd(let level, _) in codecs { return level }
        return nil
    }

    public var rank: Int { shape.count }
    public var elementCount: Int { shape.reduce(1, *) }
    public var chunkElementCount: Int { chunkShape.reduce(1, *) }
    /// Decoded size of every chunk; edge chunks are padded to the full chunk shape.
    public var chunkByteCount: Int { chunkElementCount * dataType.byteSize }

    /// Chunks per dimension; 0 along an empty dimension, so such arrays have no chunks.
    public var chunkCounts: [Int] {
        zip(shape, chunkShape).map { s, c in (s + c - 1) / c }
    }

    /// Total number of chunks (1 for a 0-d array).
    public var chunkCount: Int { chunkCounts.reduce(1, *) }

    /// The part of the array that a chunk covers, with `extent` clipped at the array's edges.
    public func chunkRegion(_ chunkIndex: [Int]) -> (origin: [Int], extent: [Int]) {
        var origin = [Int](repeating: 0, count: rank)
        var extent = [Int](repeating: 0, count: rank)
        for d in 0..<min(rank, chunkIndex.count) {
            origin[d] = chunkIndex[d] * chunkShape[d]
            extent[d] = max(0, min(chunkShape[d], shape[d] - origin[d]))
        }
        return (origin, extent)
    }

    /// Every chunk index in C order (last dimension fastest).
    public var allChunkIndices: [[Int]] {
        (0..<chunkCount).map(chunkIndex(linear:))
    }

    func chunkIndex(linear: Int) -> [Int] {
        let counts = chunkCounts
        var index = [Int](repeating: 0, count: rank)
        var rest = linear
        for d in stride(from: rank - 1, through: 0, by: -1) {
            index[d] = rest % counts[d]
            rest /= counts[d]
        }
        return index
    }

    /// The chunk's path relative to the array folder, e.g. "c/1/0/2" ("c" for 0-d).
    public func chunkKey(_ chunkIndex: [Int]) -> String {
        switch chunkKeyEncoding {
        case .default(let sep):
            return chunkIndex.isEmpty ? "c" : "c" + sep + chunkIndex.map(String.init).joined(separator: sep)
        case .v2(let sep):
            return chunkIndex.isEmpty ? "0" : chunkIndex.map(String.init).joined(separator: sep)
        }
    }

    func checkChunkIndex(_ chunkIndex: [Int], path: String) throws {
        let counts = chunkCounts
        guard chunkIndex.count == rank, zip(chunkIndex, counts).allSatisfy({ $0 >= 0 && $0 < $1 }) else {
            throw ZarrError(
                path: path,
                message: "chunk index \(chunkIndex) is outside the chunk grid \(counts) of shape \(shape)")
        }
    }

    /// Checks the invariants the codec and geometry code rely on.
    func validate(path: String) throws {
        func fail(_ message: String) -> ZarrError { ZarrError(path: path, message: message) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("shape \(shape) has a negative size") }
        guard chunkShape.count == shape.count else {
            throw fail("chunk shape \(chunkShape) must have the rank of shape \(shape)")
        }
        guard chunkShape.allSatisfy({ $0 > 0 }) else { throw fail("chunk shape \(chunkShape) must be positive") }
        let (chunkElements, overflow) = chunkShape.reduce((1, false)) { acc, c in
            let r = acc.0.multipliedReportingOverflow(by: c)
            return (r.partialValue, acc.1 || r.overflow)
        }
        guard !overflow, !chunkElements.multipliedReportingOverflow(by: dataType.byteSize).overflow,
            chunkElements * dataType.byteSize < Int(Int32.max)
        else { throw fail("chunk shape \(chunkShape) is too large for one chunk (limit 2 GiB)") }
        if let names = dimensionNames, names.count != rank {
            throw fail("dimension_names has \(names.count) entries, expected \(rank)")
        }
        do {
            _ = try dataType.elementBytes(of: fillValue)
        } catch let error as ZarrError {
            throw fail(error.message)
        }
        guard case .bytes(let endian) = codecs.first else {
            throw fail("codecs must start with the \"bytes\" codec")
        }
        if endian == nil, dataType.byteSize > 1 {
            throw fail("the \"bytes\" codec needs an \"endian\" configuration for \(dataType.rawValue)")
        }
        for codec in codecs.dropFirst() {
            if case .bytes = codec { throw fail("the \"bytes\" codec may appear only once, first") }
        }
        if case .zstd(let level, _) = codecs.first(where: { if case .zstd = $0 { return true } else { return false } }),
            !(-131072...22).contains(level)
        {
            throw fail("zstd level \(level) is outside -131072...22")
        }
        switch chunkKeyEncoding {
        case .default(let s), .v2(let s):
            guard s == "/" || s == "." else { throw fail("chunk key separator must be \"/\" or \".\", not \"\(s)\"") }
        }
    }

    // MARK: JSON

    public var json: ZarrJSON {
        var fill: ZarrJSON
        if dataType.isFloatingPoint {
            fill = .float(fillValue)  // the serializer spells NaN/±inf as the spec's strings
        } else {
            fill = .int(Int(exactly: fillValue) ?? 0)
        }
        if fillValue.isNaN { fill = "NaN" }
        return [
            "zarr_format": 3,
            "node_type": "array",
            "shape": .list(shape.map { .int(Int($0)) }),
            "data_type": .string(dataType.rawValue),
            "chunk_grid": [
                "name": "regular",
                "configuration": ["chunk_shape": .list(chunkShape.map { .int(Int($0)) })],
            ],
            "chunk_key_encoding": chunkKeyEncoding.json,
            "fill_value": fill,
            "codecs": .list(codecs.map(\.json)),
            "attributes": .map(attributes),
            "dimension_names": dimensionNames.map { .list($0.map { $0.map(ZarrJSON.string) ?? .null }) } ?? .null,
        ]
    }

    /// Parses and validates a zarr.json; `path` names the file in errors.
    /// Unknown top-level keys are ignored (everything that changes how bytes are
    /// interpreted lives in keys that are checked strictly).
    public static func parse(_ json: ZarrJSON, path: String) throws -> ZarrArrayMetadata {
        func fail(_ message: String) -> ZarrError { ZarrError(path: path, message: message) }
        guard let root = json.mapValue else { throw fail("expected a JSON object") }
        guard let format = root["zarr_format"] else {
            throw fail("missing \"zarr_format\"; expected a zarr v3 array (zarr_format 3)")
        }
        guard format.intValue == 3 else {
            throw fail("zarr_format is \(format), expected 3 (only zarr v3 is supported)")
        }
        guard let nodeType = root["node_type"]?.stringValue else { throw fail("missing \"node_type\"") }
        guard nodeType == "array" else {
            throw fail("node_type is \"\(nodeType)\", expected \"array\"")
        }

        func intList(_ value: ZarrJSON?, _ name: String) throws -> [Int] {
            guard let list = value?.listValue else { throw fail("\"\(name)\" must be a list of integers") }
            return try list.map {
                guard let i = $0.intValue, i >= 0 else { throw fail("\"\(name)\" must hold non-negative integers, got \($0)") }
                return i
            }
        }

        let shape = try intList(root["shape"], "shape")

        guard let typeName = root["data_type"]?.stringValue else {
            throw fail("\"data_type\" must be a string, got \(root["data_type"] ?? .null)")
        }
        guard let dataType = ZarrDataType(rawValue: typeName) else {
            let known = ZarrDataType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail("unsupported data_type \"\(typeName)\" (supported: \(known))")
        }

        guard let grid = root["chunk_grid"], grid["name"]?.stringValue == "regular" else {
            throw fail("chunk_grid must be {\"name\": \"regular\", ...}, got \(root["chunk_grid"] ?? .null)")
        }
        let chunkShape = try intList(grid["configuration"]?["chunk_shape"], "chunk_grid.configuration.chunk_shape")

        let keyEncoding: ZarrChunkKeyEncoding
        let keyJSON = root["chunk_key_encoding"] ?? ["name": "default"]
        switch keyJSON["name"]?.stringValue {
        case "default":
            keyEncoding = .default(separator: keyJSON["configuration"]?["separator"]?.stringValue ?? "/")
        case "v2":
            keyEncoding = .v2(separator: keyJSON["configuration"]?["separator"]?.stringValue ?? ".")
        default:
            throw fail("unsupported chunk_key_encoding \(keyJSON) (supported: default, v2)")
        }

        guard let fillJSON = root["fill_value"] else { throw fail("missing \"fill_value\"") }
        let fillValue = try parseFillValue(fillJSON, dataType: dataType, path: path)

        guard let codecList = root["codecs"]?.listValue, !codecList.isEmpty else {
            throw fail("\"codecs\" must be a non-empty list")
        }
        let codecs = try codecList.map { try parseCodec($0, path: path) }

        if let transformers = root["storage_transformers"], transformers.listValue?.isEmpty != true {
            throw fail("storage_transformers are not supported, got \(transformers)")
        }

        var dimensionNames: [String?]?
        if let names = root["dimension_names"], !names.isNull {
            guard let list = names.listValue else { throw fail("dimension_names must be a list or null") }
            dimensionNames = try list.map {
                if $0.isNull { return nil }
                guard let s = $0.stringValue else { throw fail("dimension_names must hold strings or null") }
                return s
            }
        }

        var attributes: [String: ZarrJSON] = [:]
        if let a = root["attributes"] {
            guard let object = a.mapValue else { throw fail("attributes must be a JSON object") }
            attributes = object
        }

        let metadata = ZarrArrayMetadata(
            shape: shape, chunkShape: chunkShape, dataType: dataType, fillValue: fillValue, codecs: codecs,
            chunkKeyEncoding: keyEncoding, dimensionNames: dimensionNames, attributes: attributes)
        try metadata.validate(path: path)
        return metadata
    }

    private static func parseCodec(_ json: ZarrJSON, path: String) throws -> ZarrCodec {
        func fail(_ message: String) -> ZarrError { ZarrError(path: path, message: message) }
        // The spec allows a bare name for codecs without configuration.
        let name = json.stringValue ?? json["name"]?.stringValue
        let configuration = json["configuration"]
        switch name {
        case "bytes":
            guard let endianJSON = configuration?["endian"] else { return .bytes(endian: nil) }
            guard let endian = endianJSON.stringValue.flatMap(ZarrCodec.Endian.init(rawValue:)) else {
                throw fail("bytes codec endian must be \"little\" or \"big\", got \(endianJSON)")
            }
            return .bytes(endian: endian)
        case "zstd":
            let level = configuration?["level"]?.intValue ?? 0
            let checksum = configuration?["checksum"]?.boolValue ?? false
            return .zstd(level: level, checksum: checksum)
        case "crc32c":
            return .crc32c
        case let other?:
            throw fail("unsupported codec \"\(other)\" (supported: bytes, zstd, crc32c)")
        case nil:
            throw fail("codec entry \(json) has no name")
        }
    }

    /// Accepts every fill_value spelling of the v3 spec for numeric types: a JSON number,
    /// "NaN"/"Infinity"/"-Infinity", or "0x..." giving the float's bit pattern.
    static func parseFillValue(_ json: ZarrJSON, dataType: ZarrDataType, path: String) throws -> Double {
        func fail() -> ZarrError {
            ZarrError(path: path, message: "fill_value \(json) is not valid for data_type \(dataType.rawValue)")
        }
        switch json {
        case .int(let i):
            return Double(i)
        case .float(let d):
            guard dataType.isFloatingPoint || d.rounded() == d else { throw fail() }
            return d
        case .string(let s) where dataType.isFloatingPoint:
            switch s {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            default:
                guard s.hasPrefix("0x"), s.count == 2 + 2 * dataType.byteSize,
                    let bits = UInt64(s.dropFirst(2), radix: 16)
                else { throw fail() }
                switch dataType {
                case .float16: return HalfFloat.double(fromBits: UInt16(bits))
                case .float32: return Double(Float(bitPattern: UInt32(bits)))
                default: return Double(bitPattern: bits)
                }
            }
        default:
            throw fail()
        }
    }
}

extension ZarrArrayMetadata {
    /// Decodes one stored chunk file's bytes through this array's codec chain into the chunk's
    /// native bytes (C order, little-endian); damage is an error, never a trap (fuzzed: Tests/Fuzz).
    public func decodeChunk(_ stored: [UInt8]) throws -> [UInt8] {
        try ChunkCodec(self).decode(stored)
    }
}
