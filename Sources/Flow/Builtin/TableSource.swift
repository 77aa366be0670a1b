import Foundation

/// Reads a CSV file into the pipeline, checking its shape and required columns up front so that later
/// nodes get a clean table and users get errors that name the line.
public struct TableSource: NodeType {
    public static let name = "table"
    public static let version = 1
    public static let summary = "Reads a CSV file (header line + rows) as a Table."
    public static let outputs = [PortSpec("table", .table, doc: "the rows, as table.csv")]
    public static let params = [
        ParamSpec("path", .file, doc: "the CSV file"),
        ParamSpec("required_columns", .list(.string), default: .list([]), doc: "columns that must be present"),
        ParamSpec("delimiter", .choice([",", ";", "\t", "|"]), default: .string(","), doc: "field separator"),
    ]

    public init() {}

    public func run(_ context: NodeContext) throws {
        let url = try context.path("path")
        let delimiter = Character(context.string("delimiter"))
        let table = try CSVTable.read(url, delimiter: delimiter)
        let missing = context.strings("required_columns").filter { table.columnIndex($0) == nil }
        if !missing.isEmpty {
            throw NodeError("\(url.path):1: missing column\(missing.count > 1 ? "s" : "") \(missing.map { "'\($0)'" }.joined(separator: ", ")); found \(table.columns.joined(separator: ", "))")
        }
        try table.writePort(try context.output("table"))
        context.progress(table.rows.count, of: table.rows.count, unit: "rows")
    }
}
