// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "nic",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "nic", targets: ["nic"]),
        .library(name: "Flow", targets: ["Flow"]),
        .library(name: "TensorStore", targets: ["TensorStore"]),
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
        // zarr v3 arrays (bytes -> zstd -> crc32c): the on-disk tensor format of every node output.
        .target(
            name: "TensorStore",
            dependencies: ["CZstd"]
        ),
        // The engine: spec -> typed DAG -> plan -> Dispatch scheduler -> content-addressed cache.
        .target(
            name: "Flow",
            dependencies: [
                "TensorStore",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The command line, as a library so that test tools can run it with extra node types.
        .target(
            name: "NICCLI",
            dependencies: [
                "Flow",
                "TensorStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "nic", dependencies: ["NICCLI"]),

        // Test-only node types (sleepers, failers, counters, slow tensor writers).
        .target(
            name: "ToyNodes",
            dependencies: ["Flow", "TensorStore"],
            path: "Tests/ToyNodes"
        ),
        // `nic` plus the toy nodes: lets CLI tests kill and interrupt real processes.
        .executableTarget(
            name: "nic-testkit",
            dependencies: ["NICCLI", "ToyNodes", "TensorStore"],
            path: "Tests/NicTestKit"
        ),
        .testTarget(name: "TensorStoreTests", dependencies: ["TensorStore"]),
        .testTarget(name: "FlowTests", dependencies: ["Flow", "ToyNodes", "TensorStore"]),
        .testTarget(name: "CLITests", dependencies: ["Flow", "TensorStore"]),
    ],
    swiftLanguageModes: [.v5]
)
