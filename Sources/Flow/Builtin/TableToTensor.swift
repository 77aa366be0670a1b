import Foundation
import NICBasics
import TensorStore

/// Numeric columns of a table as a rows × columns zarr array: the bridge from tables to tensors.
public struct TableToTensor: NodeType {
    public static let name = "to_tensor"
    public static let version = 1
    public static let summary = "Numeric columns of a Table as a float32 zarr array (rows × columns)."
    public static let inputs = [PortSpec("table", .table, doc: "the table")]
    public static let outputs = [PortSpec("tensor", .tensor, doc: "zarr v3 array 'values' + columns.json")]
    public enum DType: String, ParamChoice { case float32, float16 }

    public struct Params: NodeParams {
        @Param(doc: "numeric columns, in order", .count(1)) var columns: [String]
        @Param(doc: "stored element type") var dtype = DType.float32
        @Param(doc: "rows per chunk", .atLeast(1)) var chunkRows = 4096
        @Param(doc: "subtract each column's mean and divide by its std") var standardize = false
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let table = try CSVTable.fromPort(try context.input("table"))
        let columns = params.columns
        let chunkRows = params.chunkRows
        var matrix = [Float](repeating: 0, count: table.rows.count * columns.count)
        for (c, name) in columns.enumerated() {
            guard let i = table.columnIndex(name) else {
                throw NodeError("param 'columns': no column '\(name)' in the table\(Suggest.hint(for: name, among: table.columns))")
            }
            var values: [Double] = []
            for (r, row) in table.rows.enumerated() {
                guard let v = Double(row[i]) else { throw NodeError("column '\(name)' row \(r + 2): '\(row[i])' is not a number") }
                // NaN, inf and 1e400 would silently turn the whole standardised column into zeros (or the tensor into infinities).
                guard v.isFinite, abs(v) <= Double(Float.greatestFiniteMagnitude) else {
                    throw NodeError("column '\(name)' row \(r + 2): '\(row[i])' is not a finite float32 number")
                }
                values.append(v)
            }
            if params.standardize, !values.isEmpty {
                let mean = values.reduce(0, +) / Double(values.count)
                let sd = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, values.count - 1))).squareRoot()
                values = values.map { sd > 0 ? ($0 - mean) / sd : 0 }
            }
            for (r, v) in values.enumerated() { matrix[r * columns.count + c] = Float(v) }
        }
        let out = try context.output("tensor")
        let shape = [table.rows.count, columns.count]
        let chunks = [max(1, min(chunkRows, table.rows.count)), columns.count]
        if params.dtype == .float16 {
            let writer = try ZarrArrayWriter(at: out.appendingPathComponent("values"), shape: shape, chunkShape: chunks, dataType: .float16)
            try writer.write(matrix.map { Float16($0) })
        } else {
            let writer = try ZarrArrayWriter(at: out.appendingPathComponent("values"), shape: shape, chunkShape: chunks, dataType: .float32)
            try writer.write(matrix)
        }
        try Data(ParamValue.list(columns.map { .string($0) }).canonicalJSON.utf8).write(to: out.appendingPathComponent("columns.json"))
    }
}
