import Foundation

/// Reads a CSV file into the pipeline, checking its shape and required columns up front so that later
/// nodes get a clean table and users get errors that name the line.
public struct TableSource: NodeType {
    public static let name = "table"
    public static let version = 1
    public static let summary = "Reads a CSV file (header line + rows) as a Table."
    public static let outputs = [PortSpec("table", .table, doc: "the rows, as table.csv")]
    public enum Delimiter: String, ParamChoice { case comma = ",", semicolon = ";", tab = "\t", bar = "|" }

    public struct Params: NodeParams {
        @Param(doc: "the CSV file") var path: FileParam
        @Param(doc: "columns that must be present") var requiredColumns: [String] = []
        @Param(doc: "field separator") var delimiter = Delimiter.comma
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let url = params.path.url
        let table = try CSVTable.read(url, delimiter: Character(params.delimiter.rawValue))
        let missing = params.requiredColumns.filter { table.columnIndex($0) == nil }
        if !missing.isEmpty {
            throw NodeError("\(url.path):1: missing column\(missing.count > 1 ? "s" : "") \(missing.map { "'\($0)'" }.joined(separator: ", ")); found \(table.columns.joined(separator: ", "))")
        }
        try table.writePort(try context.output("table"))
        context.progress(table.rows.count, of: table.rows.count, unit: "rows")
    }
}
