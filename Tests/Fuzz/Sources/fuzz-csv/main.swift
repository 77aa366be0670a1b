import Flow
import Foundation
import FuzzDriver

/// A CSV file of any bytes (labels.csv, patches.csv, tables).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCSV(_ data: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: count), as: UTF8.self)
    if let table = try? CSVTable.parse(text, file: "fuzz.csv") {
        for (index, name) in table.columns.enumerated() where table.columnIndex(name) != index && table.columnIndex(name) == nil {
            fatalError("column '\(name)' not found by name")
        }
        for row in table.rows where row.count != table.columns.count {
            fatalError("a row of \(row.count) fields in a table of \(table.columns.count) columns")
        }
    }
    _ = try? CSVTable.parse(text, file: "fuzz.tsv", delimiter: "\t")
    return 0
}

/// The executable's entry (see FuzzDriver.h): hands the arguments (corpus folders, -max_total_time, …) to libFuzzer.
@_cdecl("fuzz_csv_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, count in
        guard let data else { return 0 }
        return fuzzCSV(data, count)
    }
}
