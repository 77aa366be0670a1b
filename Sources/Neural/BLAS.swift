import NICBasics
import COpenBLAS
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Matrix products on OpenBLAS, and the choice of its kernel.
public enum BLAS {
    /// C[m×n] = alpha · op(A) · op(B) + beta · C, row-major. OpenBLAS runs one thread
    /// (`Compute.configureProcess`); a large product called outside nic's workers (a Dense layer, a
    /// convolution on one image) is split into blocks of C's rows or columns, one per worker of the
    /// current ComputeContext. Each element of C is still one dot product in OpenBLAS's order.
    @inline(__always)
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            // BLAS would leave C untouched; beta must still apply.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        let blocks = gemmBlocks(m: m, n: n, k: k)
        guard blocks.count > 1 else {
            return call(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        }
        parallelFor(blocks.count) { index in
            let r = blocks[index]
            if m >= n {
                call(transA, transB, r.count, n, k, alpha, transA ? a + r.lowerBound : a + r.lowerBound * lda, lda,
                     b, ldb, beta, c + r.lowerBound * ldc, ldc)
            } else {
                call(transA, transB, m, r.count, k, alpha, a, lda,
                     transB ? b + r.lowerBound * ldb : b + r.lowerBound, ldb, beta, c + r.lowerBound, ldc)
            }
        }
    }

    /// Multiply-adds below which a product stays in one piece: worker hand-off costs microseconds.
    static let gemmSplitMinimum = 1 << 21

    /// Blocks of the longer of C's two sides, multiples of 16 (OpenBLAS's row unroll) where possible.
    static func gemmBlocks(m: Int, n: Int, k: Int) -> [Range<Int>] {
        let side = max(m, n)
        guard !CurrentCompute.isWorker, m * n * k >= gemmSplitMinimum, side >= 32 else { return [0..<side] }
        let parts = min(Compute.pieces, side / 16)  // the cut never depends on the budget
        guard parts > 1 else { return [0..<side] }
        let unit = (side / parts + 15) / 16 * 16
        return Swift.stride(from: 0, to: side, by: unit).map { $0..<min($0 + unit, side) }
    }

    @inline(__always)
    private static func call(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
                             _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                             _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// OpenBLAS's own thread count: 1 once `Compute.configureProcess` ran.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The kernel set OpenBLAS picked at load time (e.g. "Haswell", "Zen", "SkylakeX", "Prescott").
    public static var coreName: String { String(cString: openblas_get_corename()) }
    /// Build configuration: version, DYNAMIC_ARCH, MAX_THREADS...
    public static var config: String { String(cString: openblas_get_config()) }

    /// Name of the marker variable set before re-executing; it holds the kernel that was replaced.
    public static let reexecMarker = "NIC_BLAS_REEXEC"

    /// The kernel OpenBLAS fell back to before nic re-executed itself, if it did.
    public static var replacedCoreName: String? {
        ProcessInfo.processInfo.environment[reexecMarker].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Kernels built for CPUs without AVX2/FMA. OpenBLAS 0.3.21 reports these when it does not
    /// recognise a newer CPU, which costs several times the sgemm speed.
    static let genericCores: Set<String> = [
        "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai", "coppermine",
        "northwood", "banias", "athlon", "opteron", "opteron_sse3", "barcelona", "bobcat", "generic",
        "unknown", "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator", "nano",
    ]

    /// The OPENBLAS_CORETYPE to force, or nil when the loaded kernel is already fine (or nothing
    /// better is safe). Pure so that the decision is testable without this machine's CPU.
    public static func preferredCoreType(coreName: String, cpuFlags: Set<String>, vendor: String) -> String? {
        guard genericCores.contains(coreName.lowercased()) else { return nil }
        // SkylakeX kernels use AVX-512 F/BW/DQ/VL; with F alone they die of an illegal instruction.
        if cpuFlags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) { return "SkylakeX" }
        if cpuFlags.isSuperset(of: ["avx2", "fma"]) { return vendor == "AuthenticAMD" ? "Zen" : "Haswell" }
        if cpuFlags.contains("avx") { return "SandyBridge" == coreName ? nil : "SandyBridge" }
        return nil
    }

    /// First flags line and vendor of /proc/cpuinfo.
    public static func cpuInfo() -> (flags: Set<String>, vendor: String, model: String) {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return ([], "", "") }
        var flags = Set<String>(), vendor = "", model = ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2 else { continue }
            if parts[0] == "flags", flags.isEmpty { flags = Set(parts[1].split(separator: " ").map(String.init)) }
            if parts[0] == "vendor_id", vendor.isEmpty { vendor = parts[1] }
            if parts[0] == "model name", model.isEmpty { model = parts[1] }
            if !flags.isEmpty, !vendor.isEmpty, !model.isEmpty { break }
        }
        return (flags, vendor, model)
    }

    /// Call first thing in `main`. OpenBLAS reads OPENBLAS_CORETYPE only while it loads, so when it
    /// picked a generic kernel on a CPU with AVX2/AVX-512, the only fix is to set the variable and
    /// start this same program again. The marker variable makes sure that happens at most once.
    public static func reexecWithFastKernelIfNeeded() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env[reexecMarker] == nil else { return }
        let cpu = cpuInfo()
        // NIC_BLAS_ASSUME_CORENAME lets a test exercise the re-exec on a machine OpenBLAS recognises.
        let current = env["NIC_BLAS_ASSUME_CORENAME"] ?? coreName
        guard let target = preferredCoreType(coreName: current, cpuFlags: cpu.flags, vendor: cpu.vendor) else { return }
        setenv("OPENBLAS_CORETYPE", target, 1)
        setenv(reexecMarker, current, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv returned: keep running on the slow kernel rather than fail.
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(reexecMarker)
    }

    /// Measured sgemm speed on n×n×n products, in GFLOP/s (best of the runs in about `seconds`), with
    /// the product split over the workers of `compute`.
    public static func measureGFLOPS(n: Int, seconds: Double = 0.5, compute: ComputeContext = .allCores) -> Double {
        Compute.configureProcess()
        return compute.run { bestGFLOPS(n: n, seconds: seconds) }
    }

    private static func bestGFLOPS(n: Int, seconds: Double) -> Double {
        var state: UInt64 = 42
        let a = (0..<(n * n)).map { _ in Float(SplitMix64.next(&state) % 1000) / 1000 - 0.5 }
        let b = (0..<(n * n)).map { _ in Float(SplitMix64.next(&state) % 1000) / 1000 - 0.5 }
        var c = [Float](repeating: 0, count: n * n)
        let flop = 2.0 * Double(n) * Double(n) * Double(n)
        var best = 0.0
        let start = DispatchTime.now().uptimeNanoseconds
        var runs = 0
        repeat {
            let t0 = DispatchTime.now().uptimeNanoseconds
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        sgemm(m: n, n: n, k: n, a: pa.baseAddress!, lda: n, b: pb.baseAddress!, ldb: n, c: pc.baseAddress!, ldc: n)
                    }
                }
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            if runs > 0 { best = max(best, flop / dt / 1e9) }  // the first run pays for thread start-up
            runs += 1
        } while runs < 3 || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds
        return best
    }
}

import CZstd

/// Version of the zstd library the tensor store compresses with (for `nic doctor`).
public enum ZstdInfo {
    public static var version: String { String(cString: ZSTD_versionString()) }
}
