import Flow
import Foundation
import FuzzDriver

/// A pipeline file of any bytes: parsed and checked against the engine's node types. Spec errors
/// are expected; a trap, a hang or a runaway allocation is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSpec(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    guard let spec = try? SpecParser.parse(text: text, file: "fuzz.yaml", directory: URL(fileURLWithPath: "/nonexistent-fuzz-dir")) else { return 0 }
    _ = try? PipelineGraph.build(spec, registry: NodeRegistry.builtin)
    return 0
}

/// The executable's entry (see FuzzDriver.h): hands the arguments (corpus folders, -max_total_time, …) to libFuzzer.
@_cdecl("fuzz_spec_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, count in
        guard let data else { return 0 }
        return fuzzSpec(data, count)
    }
}
