import Foundation
import FuzzDriver
import TensorStore

/// A zarr v3 `zarr.json` and a chunk file: the input up to the first zero byte is the metadata, the
/// rest the stored chunk, decoded through the metadata's codec chain when the metadata is valid.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzZarr(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: count))
    let split = bytes.firstIndex(of: 0) ?? bytes.count
    guard let json = try? ZarrJSON.parse(bytes: Array(bytes[..<split])),
          let metadata = try? ZarrArrayMetadata.parse(json, path: "fuzz/zarr.json") else { return 0 }
    let chunk = split < bytes.count ? Array(bytes[(split + 1)...]) : []
    if let decoded = try? metadata.decodeChunk(chunk), decoded.count != metadata.chunkByteCount {
        fatalError("a chunk decoded to \(decoded.count) bytes, expected \(metadata.chunkByteCount)")
    }
    return 0
}

/// The executable's entry (see FuzzDriver.h): hands the arguments (corpus folders, -max_total_time, …) to libFuzzer.
@_cdecl("fuzz_zarr_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, count in
        guard let data else { return 0 }
        return fuzzZarr(data, count)
    }
}
