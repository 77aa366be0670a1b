import NICBasics
import XCTest
@testable import Neural

/// The repository's `nodes/` folder, found from this file's path.
let repositoryNodes: URL = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("nodes")
}()

final class ArchitectureTests: XCTestCase {
    func load(_ path: String) throws -> Architecture {
        try Architecture.load(file: repositoryNodes.appendingPathComponent(path).path)
    }

    func testNICEncoderShape() throws {
        let net = try load("encoders/nic-encoder.yaml").build(seed: 1)
        XCTAssertEqual(net.inputs[0].shape, [64, 64, 3])
        XCTAssertEqual(net.outputShape, [128])
        // 595,968 weights in the paper's count, which includes the batch-norm running statistics.
        XCTAssertEqual(net.parameterCount + net.buffers.reduce(0) { $0 + $1.value.count }, 595_968)
        let y = try net.forward(GradCheck.random([2, 64, 64, 3], seed: 1), training: false)
        XCTAssertEqual(y.shape, [2, 128])
        XCTAssertEqual(net.parameters.first?.key, "layers.0.weight")
        XCTAssertEqual(net.parameters.first?.torchShape, [128, 3, 3, 3])
    }

    func testChunkedParallelInferenceEqualsWholeBatch() throws {
        let net = try load("encoders/nic-encoder.yaml").build(seed: 2)
        _ = try net.forward(GradCheck.random([6, 64, 64, 3], seed: 4), training: true)  // non-trivial BN statistics
        let x = GradCheck.random([7, 64, 64, 3], seed: 5)
        net.inferenceChunk = 2  // 4 chunks over the workers, the last one short
        let chunked = try net.forward(x, training: false)
        net.compute = ComputeContext(threads: 1)
        let whole = try net.forward(x, training: false)
        XCTAssertEqual(chunked.shape, [7, 128])
        XCTAssertLessThanOrEqual(chunked.maxAbsDifference(whole), 1e-5)
        XCTAssertEqual(BLAS.threads, 1, "OpenBLAS stays at one thread; the workers are nic's")
    }

    func testPatientModelShapes() throws {
        let arch = try load("patient/nic-sepconv8.yaml")
        let net = try arch.build(seed: 1)
        XCTAssertEqual(net.inputs[0].shape, [400, 400, 128])
        XCTAssertEqual(net.outputShape, [128])  // the head (nodes/heads) adds the output layer
        // 400→199→99→49→24→11→5→3→1: check on the trunk output before flatten
        var shape = net.inputs[0].shape
        var sizes: [Int] = []
        for layer in net.layers {
            shape = try layer.outputShape(shape)
            if layer is SeparableConv2D { sizes.append(shape[0]) }
        }
        XCTAssertEqual(sizes, [199, 99, 49, 24, 11, 5, 3, 1])
        XCTAssertEqual(net.parameters.filter { $0.l2 > 0 }.count, 8 * 2 + 1)  // L2 1e-5 on depthwise and pointwise kernels, and the dense
    }

    func testEveryShippedArchitectureBuilds() throws {
        let heads = ["regression", "binary", "cox", "classification"]
        for file in ["encoders/nic-encoder.yaml", "encoders/mean-rgb.yaml", "vae/encoder.yaml", "vae/decoder.yaml", "bigan/generator.yaml",
                     "bigan/discriminator.yaml", "encoders/contrastive-head.yaml", "patient/nic-sepconv8.yaml"] {
            XCTAssertNoThrow(try load(file).build(seed: 1), file)
        }
        for head in heads {
            let arch = try load("heads/\(head).yaml")
            let net = try arch.build(seed: 1, inputShapes: [[128]])
            XCTAssertNotNil(try LossSpec(arch), head)
            XCTAssertEqual(net.inputs[0].shape, [128])
        }
        let gen = try load("bigan/generator.yaml").build(seed: 1)
        XCTAssertEqual(gen.outputShape, [64, 64, 3])
        let disc = try load("bigan/discriminator.yaml").build(seed: 1)
        XCTAssertEqual(disc.inputs.map(\.shape), [[64, 64, 3], [128]])
        XCTAssertEqual(try load("vae/encoder.yaml").build(seed: 1).outputShape, [256])
        XCTAssertEqual(try load("vae/decoder.yaml").build(seed: 1).outputShape, [64, 64, 3])
        XCTAssertEqual(try LossSpec(load("heads/cox.yaml")), .cox(ties: .efron, riskSet: .fold))
        XCTAssertEqual(try LossSpec(load("heads/cox-batch.yaml")), .cox(ties: .efron, riskSet: .batch))
    }

