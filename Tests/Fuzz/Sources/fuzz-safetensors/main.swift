import Foundation
import FuzzDriver
import Neural

/// A safetensors file of any bytes (weights nic loads, possibly written by other tools).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    _ = try? Safetensors.read(data: Data(bytes: data, count: count), file: "fuzz.safetensors")
    return 0
}

/// The executable's entry (see FuzzDriver.h): hands the arguments (corpus folders, -max_total_time, …) to libFuzzer.
@_cdecl("fuzz_safetensors_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, count in
        guard let data else { return 0 }
        return fuzzSafetensors(data, count)
    }
}
