import Foundation
import FuzzDriver
import NICNodes

/// A TRIDENT/CLAM feature file as the features node reads it (libhdf5 opens it from disk, so each
/// input is written to a scratch file first): datasets, attributes, the grid it gives. Crashes inside
/// libhdf5 itself are reported too; nic's own code must turn every bad file into an error.
let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("nic-fuzz-hdf5-\(getpid()).h5")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHDF5(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard (try? Data(bytes: data, count: count).write(to: scratch)) != nil else { return 0 }
    for alignment in [FeaturesSource.Alignment.exact, .nearest] {
        _ = try? FeaturesSource.inspect(scratch, patchSizeLevel0: 512, alignment: alignment, overlapping: .mean)
    }
    return 0
}

/// The executable's entry (see FuzzDriver.h): hands the arguments (corpus folders, -max_total_time, …) to libFuzzer.
@_cdecl("fuzz_hdf5_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, count in
        guard let data else { return 0 }
        return fuzzHDF5(data, count)
    }
}