    func testErrorsNameFileLineAndColumn() {
        func error(_ yaml: String) -> String {
            do {
                _ = try Architecture.parse(yaml: yaml, file: "a.yaml").build(seed: 1)
                return "no error"
            } catch { return "\(error)" }
        }
        XCTAssertEqual(error("input: [8, 8, 3]\nlayers:\n  - conv: {filters: 4, kernel: 3}\n  - leaky_relo: 0.2\n"),
                       "a.yaml:4:5: error: 'layers[2]': unknown layer 'leaky_relo' (did you mean 'leaky_relu'?); known: \(Architecture.layerKinds.joined(separator: ", "))")
        XCTAssertEqual(error("input: [8, 8, 3]\nlayers:\n  - conv: {filter: 4, kernel: 3}\n"), "a.yaml:3:12: error: 'layers[1].conv': missing 'filters' ('filter' is written: a typo?)")
        XCTAssertEqual(error("input: [8, 8, 3]\nlayers:\n  - conv: {filters: 4, kernel: 3, strides: 2}\n"),
                       "a.yaml:3:35: error: unknown key 'strides' in 'layers[1].conv' (did you mean 'stride'?); expected 'bias', 'filters', 'groups', 'kernel', 'l2', 'padding', 'stride'")
        XCTAssertEqual(error("input: [8, 8, 3]\nlayers:\n  - flatten\n  - conv: {filters: 4, kernel: 3}\n"),
                       "a.yaml:4:5: error: layer 'layers.1': expected input [H, W, C] (conv needs an image), got shape [192]")
        XCTAssertEqual(error("input: [4, 4, 3]\nlayers:\n  - conv: {filters: 4, kernel: 5}\n"),
                       "a.yaml:3:5: error: layer 'layers.0': expected input at least 5×5 pixels for a 'valid' 5×5 kernel, got shape [4, 4, 3]")
        XCTAssertEqual(error("input: [4]\nlayers:\n  - dense: {units: 2, bias: maybe}\n"), "a.yaml:3:29: error: 'layers[1].dense.bias': expected true or false, found a string (\"maybe\")")
        XCTAssertTrue(error("layers: [{dense: 3}]").contains("input 'input' has no shape"))
    }

    /// The parts of a file only some networks read (a bag model's pool and after, a head's loss,
    /// blocks) are decoded with the layers, so their typos are located too, and every typo of a
    /// file is reported at once.
    func testPoolLossAfterAndBlockErrorsAreLocated() {
        func errors(_ yaml: String) -> [String] {
            do {
                _ = try Architecture.parse(yaml: yaml, file: "a.yaml")
                return []
            } catch let error as SpecErrors { return error.errors.map(\.description) }
            catch { return ["\(error)"] }
        }
        XCTAssertEqual(errors("input: [4]\nlayers: [{dense: 4}]\npool: {type: gated_attention, hiden: 8}\n"),
                       ["a.yaml:3:31: error: unknown key 'hiden' in 'pool' (did you mean 'hidden'?); expected 'dropout', 'hidden', 'type'"])
        XCTAssertEqual(errors("input: [4]\nlayers: [{dense: 1}]\nloss: {type: cox, tie: efron}\n"),
                       ["a.yaml:3:19: error: unknown key 'tie' in 'loss' (did you mean 'ties'?); expected 'risk_set', 'ties', 'type'"])
        XCTAssertEqual(errors("input: [4]\nlayers: []\npool: mean\nafter: [{dense: 0}]\n"),
                       ["a.yaml:4:17: error: 'after[1].dense': 'units' must be a positive integer, got 0"])
        XCTAssertEqual(errors("inputs: {a: [2]}\nblocks:\n  - {name: b, form: [a], layers: [relu]}\n"),
                       ["a.yaml:3:15: error: unknown key 'form' in 'blocks[1]' (did you mean 'from'?); expected 'from', 'layers', 'name'"])
        let both = errors("input: [4]\nlayers: [{dense: {units: 4, bais: true}}, {leaky_relu: {alpah: 0.1}}]\n")
        XCTAssertEqual(both.count, 2, "\(both)")
        XCTAssertTrue(both.contains { $0.hasPrefix("a.yaml:2:29: ") && $0.contains("'bais'") && $0.contains("did you mean 'bias'?") }, "\(both)")
        XCTAssertTrue(both.contains { $0.hasPrefix("a.yaml:2:57: ") && $0.contains("'alpah'") && $0.contains("did you mean 'alpha'?") }, "\(both)")
    }

