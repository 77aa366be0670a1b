import Foundation
import TensorStore

/// The safetensors format (8-byte little-endian header length, JSON header, raw little-endian data),
/// as `safetensors.torch.load_file` reads it.
public enum Safetensors {
    public enum Value {
        case f32([Float], shape: [Int])
        case f16([Float16], shape: [Int])
        case f64([Double], shape: [Int])
        case i64([Int64], shape: [Int])

        var dtype: String {
            switch self { case .f32: return "F32"; case .f16: return "F16"; case .f64: return "F64"; case .i64: return "I64" }
        }
        public var shape: [Int] {
            switch self { case let .f32(_, s), let .f16(_, s), let .f64(_, s), let .i64(_, s): return s }
        }
        var bytes: Data {
            switch self {
            case .f32(let v, _): return v.withUnsafeBytes { Data($0) }
            case .f16(let v, _): return v.withUnsafeBytes { Data($0) }
            case .f64(let v, _): return v.withUnsafeBytes { Data($0) }
            case .i64(let v, _): return v.withUnsafeBytes { Data($0) }
            }
        }

        /// As Float64 (exact for every dtype here).
        public var doubles: [Double] {
            switch self {
            case .f64(let v, _): return v
            default: return floats.map(Double.init)
            }
        }

        /// As Float32 (integers converted).
        public var floats: [Float] {
            switch self {
            case .f32(let v, _): return v
            case .f16(let v, _): return v.map(Float.init)
            case .f64(let v, _): return v.map(Float.init)
            case .i64(let v, _): return v.map(Float.init)
            }
        }
    }

    public static func write(_ tensors: [(String, Value)], metadata: [String: String] = [:], to url: URL) throws {
        var header = "{"
        var offset = 0
        var parts: [String] = []
        if !metadata.isEmpty {
            parts.append("\"__metadata__\":{" + metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }.joined(separator: ",") + "}")
        }
        var body = Data()
        for (name, value) in tensors {
            let bytes = value.bytes
            parts.append("\(jsonString(name)):{\"dtype\":\"\(value.dtype)\",\"shape\":[\(value.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes.count)]}")
            offset += bytes.count
            body.append(bytes)
        }
        header += parts.joined(separator: ",") + "}"
        // The data must start 8-byte aligned; the format pads the header with spaces.
        while (header.utf8.count) % 8 != 0 { header += " " }
        var out = Data()
        var length = UInt64(header.utf8.count).littleEndian
        out.append(Data(bytes: &length, count: 8))
        out.append(Data(header.utf8))
        out.append(body)
        try out.write(to: url, options: .atomic)
    }

    public static func read(_ url: URL) throws -> [String: Value] {
        let data: Data
        do { data = try Data(contentsOf: url) }
        catch { throw NeuralError.weights(file: url.path, message: "cannot read the file (\(error.localizedDescription))") }
        return try read(data: data, file: url.path)
    }

    /// Parses a safetensors file's bytes; `file` names it in errors. Every length, offset and shape
    /// in the header is checked against the data before use (fuzzed: Tests/Fuzz).
    public static func read(data: Data, file: String) throws -> [String: Value] {
        guard data.count >= 8 else { throw NeuralError.weights(file: file, message: "too short for a safetensors file") }
        let declared = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared > 0, declared <= UInt64(data.count - 8) else { throw NeuralError.weights(file: file, message: "header length \(declared) does not fit the file") }
        let n = Int(declared)  // checked: at most the file's size
        let header: Any
        do { header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) }
        catch { throw NeuralError.weights(file: file, message: "header is not valid JSON") }
        guard let json = header as? [String: Any] else {
            throw NeuralError.weights(file: file, message: "header is not a JSON object")
        }
        let base = 8 + n
        var out: [String: Value] = [:]
        for (name, entry) in json where name != "__metadata__" {
            guard let e = entry as? [String: Any], let dtype = e["dtype"] as? String, let shape = e["shape"] as? [Int],
                  let offs = e["data_offsets"] as? [Int], offs.count == 2, offs[0] >= 0, offs[0] <= offs[1], offs[1] <= data.count - base else {
                throw NeuralError.weights(file: file, message: "bad header entry for '\(name)'")
            }
            // The element count of a hostile shape may overflow: checked, like every dimension's sign.
            var count = 1
            for dim in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: dim)
                guard dim >= 0, !overflow else { throw NeuralError.weights(file: file, message: "'\(name)': impossible shape \(shape)") }
                count = product
            }
            let bytes = data.subdata(in: (base + offs[0])..<(base + offs[1]))
            func load<T>(_: T.Type) throws -> [T] {
                guard count <= bytes.count, bytes.count == count * MemoryLayout<T>.size else {
                    throw NeuralError.weights(file: file, message: "'\(name)': \(bytes.count) bytes for shape \(shape) of \(dtype)")
                }
                return bytes.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self) } }
            }
            switch dtype {
            case "F32": out[name] = .f32(try load(Float.self), shape: shape)
            case "F16": out[name] = .f16(try load(Float16.self), shape: shape)
            case "I64": out[name] = .i64(try load(Int64.self), shape: shape)
            case "F64": out[name] = .f64(try load(Double.self), shape: shape)
            default: throw NeuralError.weights(file: file, message: "'\(name)': unsupported dtype \(dtype) (F32, F16, F64, I64)")
            }
        }
        return out
    }

    /// A JSON string literal, escaped as the zarr metadata writer does.
    static func jsonString(_ s: String) -> String {
        ZarrJSON.string(s).serialized(pretty: false)
    }
}

