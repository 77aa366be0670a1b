// Chunks are stored little-endian and converted by reinterpreting memory, so a
// big-endian host would silently corrupt data; refuse to build there instead.
#if _endian(big)
#error("TensorStore assumes a little-endian host")
#endif

/// The zarr v3 core data types this store reads and writes (names are the spec's `data_type` strings).
public enum ZarrDataType: String, Sendable, CaseIterable {
    case uint8, int32, int64, float16, float32, float64

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .uint8: return 1
        case .float16: return 2
        case .int32, .float32: return 4
        case .int64, .float64: return 8
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float16, .float32, .float64: return true
        case .uint8, .int32, .int64: return false
        }
    }

    /// The little-endian bytes of one element equal to `value`.
    /// Throws when `value` has no exact counterpart in an integer type, because a
    /// silently rounded fill value would make "missing chunk" and "written chunk" disagree.
    func elementBytes(of value: Double) throws -> [UInt8] {
        func bytes<T>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
        switch self {
        case .uint8:
            guard let v = UInt8(exactly: value) else { throw invalid(value) }
            return [v]
        case .int32:
            guard let v = Int32(exactly: value) else { throw invalid(value) }
            return bytes(v)
        case .int64:
            guard let v = Int64(exactly: value) else { throw invalid(value) }
            return bytes(v)
        case .float16:
            return bytes(try HalfFloat.bits(from: value))
        case .float32:
            return bytes(Float(value).bitPattern)
        case .float64:
            return bytes(value.bitPattern)
        }
    }

    private func invalid(_ value: Double) -> ZarrError {
        ZarrError(path: "", message: "fill value \(value) is not representable as \(rawValue)")
    }
}

/// Swift element types that map one-to-one onto a zarr data type; typed reads and
/// writes check `zarrDataType` against the array's `data_type`.
public protocol ZarrScalar {
    static var zarrDataType: ZarrDataType { get }
}

extension UInt8: ZarrScalar { public static var zarrDataType: ZarrDataType { .uint8 } }
extension Int32: ZarrScalar { public static var zarrDataType: ZarrDataType { .int32 } }
extension Int64: ZarrScalar { public static var zarrDataType: ZarrDataType { .int64 } }
extension Float: ZarrScalar { public static var zarrDataType: ZarrDataType { .float32 } }
extension Double: ZarrScalar { public static var zarrDataType: ZarrDataType { .float64 } }
// Float16 does not exist on Intel Macs; float16 arrays are still readable there as raw bytes.
#if !(os(macOS) && arch(x86_64))
extension Float16: ZarrScalar { public static var zarrDataType: ZarrDataType { .float16 } }
#endif

/// float16 <-> Double without naming `Float16` at the call sites, so the module still
/// builds where the type is missing (Intel Macs).
enum HalfFloat {
    static func bits(from value: Double) throws -> UInt16 {
        #if !(os(macOS) && arch(x86_64))
        return Float16(value).bitPattern
        #else
        throw ZarrError(path: "", message: "float16 is not supported on this platform")
        #endif
    }

    static func double(fromBits bits: UInt16) -> Double {
        let sign: Double = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int((bits >> 10) & 0x1F)
        let fraction = Double(bits & 0x3FF)
        switch exponent {
        case 0: return sign * fraction * 0x1p-24
        case 0x1F: return fraction == 0 ? sign * .infinity : .nan
        default: return sign * (1 + fraction / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }
}
