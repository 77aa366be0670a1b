import Foundation
import FuzzDriver
import NICNodes

/// ASAP XML as the annotations node reads it (Polygon/Rectangle/Spline regions, Dot/PointSet points,
/// checks on a 2048 × 2048 slide), then a region task on the result.
let tasks = AnnotationTasks(patchUM: 64, samples: 4, tasks: [
    .init(name: "region", kind: .region(classes: [], minCoverage: 0.5, strideUM: 64, maxPerClass: 0)),
])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzASAP(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard let annotations = try? SlideAnnotations.read(Data(bytes: data, count: count), file: "fuzz.xml", asap: true, width: 2048, height: 2048)
    else { return 0 }
    _ = try? tasks.plan(annotations, width: 2048, height: 2048, mpp: 1, seed: 1, slideIndex: 0)
    return 0
}

/// The executable's entry (see FuzzDriver.h): hands the arguments (corpus folders, -max_total_time, …) to libFuzzer.
@_cdecl("fuzz_asap_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, count in
        guard let data else { return 0 }
        return fuzzASAP(data, count)
    }
}
