import CHDF5
import Foundation

/// An error reading an HDF5 file: the file, the dataset or attribute it concerns, and why.
public struct HDF5Error: Error, CustomStringConvertible, Equatable {
    public var path: String
    /// The dataset (and attribute, as `dataset@attribute`) the error concerns, if any.
    public var object: String?
    public var reason: String

    public init(path: String, object: String? = nil, _ reason: String) {
        self.path = path
        self.object = object
        self.reason = reason
    }

    public var description: String {
        guard let object else { return "\(path): \(reason)" }
        return "\(path): dataset '\(object)': \(reason)"
    }
}

/// A read-only HDF5 file (libhdf5). Every C call goes through `check`, which turns a negative id or
/// status into an `HDF5Error` naming the file and the object.
public final class HDF5File {
    public let path: String
    private let id: hid_t

    public init(path: String) throws {
        nic_h5_quiet()
        guard FileManager.default.fileExists(atPath: path) else { throw HDF5Error(path: path, "no such file") }
        guard H5Fis_hdf5(path) > 0 else { throw HDF5Error(path: path, "not an HDF5 file") }
        let id = H5Fopen(path, nic_h5f_acc_rdonly(), nic_h5_default())
        guard id >= 0 else { throw HDF5Error(path: path, "libhdf5 cannot open it") }
        self.path = path
        self.id = id
    }

    deinit { H5Fclose(id) }

    /// Whether a link of that name exists at the root (a dataset or a group).
    public func contains(_ name: String) -> Bool { H5Lexists(id, name, nic_h5_default()) > 0 }

    public func dataset(_ name: String) throws -> HDF5Dataset {
        guard contains(name) else { throw HDF5Error(path: path, object: name, "missing") }
        let dataset = H5Dopen2(id, name, nic_h5_default())
        guard dataset >= 0 else { throw HDF5Error(path: path, object: name, "not a dataset") }
        return try HDF5Dataset(file: self, name: name, id: dataset)
    }
}

/// One dataset: its shape, its values converted to a native type by libhdf5 (float16, float32,
/// float64 and every integer width convert), and its numeric attributes.
public final class HDF5Dataset {
    public let name: String
    public let shape: [Int]
    private let file: HDF5File
    private let id: hid_t

    fileprivate init(file: HDF5File, name: String, id: hid_t) throws {
        self.file = file
        self.name = name
        self.id = id
        let space = H5Dget_space(id)
        guard space >= 0 else { H5Dclose(id); throw HDF5Error(path: file.path, object: name, "no dataspace") }
        defer { H5Sclose(space) }
        let rank = Int(H5Sget_simple_extent_ndims(space))
        guard rank >= 0 else { H5Dclose(id); throw HDF5Error(path: file.path, object: name, "not a simple dataspace") }
        var dims = [hsize_t](repeating: 0, count: max(rank, 1))
        H5Sget_simple_extent_dims(space, &dims, nil)
        shape = dims.prefix(rank).map { Int(clamping: $0) }
    }

    deinit { H5Dclose(id) }

    /// Elements (Int.max when a hostile header's shape overflows).
    public var count: Int {
        shape.reduce(1) { total, dim in
            let (product, overflow) = total.multipliedReportingOverflow(by: max(dim, 0))
            return overflow ? Int.max : product
        }
    }

    /// The values in row-major order as Float (libhdf5 converts the stored type).
    public func readFloats() throws -> [Float] {
        try read(nic_h5t_native_float(), zero: Float(0))
    }

    /// The values in row-major order as Int64; a floating-point dataset is an error (coordinates
    /// stored as floats would be silently truncated).
    public func readIntegers() throws -> [Int64] {
        let type = H5Dget_type(id)
        defer { H5Tclose(type) }
        guard H5Tget_class(type) == H5T_INTEGER else {
            throw HDF5Error(path: file.path, object: name, "expected integers, found \(Self.className(H5Tget_class(type)))")
        }
        return try read(nic_h5t_native_int64(), zero: Int64(0))
    }

    private func read<T>(_ memoryType: hid_t, zero: T) throws -> [T] {
        var values = [T](repeating: zero, count: count)
        guard !values.isEmpty else { return values }
        let status = values.withUnsafeMutableBytes { H5Dread(id, memoryType, nic_h5_all(), nic_h5_all(), nic_h5_default(), $0.baseAddress) }
        guard status >= 0 else {
            let type = H5Dget_type(id)
            defer { H5Tclose(type) }
            throw HDF5Error(path: file.path, object: name, "cannot read \(Self.className(H5Tget_class(type))) values as \(T.self)")
        }
        return values
    }

    /// A scalar (or one-element) numeric attribute; nil when absent. A string or array is an error.
    public func numberAttribute(_ attribute: String) throws -> Double? {
        guard H5Aexists(id, attribute) > 0 else { return nil }
        let where_ = "\(name)@\(attribute)"
        let a = H5Aopen(id, attribute, nic_h5_default())
        guard a >= 0 else { throw HDF5Error(path: file.path, object: where_, "cannot open the attribute") }
        defer { H5Aclose(a) }
        let type = H5Aget_type(a), space = H5Aget_space(a)
        defer { H5Tclose(type); H5Sclose(space) }
        let kind = H5Tget_class(type)
        guard kind == H5T_INTEGER || kind == H5T_FLOAT else {
            throw HDF5Error(path: file.path, object: where_, "expected a number, found \(Self.className(kind))")
        }
        guard H5Sget_simple_extent_npoints(space) == 1 else {
            throw HDF5Error(path: file.path, object: where_, "expected one number, found \(H5Sget_simple_extent_npoints(space))")
        }
        var value = 0.0
        guard H5Aread(a, nic_h5t_native_double(), &value) >= 0 else { throw HDF5Error(path: file.path, object: where_, "cannot read it as a number") }
        return value
    }

    static func className(_ kind: H5T_class_t) -> String {
        switch kind {
        case H5T_INTEGER: return "integers"
        case H5T_FLOAT: return "floating-point numbers"
        case H5T_STRING: return "strings"
        case H5T_COMPOUND: return "compound records"
        case H5T_ENUM: return "enum values"
        default: return "values of HDF5 class \(kind.rawValue)"
        }
    }
}