extension Network {
    /// Tensors in PyTorch layout and naming (`layers.0.weight` [out, in/groups, kh, kw], BN running stats
    /// and `num_batches_tracked`), so `model.load_state_dict(load_file(path))` works on the same module tree.
    public func stateDict() -> [(String, Safetensors.Value)] {
        var out: [(String, Safetensors.Value)] = []
        for layer in layers {
            for p in layer.parameters + layer.buffers {
                out.append((p.key, .f32(p.torchValue.data, shape: p.torchShape)))
            }
            if let bn = layer as? BatchNorm {
                out.append((bn.name + ".num_batches_tracked", .i64([bn.batchesTracked], shape: [])))
            }
        }
        return out
    }

    /// Refuses weights with NaN or infinity (a diverged training), naming the first such layer, so
    /// that no node caches a broken model.
    public func save(to url: URL, metadata: [String: String] = [:]) throws {
        for layer in layers {
            for p in layer.parameters + layer.buffers where !p.torchValue.data.allSatisfy(\.isFinite) {
                throw NeuralError.weights(file: url.path, message: "'\(p.key)' of layer '\(layer.name)' holds NaN or infinity (training diverged: lower the learning rate); nothing was saved")
            }
        }
        try Safetensors.write(stateDict(), metadata: metadata.merging(["format": "pt", "layout": "pytorch"]) { a, _ in a }, to: url)
    }

    /// Loads every parameter and buffer; a missing tensor or a wrong shape is an error naming it.
    public func load(from url: URL) throws {
        let file = url.path
        let tensors = try Safetensors.read(url)
        let expected = try load(tensors, file: file)
        let unexpected = Set(tensors.keys).subtracting(expected)
        if !unexpected.isEmpty {
            throw NeuralError.weights(file: file, message: "tensors this network does not have: \(unexpected.sorted().joined(separator: ", "))")
        }
    }

    /// Loads this network's tensors out of `tensors` (a file holding more, e.g. a whole model's);
    /// returns the names it took.
    @discardableResult
    public func load(_ tensors: [String: Safetensors.Value], file: String) throws -> Set<String> {
        var expected = Set<String>()
        for layer in layers {
            for p in layer.parameters + layer.buffers {
                expected.insert(p.key)
                guard let v = tensors[p.key] else { throw NeuralError.weights(file: file, message: "missing tensor '\(p.key)' (layer '\(layer.name)')") }
                guard v.shape == p.torchShape else {
                    throw NeuralError.weights(file: file, message: "'\(p.key)' has shape \(v.shape), layer '\(layer.name)' expects \(p.torchShape)")
                }
                p.setTorchValue(Tensor(shape: v.shape, data: v.floats))
            }
            if let bn = layer as? BatchNorm {
                let key = bn.name + ".num_batches_tracked"
                expected.insert(key)
                if case .i64(let v, _)? = tensors[key], let first = v.first { bn.batchesTracked = first }
            }
        }
        return expected
    }
}
