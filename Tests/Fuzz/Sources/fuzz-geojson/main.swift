import Foundation
import FuzzDriver
import NICNodes

/// QuPath GeoJSON as the annotations node reads it (NaN literals, derived classes, object types,
/// rings and their checks on a 2048 × 2048 slide), then the patch tasks of every kind on the result:
/// any input is read or rejected with an error, never a crash, a hang or unbounded memory.
let tasks = AnnotationTasks(patchUM: 64, samples: 4, tasks: [
    .init(name: "region", kind: .region(classes: [], minCoverage: 0.5, strideUM: 64, maxPerClass: 0)),
    .init(name: "points", kind: .points(className: "mitosis", radiusUM: 8, negativesInside: ["tumor"], ratio: 1)),
    .init(name: "count", kind: .count(className: "*", inside: ["tumor", "stroma"], strideUM: 64, maxPerSlide: 0)),
], exclude: ["ignore*"])

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzGeoJSON(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard let annotations = try? SlideAnnotations.read(Data(bytes: data, count: count), file: "fuzz.geojson", asap: false, width: 2048, height: 2048)
    else { return 0 }
    _ = try? tasks.plan(annotations, width: 2048, height: 2048, mpp: 1, seed: 1, slideIndex: 0)
    return 0
}

/// The executable's entry (see FuzzDriver.h): hands the arguments (corpus folders, -max_total_time, …) to libFuzzer.
@_cdecl("fuzz_geojson_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, count in
        guard let data else { return 0 }
        return fuzzGeoJSON(data, count)
    }
}
