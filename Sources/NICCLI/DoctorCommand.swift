import NICBasics
import ArgumentParser
import Foundation
import Neural
import NeuralTools

/// `nic doctor`: what the numerical stack is running on, measured rather than assumed.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Show the BLAS library, the kernel in use, threads and measured speed.",
        subcommands: [DoctorInfo.self, DoctorBench.self, DoctorParity.self, DoctorBag.self],
        defaultSubcommand: DoctorInfo.self
    )
}

struct DoctorInfo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Libraries, BLAS kernel and threads, measured sgemm GFLOP/s (the default).")

    @Option(name: .long, help: "Worker threads for the sgemm measurement (default: every core).") var threads: Int?
    @Flag(name: .long, help: "Skip the sgemm measurement.") var noMeasure = false

    func run() throws {
        let compute = threads.map { ComputeContext(threads: $0) } ?? .allCores
        let cpu = BLAS.cpuInfo()
        let wide = ["avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"].filter { cpu.flags.contains($0) }
        print("cpu:        \(cpu.model) (\(cpu.vendor)), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(wide.joined(separator: " "))")
        print("blas:       \(BLAS.config)")
        print("kernel:     \(BLAS.coreName)")
        let env = ProcessInfo.processInfo.environment
        if let replaced = BLAS.replacedCoreName {
            print("override:   applied: OpenBLAS picked \(replaced); nic re-executed itself with OPENBLAS_CORETYPE=\(env["OPENBLAS_CORETYPE"] ?? "?")")
        } else if let forced = env["OPENBLAS_CORETYPE"] {
            print("override:   OPENBLAS_CORETYPE=\(forced) set by the environment")
        } else {
            let wouldPick = BLAS.preferredCoreType(coreName: BLAS.coreName, cpuFlags: cpu.flags, vendor: cpu.vendor)
            print("override:   not needed (\(wouldPick.map { "would force \($0)" } ?? "kernel matches the CPU"))")
        }
        print("threads:    \(compute.threads) nic workers, each with \(BLAS.threads)-thread OpenBLAS")
        print("codegen:    \(Compute.codegen) for nic's own loops")
        print("zstd:       \(ZstdInfo.version)")
        if !noMeasure {
            for n in [1024, 2048] {
                print(String(format: "sgemm %d³: %.1f GFLOP/s", n, BLAS.measureGFLOPS(n: n, seconds: 0.5, compute: compute)))
            }
        }
    }
}

struct DoctorBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time the NIC encoder (inference batch 256, training batch 64) and the patient CNN training step (16×400×400×128)."
    )

    @Option(name: .long, help: "The nodes/ folder holding the architectures.") var nodes = "nodes"
    @Option(name: .long, help: "Worker threads of the networks (default: every core).") var threads: Int?
    @Flag(name: .long, help: "Skip the patient CNN (needs about 8 GiB and tens of seconds).") var noPatient = false
    @Flag(name: .long, help: "Also print the time of every layer, forward and backward, per benchmark.") var profile = false

    func run() throws {
        let compute = threads.map { ComputeContext(threads: $0) } ?? .allCores
        let peak = max(BLAS.measureGFLOPS(n: 1024, seconds: 0.5, compute: compute), BLAS.measureGFLOPS(n: 2048, seconds: 0.5, compute: compute))
        print("kernel \(BLAS.coreName), codegen \(Compute.codegen), \(compute.threads) threads, sgemm peak \(String(format: "%.1f", peak)) GFLOP/s")
        LayerProfile.enabled = profile
        let results = try NeuralBench.run(nodes: nodes, patient: !noPatient, compute: compute) { line in
            print(line)
            if profile {
                print(LayerProfile.table(title: "  layers"))
                LayerProfile.reset()
            }
        }
        print(String(format: "encoder inference: %.0f %% of the sgemm peak", 100 * results[0].gflops / peak))
        // One machine-readable line for bench/neural/run.sh.
        let fields = results.map { String(format: "\"%@\": %.6f", $0.name as NSString, $0.seconds) } + [String(format: "\"sgemm_peak_gflops\": %.3f", peak)]
        print("JSON {" + fields.joined(separator: ", ") + "}")
    }
}

