// swift-tools-version:6.1
import PackageDescription

// libFuzzer harnesses for nic's parsers of untrusted files, built apart from the main package with
// every Swift module instrumented: `make fuzz` (see scripts/fuzz.sh) builds them with
// `-sanitize=fuzzer,address` and runs each on its seed corpus in corpus/<name>.
let harness = { (name: String, product: String) -> Target in
    .executableTarget(name: "fuzz-\(name)", dependencies: ["FuzzDriver", .product(name: product, package: "nic")], path: "Sources/fuzz-\(name)")
}

let package = Package(
    name: "nic-fuzz",
    dependencies: [.package(name: "nic", path: "../..")],
    targets: [
        .target(name: "FuzzDriver"),
        harness("spec", "Flow"),
        harness("csv", "Flow"),
        harness("zarr", "TensorStore"),
        harness("safetensors", "Neural"),
        harness("geojson", "NICNodes"),
        harness("asap", "NICNodes"),
        harness("hdf5", "NICNodes"),
    ],
    swiftLanguageModes: [.v6]
)
