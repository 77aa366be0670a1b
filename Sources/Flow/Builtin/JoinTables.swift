import Foundation

/// Joins two tables on a key column (e.g. slide labels with per-slide results).
public struct JoinTables: NodeType {
    public static let name = "join"
    public static let version = 1
    public static let summary = "Joins two Tables on a key column (inner or left join)."
    public static let inputs = [
        PortSpec("left", .table, doc: "rows to keep"),
        PortSpec("right", .table, doc: "rows to look up by key"),
    ]
    public static let outputs = [PortSpec("table", .table, doc: "left columns, then right columns except the key")]
    public enum How: String, ParamChoice { case inner, left }

    public struct Params: NodeParams {
        @Param(doc: "key column present in both tables") var on: String
        @Param(doc: "inner: only matching rows; left: keep every left row") var how = How.inner
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let left = try CSVTable.fromPort(try context.input("left"))
        let right = try CSVTable.fromPort(try context.input("right"))
        let key = params.on
        guard let leftKey = left.columnIndex(key) else { throw NodeError("left table has no column '\(key)'; it has \(left.columns.joined(separator: ", "))") }
        guard let rightKey = right.columnIndex(key) else { throw NodeError("right table has no column '\(key)'; it has \(right.columns.joined(separator: ", "))") }
        var lookup: [String: [String]] = [:]
        for (i, row) in right.rows.enumerated() {
            if lookup[row[rightKey]] != nil { throw NodeError("right table: key '\(row[rightKey])' appears twice (row \(i + 2)); a join key must be unique on the right") }
            lookup[row[rightKey]] = row
        }
        let rightColumns = right.columns.indices.filter { $0 != rightKey }
        var columns = left.columns
        for i in rightColumns {
            columns.append(left.columnIndex(right.columns[i]) == nil ? right.columns[i] : right.columns[i] + "_right")
        }
        var rows: [[String]] = []
        for row in left.rows {
            if let match = lookup[row[leftKey]] { rows.append(row + rightColumns.map { match[$0] }) }
            else if params.how == .left { rows.append(row + rightColumns.map { _ in "" }) }
        }
        try CSVTable(columns: columns, rows: rows).writePort(try context.output("table"))
    }
}