struct DoctorParity: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parity",
        abstract: "Write weights, input, outputs and one training step's gradients for scripts/parity_neural.py (bag models: scripts/parity_mil.py)."
    )

    @Option(name: .long, help: "Architecture YAML.") var architecture: String
    @Option(name: .long, help: "Head YAML appended to the architecture (tensors 'head.*').") var head: String?
    @Option(name: .long, help: "Input item shape, e.g. 64,64,3 (default: the architecture's).") var input: String?
    @Option(name: .long) var seed: UInt64 = 1
    @Option(name: .long) var batch: Int = 4
    @Option(name: .long, help: "Output folder.") var out: String

    func run() throws {
        let shape = try input.map { text -> [Int] in
            let parts = text.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !parts.isEmpty else { throw ValidationError("--input: expected a shape like 64,64,3") }
            return parts
        }
        if try Architecture.load(file: architecture).pool != nil {
            guard let head, let features = shape?.first, shape?.count == 1 else {
                throw ValidationError("a bag model needs --head and --input with the instance size, e.g. --input 128")
            }
            try NeuralParity.runBag(architecture: architecture, head: head, features: features, seed: seed, bags: batch, out: URL(fileURLWithPath: out))
            return
        }
        try NeuralParity.run(architecture: architecture, head: head, seed: seed, batch: batch, inputShape: shape, out: URL(fileURLWithPath: out))
    }
}

struct DoctorBag: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bag",
        abstract: "Predict one bag of random instances with a bag model, chunked; print the time and the peak RSS (bench/mil)."
    )

    @Option(name: .long, help: "Bag model architecture.") var architecture = "nodes/patient/abmil-gated.yaml"
    @Option(name: .long, help: "Head architecture.") var head = "nodes/heads/regression.yaml"
    @Option(name: .long, help: "Instances in the bag.") var cells = 200_000
    @Option(name: .long, help: "Instance size.") var features = 128
    @Option(name: .long, help: "Instances per chunk.") var chunk = 8192

    func run() throws {
        let model = try BagModel(architecture: Architecture.load(file: architecture), features: features,
                                 head: Architecture.load(file: head), seed: 1)
        let rssBefore = NICProcess.peakResidentMegabytes()
        let start = Date()
        // Instances are made chunk by chunk, as the patient model reads them from a slide's grids.
        let (output, attention) = try model.predict(count: cells, chunk: chunk) { range in
            var rng = Xoshiro256StarStar(seed: UInt64(range.lowerBound))
            return Tensor(shape: [range.count, features], data: (0..<(range.count * features)).map { _ in rng.nextNormal() })
        }
        let seconds = Date().timeIntervalSince(start)
        print(String(format: "bag of %d instances (chunk %d): %.2f s, output %.4f, attention max %.2e, peak RSS %d MB (before %d MB)",
                     cells, chunk, seconds, output[0], attention.max() ?? 0, NICProcess.peakResidentMegabytes(), rssBefore))
        print(String(format: "JSON {\"seconds\": %.4f, \"peak_rss_mb\": %d, \"cells\": %d}", seconds, NICProcess.peakResidentMegabytes(), cells))
    }
}

/// Process start-up for `nic` and tools built on NICCLI.
public enum NICProcess {
    /// Call first in `main`: when OpenBLAS loaded a generic kernel on a CPU with AVX2/AVX-512, re-executes
    /// the program once with OPENBLAS_CORETYPE set (OpenBLAS reads it only while loading); then sets
    /// the numerical stack up once for the whole run (one-thread OpenBLAS, large blocks kept).
    public static func start() {
        BLAS.reexecWithFastKernelIfNeeded()
        Compute.configureProcess()
    }

    /// The process's peak resident set so far (getrusage: kilobytes on Linux).
    public static func peakResidentMegabytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss / 1024
    }
}
