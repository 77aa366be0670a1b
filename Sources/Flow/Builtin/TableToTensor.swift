import Foundation
import TensorStore

/// Numeric columns of a table as a rows × columns zarr array: the bridge from tables to tensors.
public struct TableToTensor: NodeType {
    public static let name = "to_tensor"
    public static let version = 1
    public static let summary = "Numeric columns of a Table as a float32 zarr array (rows × columns)."
    public static let inputs = [PortSpec("table", .table, doc: "the table")]
    public static let outputs = [PortSpec("tensor", .tensor, doc: "zarr v3 array 'values' + columns.json")]
    public static let params = [
        ParamSpec("columns", .list(.string), doc: "numeric columns, in order"),
        ParamSpec("dtype", .choice(["float32", "float16"]), default: .string("float32"), doc: "stored element type"),
        ParamSpec("chunk_rows", .int, default: .int(4096), doc: "rows per chunk"),
        ParamSpec("standardize", .bool, default: .bool(false), doc: "subtract each column's mean and divide by its std"),
    ]

    public init() {}

    public func run(_ context: NodeContext) throws {
        let table = try CSVTable.fromPort(try context.input("table"))
        let columns = context.strings("columns")
        guard !columns.isEmpty else { throw NodeError("param 'columns' is empty; name at least one numeric column") }
        let chunkRows = context.int("chunk_rows")
        guard chunkRows > 0 else { throw NodeError("param 'chunk_rows' must be positive, got \(chunkRows)") }
        var matrix = [Float](repeating: 0, count: table.rows.count * columns.count)
        for (c, name) in columns.enumerated() {
            guard let i = table.columnIndex(name) else {
                throw NodeError("param 'columns': no column '\(name)' in the table\(Suggest.hint(for: name, among: table.columns))")
            }
            var values: [Double] = []
            for (r, row) in table.rows.enumerated() {
                guard let v = Double(row[i]) else { throw NodeError("column '\(name)' row \(r + 2): '\(row[i])' is not a number") }
                values.append(v)
            }
            if context.bool("standardize"), !values.isEmpty {
                let mean = values.reduce(0, +) / Double(values.count)
                let sd = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, values.count - 1))).squareRoot()
                values = values.map { sd > 0 ? ($0 - mean) / sd : 0 }
            }
            for (r, v) in values.enumerated() { matrix[r * columns.count + c] = Float(v) }
        }
        let out = try context.output("tensor")
        let shape = [table.rows.count, columns.count]
        let chunks = [max(1, min(chunkRows, table.rows.count)), columns.count]
        if context.string("dtype") == "float16" {
            let writer = try ZarrArrayWriter(at: out.appendingPathComponent("values"), shape: shape, chunkShape: chunks, dataType: .float16)
            try writer.write(matrix.map { Float16($0) })
        } else {
            let writer = try ZarrArrayWriter(at: out.appendingPathComponent("values"), shape: shape, chunkShape: chunks, dataType: .float32)
            try writer.write(matrix)
        }
        try Data(ParamValue.list(columns.map { .string($0) }).canonicalJSON.utf8).write(to: out.appendingPathComponent("columns.json"))
    }
}
