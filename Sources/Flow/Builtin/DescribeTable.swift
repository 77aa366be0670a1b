import Foundation
import NICBasics

/// Summary statistics of numeric columns, as JSON metrics.
public struct DescribeTable: NodeType {
    public static let name = "describe"
    public static let version = 1
    public static let summary = "Count, mean, std, min, median, max of numeric columns (metrics.json and summary.csv)."
    public static let inputs = [PortSpec("table", .table, doc: "the table to describe")]
    public static let outputs = [PortSpec("metrics", .metrics, doc: "metrics.json: column → statistics; summary.csv")]
    public struct Params: NodeParams {
        @Param(doc: "columns to describe; empty: every column whose values are all numbers") var columns: [String] = []
        @Param(doc: "optional column: statistics per value of it") var groupBy: String? = nil
        public init() {}
    }

    public init() {}

    static func statistics(_ values: [Double]) -> [String: ParamValue] {
        let n = values.count
        guard n > 0 else { return ["count": .int(0)] }
        let mean = values.reduce(0, +) / Double(n)
        let variance = n > 1 ? values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1) : 0
        let sorted = values.sorted()
        let median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        return ["count": .int(n), "mean": .float(mean), "std": .float(variance.squareRoot()),
                "min": .float(sorted[0]), "median": .float(median), "max": .float(sorted[n - 1])]
    }

    public func run(_ context: NodeContext, _ params: Params) throws {
        let table = try CSVTable.fromPort(try context.input("table"))
        var columns = params.columns
        for name in columns where table.columnIndex(name) == nil {
            throw NodeError("param 'columns': no column '\(name)' in the table\(Suggest.hint(for: name, among: table.columns)); it has \(table.columns.joined(separator: ", "))")
        }
        let groupColumn = params.groupBy
        if let groupColumn, table.columnIndex(groupColumn) == nil {
            throw NodeError("param 'group_by': no column '\(groupColumn)' in the table\(Suggest.hint(for: groupColumn, among: table.columns))")
        }
        if columns.isEmpty {
            columns = table.columns.filter { name in
                name != groupColumn && !table.rows.isEmpty && (table.column(name) ?? []).allSatisfy { Double($0) != nil }
            }
        }
        var groups: [(String, [[String]])] = [("all", table.rows)]
        if let groupColumn {
            let g = table.columnIndex(groupColumn)!  // invariant: checked to exist above
            let keys = Array(Set(table.rows.map { $0[g] })).sorted()
            groups = keys.map { key in (key, table.rows.filter { $0[g] == key }) }
        }
        var metrics: [String: ParamValue] = [:]
        var summaryRows: [[String]] = []
        for (group, rows) in groups {
            var perColumn: [String: ParamValue] = [:]
            for name in columns {
                let i = table.columnIndex(name)!  // invariant: every column was checked or taken from the table
                var values: [Double] = []
                for (r, row) in rows.enumerated() {
                    guard let v = Double(row[i]) else { throw NodeError("column '\(name)' row \(r + 2): '\(row[i])' is not a number") }
                    values.append(v)
                }
                let stats = Self.statistics(values)
                perColumn[name] = .map(stats)
                summaryRows.append([group, name] + ["count", "mean", "std", "min", "median", "max"].map { stats[$0]?.display ?? "" })
            }
            metrics[group] = .map(perColumn)
        }
        let out = try context.output("metrics")
        let json = groupColumn == nil ? (metrics["all"] ?? .map([:])) : .map(metrics)
        try Data(json.canonicalJSON.utf8).write(to: out.appendingPathComponent("metrics.json"))
        try CSVTable(columns: ["group", "column", "count", "mean", "std", "min", "median", "max"], rows: summaryRows)
            .write(to: out.appendingPathComponent("summary.csv"))
    }
}