    func testFlattenThenDenseExportsInPyTorchOrder() throws {
        // A Dense after Flatten of [H, W, C] must see PyTorch's C, H, W order on export.
        let net = try Architecture.parse(yaml: "input: [2, 3, 2]\nlayers: [flatten, {dense: {units: 1, bias: false}}]", file: "f.yaml").build(seed: 1)
        let w = net.parameters[0]
        w.value = Tensor(shape: [1, 12], data: (0..<12).map(Float.init))  // nic column (h·3 + w)·2 + c
        let t = w.torchValue
        for c in 0..<2 { for h in 0..<2 { for x in 0..<3 { XCTAssertEqual(t.data[(c * 2 + h) * 3 + x], Float((h * 3 + x) * 2 + c)) } } }
        w.setTorchValue(t)
        XCTAssertEqual(w.value.data, (0..<12).map(Float.init))
    }
}

final class SafetensorsTests: XCTestCase {
    func testRoundTripThroughFileKeepsOutputs() throws {
        let yaml = "input: [9, 9, 3]\nlayers: [{conv: {filters: 4, kernel: 3, stride: 2}}, {leaky_relu: 0.2}, {batchnorm: {}}, {separable_conv: {filters: 5, kernel: 3}}, flatten, {dense: 2}]"
        let a = try Architecture.parse(yaml: yaml, file: "m.yaml").build(seed: 1)
        let x = GradCheck.random([3, 9, 9, 3], seed: 2)
        _ = try a.forward(x, training: true)  // moves BN running statistics away from their defaults
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("nic-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try a.save(to: url)
        let b = try Architecture.parse(yaml: yaml, file: "m.yaml").build(seed: 99)
        try b.load(from: url)
        XCTAssertEqual(try a.forward(x, training: false), try b.forward(x, training: false))
        let keys = try Safetensors.read(url).keys.sorted()
        XCTAssertEqual(keys, ["layers.0.bias", "layers.0.weight", "layers.2.bias", "layers.2.num_batches_tracked", "layers.2.running_mean",
                              "layers.2.running_var", "layers.2.weight", "layers.3.depthwise.weight", "layers.3.pointwise.bias",
                              "layers.3.pointwise.weight", "layers.5.bias", "layers.5.weight"])
        let st = try Safetensors.read(url)
        XCTAssertEqual(st["layers.3.depthwise.weight"]?.shape, [4, 1, 3, 3])
        XCTAssertEqual(st["layers.3.pointwise.weight"]?.shape, [5, 4, 1, 1])
        XCTAssertEqual(st["layers.5.weight"]?.shape, [2, 20])

        // A file for another architecture is refused with the tensor named.
        let other = try Architecture.parse(yaml: "input: [9, 9, 3]\nlayers: [{conv: {filters: 6, kernel: 3, stride: 2}}]", file: "o.yaml").build(seed: 1)
        XCTAssertThrowsError(try other.load(from: url)) { XCTAssertTrue("\($0)".contains("'layers.0.weight' has shape [4, 3, 3, 3], layer 'layers.0' expects [6, 3, 3, 3]"), "\($0)") }
    }

    /// Hostile headers (as the fuzzer makes them) are errors naming the file, never traps.
    func testHostileHeadersAreErrors() {
        func file(_ header: String, body: [UInt8] = [], length: UInt64? = nil) -> Data {
            var out = Data()
            var n = (length ?? UInt64(header.utf8.count)).littleEndian
            out.append(Data(bytes: &n, count: 8))
            out.append(Data(header.utf8))
            out.append(Data(body))
            return out
        }
        let cases: [(String, Data, String)] = [
            ("header longer than the file", file("{}", length: UInt64.max), "does not fit the file"),
            ("shape whose element count overflows", file(#"{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#, body: [0, 0, 0, 0]), "impossible shape"),
            ("negative dimension", file(#"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, body: [0, 0, 0, 0]), "impossible shape"),
            ("negative offset", file(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, body: [0, 0, 0, 0]), "bad header entry"),
            ("offset past the end", file(#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,9223372036854775807]}}"#, body: [0, 0, 0, 0]), "bad header entry"),
            ("not JSON", file("{\u{1}"), "not valid JSON"),
        ]
        for (name, data, fragment) in cases {
            XCTAssertThrowsError(try Safetensors.read(data: data, file: "w.safetensors"), name) { error in
                XCTAssertTrue("\(error)".contains("w.safetensors") && "\(error)".contains(fragment), "\(name): \(error)")
            }
        }
    }

    func testNonFiniteWeightsAreNotSaved() throws {
        let net = try Architecture.parse(yaml: "input: [4]\nlayers: [{dense: 2}]", file: "d.yaml").build(seed: 1)
        net.parameters[0].value.data[1] = .nan
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("nic-\(UUID().uuidString).safetensors")
        XCTAssertThrowsError(try net.save(to: url)) { XCTAssertTrue("\($0)".contains("holds NaN or infinity"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), "nothing written")
    }

    func testFloat16Storage() {
        let t = Tensor(shape: [2, 3], data: [0, 1, -2.5, 65504, 1e-3, 0.1])
        let back = Tensor(shape: t.shape, float16: t.float16)
        XCTAssertEqual(Array(back.data[0..<4]), [0, 1, -2.5, 65504])
        XCTAssertEqual(back.data[4], 1e-3, accuracy: 1e-6)  // 11-bit significand: relative error ≤ 2⁻¹¹
        XCTAssertEqual(back.data[5], 0.1, accuracy: 1e-4)
    }

    func testHeaderFormat() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("nic-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Safetensors.write([("a", .f32([1, 2], shape: [2])), ("b", .f16([1.5], shape: [1])), ("n", .i64([7], shape: []))], to: url)
        let data = try Data(contentsOf: url)
        let n = data.prefix(8).withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        XCTAssertEqual((8 + n) % 8, 0)
        XCTAssertEqual(data.count, 8 + n + 8 + 2 + 8)
        let back = try Safetensors.read(url)
        XCTAssertEqual(back["a"]?.floats, [1, 2])
        XCTAssertEqual(back["b"]?.floats, [1.5])
        XCTAssertEqual(back["n"]?.floats, [7])
    }
}

final class BLASTests: XCTestCase {
    func testKernelChoice() {
        let avx2: Set<String> = ["sse4_2", "avx", "avx2", "fma"]
        let avx512 = avx2.union(["avx512f", "avx512bw", "avx512dq", "avx512vl"])
        XCTAssertEqual(BLAS.preferredCoreType(coreName: "Prescott", cpuFlags: avx512, vendor: "GenuineIntel"), "SkylakeX")
        XCTAssertEqual(BLAS.preferredCoreType(coreName: "Prescott", cpuFlags: avx2, vendor: "GenuineIntel"), "Haswell")
        XCTAssertEqual(BLAS.preferredCoreType(coreName: "Prescott", cpuFlags: avx2, vendor: "AuthenticAMD"), "Zen")
        // AVX-512 F alone is not enough for the SkylakeX kernels (illegal instruction otherwise).
        XCTAssertEqual(BLAS.preferredCoreType(coreName: "Prescott", cpuFlags: avx2.union(["avx512f"]), vendor: "GenuineIntel"), "Haswell")
        XCTAssertNil(BLAS.preferredCoreType(coreName: "Haswell", cpuFlags: avx512, vendor: "GenuineIntel"))
        XCTAssertNil(BLAS.preferredCoreType(coreName: "Zen", cpuFlags: avx2, vendor: "AuthenticAMD"))
        XCTAssertNil(BLAS.preferredCoreType(coreName: "Prescott", cpuFlags: ["sse2"], vendor: "GenuineIntel"))
    }

    func testSgemmAgainstDoubleLoop() {
        let (m, n, k) = (37, 29, 53)
        let a = GradCheck.random([m, k], seed: 1), b = GradCheck.random([n, k], seed: 2)
        var c = [Float](repeating: 1, count: m * n)
        a.data.withUnsafeBufferPointer { pa in b.data.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
            BLAS.sgemm(transB: true, m: m, n: n, k: k, alpha: 2, a: pa.baseAddress!, lda: k, b: pb.baseAddress!, ldb: k, beta: 0.5, c: pc.baseAddress!, ldc: n)
        } } }
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for l in 0..<k { s += Double(a.data[i * k + l]) * Double(b.data[j * k + l]) }
                XCTAssertEqual(Double(c[i * n + j]), 2 * s + 0.5, accuracy: 1e-4)
            }
        }
        XCTAssertFalse(BLAS.coreName.isEmpty)
        XCTAssertTrue(BLAS.config.contains("OpenBLAS"))
    }
}
