import Foundation

/// A CSV table (RFC 4180: quoted fields, doubled quotes, CRLF or LF). Errors name file, line and column.
public struct CSVTable: Equatable, Sendable {
    public var columns: [String]
    public var rows: [[String]]

    public init(columns: [String], rows: [[String]]) {
        self.columns = columns
        self.rows = rows
    }

    public func columnIndex(_ name: String) -> Int? { columns.firstIndex(of: name) }

    public func column(_ name: String) -> [String]? {
        columnIndex(name).map { i in rows.map { $0[i] } }
    }

    public static func read(_ url: URL, delimiter: Character = ",") throws -> CSVTable {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw NodeError("\(url.path): cannot read file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw NodeError("\(url.path): not UTF-8 text (expected a CSV file)")
        }
        return try parse(text, file: url.path, delimiter: delimiter)
    }

    public static func parse(_ text: String, file: String, delimiter: Character = ",") throws -> CSVTable {
        var records: [(line: Int, fields: [String])] = []
        var field = ""
        var fields: [String] = []
        var inQuotes = false
        var line = 1, column = 0
        var recordLine = 1
        var quoteStart = (1, 1)
        var afterQuote = false
        var chars = text.makeIterator()
        var pending: Character? = nil
        func next() -> Character? {
            if let p = pending { pending = nil; return p }
            return chars.next()
        }
        func endRecord() {
            fields.append(field)
            field = ""
            // Skip fully blank lines (common at the end of files).
            if !(fields.count == 1 && fields[0].isEmpty) { records.append((recordLine, fields)) }
            fields = []
        }
        if text.hasPrefix("\u{FEFF}") { _ = next() }
        while let ch = next() {
            column += 1
            if inQuotes {
                if ch == "\"" {
                    if let following = next() {
                        if following == "\"" { field.append("\""); column += 1 }
                        else { inQuotes = false; afterQuote = true; pending = following }
                    } else { inQuotes = false; afterQuote = true }
                } else {
                    if ch == "\n" || ch == "\r\n" { line += 1; column = 0 }
                    field.append(ch)
                }
                continue
            }
            if ch == delimiter {
                fields.append(field); field = ""; afterQuote = false
            } else if ch == "\n" || ch == "\r\n" || ch == "\r" {
                endRecord(); afterQuote = false
                line += 1; column = 0; recordLine = line
            } else if ch == "\"" && field.isEmpty && !afterQuote {
                inQuotes = true; quoteStart = (line, column)
            } else if afterQuote {
                throw NodeError("\(file):\(line):\(column): unexpected character after a closing quote (a quoted field must end at a delimiter or line end)")
            } else {
                field.append(ch)
            }
        }
        if inQuotes { throw NodeError("\(file):\(quoteStart.0):\(quoteStart.1): quoted field is never closed") }
        if !field.isEmpty || !fields.isEmpty { endRecord() }
        guard let header = records.first else { throw NodeError("\(file):1:1: empty file; expected a header line with column names") }
        let columns = header.fields.map { $0.trimmingCharacters(in: .whitespaces) }
        var seen = Set<String>()
        for (i, name) in columns.enumerated() {
            if name.isEmpty { throw NodeError("\(file):1: column \(i + 1) has an empty name") }
            if !seen.insert(name).inserted { throw NodeError("\(file):1: duplicate column name '\(name)'") }
        }
        var rows: [[String]] = []
        for record in records.dropFirst() {
            guard record.fields.count == columns.count else {
                throw NodeError("\(file):\(record.line): expected \(columns.count) fields (\(columns.joined(separator: ","))), found \(record.fields.count)")
            }
            rows.append(record.fields)
        }
        return CSVTable(columns: columns, rows: rows)
    }

    public func csvText() -> String {
        func quote(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        var out = columns.map(quote).joined(separator: ",") + "\n"
        for row in rows { out += row.map(quote).joined(separator: ",") + "\n" }
        return out
    }

    public func write(to url: URL) throws {
        try Data(csvText().utf8).write(to: url)
    }

    /// Reads the table a `Table` port holds.
    public static func fromPort(_ folder: URL) throws -> CSVTable {
        try read(folder.appendingPathComponent("table.csv"))
    }

    /// Writes this table as a `Table` port's content.
    public func writePort(_ folder: URL) throws {
        try write(to: folder.appendingPathComponent("table.csv"))
    }
}
