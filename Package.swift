// swift-tools-version:6.1
import PackageDescription
#if canImport(Glibc)
import Glibc
#endif

/// The neural core's own loops (batch norm, activations, im2col, the direct first-layer kernel) are
/// compiled for AVX2 + FMA (-target-cpu haswell: the x86-64-v3 level, every x86 server since
/// 2013/2015); Swift's default target is SSE2. nic is built where it runs (README), and
/// NIC_PORTABLE=1 keeps the SSE2 baseline for a binary that must run on older CPUs.
/// `nic doctor` reports which one a binary was built with.
let vectorSettings: [SwiftSetting] = {
    #if arch(x86_64) && os(Linux)
    if getenv("NIC_PORTABLE") == nil,
       let file = fopen("/proc/cpuinfo", "r") {
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 8192)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(cString: line)
            guard text.hasPrefix("flags") else { continue }
            let flags = Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
            if flags.isSuperset(of: ["avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"]) {
                return [.unsafeFlags(["-target-cpu", "haswell"]), .define("NIC_X86_64_V3")]
            }
            break
        }
    }
    #endif
    return []
}()

let package = Package(
    name: "nic",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "nic", targets: ["nic"]),
        .library(name: "Flow", targets: ["Flow"]),
        .library(name: "TensorStore", targets: ["TensorStore"]),
        // For the fuzz harnesses (Tests/Fuzz), a package of their own built with -sanitize=fuzzer.
        .library(name: "Neural", targets: ["Neural"]),
        .library(name: "NICNodes", targets: ["NICNodes"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // C libraries are wrapped once, here, and used through these modules only.
        .systemLibrary(
            name: "CZstd",
            path: "Sources/CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .systemLibrary(
            name: "COpenBLAS",
            path: "Sources/COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "COpenSlide",
            path: "Sources/COpenSlide",
            pkgConfig: "openslide",
            providers: [.apt(["libopenslide-dev"])]
        ),
        .systemLibrary(
            name: "CTIFF",
            path: "Sources/CTIFF",
            pkgConfig: "libtiff-4",
            providers: [.apt(["libtiff-dev"])]
        ),
        // zlib: QuPath's compressed GeoJSON export (.geojson.gz).
        .systemLibrary(
            name: "CZlib",
            path: "Sources/CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // Debian's serial libhdf5 (headers in /usr/include/hdf5/serial; pkg-config `hdf5` says where).
        .systemLibrary(
            name: "CHDF5",
            path: "Sources/CHDF5",
            pkgConfig: "hdf5",
            providers: [.apt(["libhdf5-dev"])]
        ),
        // Small pieces every module shares: the lock box, the first-error box, the seeded random generators,
        // located errors and the one YAML decoder (used by Flow for params and by Neural for architectures).
        .target(name: "NICBasics", dependencies: [.product(name: "Yams", package: "Yams")]),
        // zarr v3 arrays (bytes -> zstd -> crc32c): the on-disk tensor format of every node output.
        .target(
            name: "TensorStore",
            dependencies: ["CZstd", "NICBasics"]
        ),
        // The engine: spec -> typed DAG -> plan -> Dispatch scheduler -> content-addressed cache.
        .target(
            name: "Flow",
            dependencies: [
                "TensorStore",
                "NICBasics",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Tensors on BLAS, layers with forward/backward, losses, optimisers, YAML architectures, safetensors.
        .target(
            name: "Neural",
            dependencies: ["COpenBLAS", "CZstd", "NICBasics", "TensorStore", .product(name: "Yams", package: "Yams")],
            swiftSettings: vectorSettings
        ),
        // Benchmarks and PyTorch parity of the neural core (`nic doctor bench|parity`), apart from the library.
        .target(
            name: "NeuralTools",
            dependencies: ["NICBasics", "Neural"]
        ),
        // OpenSlide reading at a target µm/px, tissue masks, tiling, colour transforms, augmentation.
        .target(
            name: "Slides",
            dependencies: ["COpenSlide", "NICBasics"]
        ),
        // `nic synth`: synthetic H&E cohorts with known ground truth, written as pyramidal TIFFs (libtiff).
        .target(
            name: "Synthetic",
            dependencies: ["CTIFF", "NICBasics", "Slides", "Stats"]
        ),
        // Read-only HDF5 datasets and attributes (libhdf5): patch features written by TRIDENT or CLAM.
        .target(name: "HDF5", dependencies: ["CHDF5"]),
        // Patient-level statistics: rank correlation, ROC/AUC, concordance, Kaplan–Meier, log-rank, Cox, bootstrap.
        .target(name: "Stats", dependencies: ["NICBasics"]),
        // The pathology node types (tile sampler, augmenter, encoder, compressor, patient model, evaluators).
        .target(
            name: "NICNodes",
            dependencies: ["CZlib", "Flow", "HDF5", "NICBasics", "Neural", "Slides", "Stats", "TensorStore", .product(name: "Yams", package: "Yams")]
        ),
        // The command line, as a library so that test tools can run it with extra node types.
        .target(
            name: "NICCLI",
            dependencies: [
                "CZlib",
                "Flow",
                "NICBasics",
                "TensorStore",
                "Neural",
                "NeuralTools",
                "Slides",
                "Synthetic",
                "NICNodes",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "nic", dependencies: ["NICCLI"]),

        // Test-only node types (sleepers, failers, counters, slow tensor writers).
        .target(
            name: "ToyNodes",
            dependencies: ["Flow", "NICBasics", "NICNodes", "TensorStore"],
            path: "Tests/ToyNodes"
        ),
        // `nic` plus the toy nodes: lets CLI tests kill and interrupt real processes.
        .executableTarget(
            name: "nic-testkit",
            dependencies: ["NICBasics", "NICCLI", "ToyNodes", "TensorStore"],
            path: "Tests/NicTestKit"
        ),
        .testTarget(name: "NICBasicsTests", dependencies: ["NICBasics"]),
        .testTarget(name: "TensorStoreTests", dependencies: ["NICBasics", "TensorStore"]),
        .testTarget(name: "FlowTests", dependencies: ["Flow", "NICBasics", "ToyNodes", "TensorStore", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "CLITests", dependencies: ["Flow", "TensorStore"]),
        .testTarget(name: "StatsTests", dependencies: ["NICBasics", "Stats"], exclude: ["Fixtures"]),
        .testTarget(name: "NeuralTests", dependencies: ["NICBasics", "Neural", "NeuralTools", "TensorStore"], exclude: ["Fixtures"]),
        // Image helpers (test pattern, exact comparison) shared by the slide and synthetic-cohort tests.
        .target(name: "ImageTestSupport", dependencies: ["Slides"], path: "Tests/ImageTestSupport"),
        .testTarget(name: "SlidesTests", dependencies: ["ImageTestSupport", "NICBasics", "Slides", "Synthetic"], exclude: ["Fixtures"]),
        .testTarget(name: "SyntheticTests", dependencies: ["ImageTestSupport", "NICBasics", "Slides", "Stats", "Synthetic"]),
        .testTarget(name: "NICNodesTests", dependencies: ["NICBasics", "NICNodes", "Flow", "Neural", "Slides", "Stats", "Synthetic", "TensorStore"],
                    exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
