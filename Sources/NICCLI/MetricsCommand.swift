import ArgumentParser
import Flow
import Foundation

/// `nic metrics P.yaml`: the results of a pipeline's evaluators (and compare nodes), from the cache.
/// A matrix/foreach template's instances read as one table (rows and columns from its axes); `--all`
/// and `--csv` list every metric of every node.
struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "metrics", abstract: "Print the metrics (with CIs) of a pipeline's evaluators, from the cache.")

    @Argument(help: "The pipeline YAML file.") var file: String
    @OptionGroup var cacheOption: CacheOption
    @Flag(name: .long, help: "CSV of every metric of every node instead of tables.") var csv = false
    @Flag(name: .long, help: "Every metric of every node as one listing instead of tables.") var all = false
    @Option(name: .long, help: ArgumentHelp("The axis whose values make a table's columns (default: the first axis but a foreach's items).", valueName: "axis"))
    var columns: String?

    func run() throws {
        let graph = try loadGraph(file)
        let plan = try Planner.plan(graph, cache: try cacheOption.open(.existing))
        let results = MetricResults.read(graph: graph, plan: plan)
        let header = ["node", "metric", "value", "95% CI", "n"]
        let listing = results.flatMap { $0.listingRows }
        if csv {
            print(CSVTable(columns: header, rows: listing).csvText(), terminator: "")
            return
        }
        if all {
            print(TextTable.render([header] + listing))
            return
        }
        let tables = ResultTable.group(results, templates: graph.spec.templates.map(\.name),
                                       typeOf: { graph.spec.node(named: $0)?.type }, columnAxis: columns)
        for table in tables {
            print(table.title)
            print(TextTable.render(table.textRows))
            print()
        }
        let loose = results.filter { r in !tables.contains { $0.nodes.contains(r.node) } }.flatMap { $0.listingRows }
        if !loose.isEmpty { print(TextTable.render([header] + loose)) }
    }
}

/// One node's metrics.json (nil `metrics` when the node has not run).
struct MetricResults {
    struct Metric {
        var name: String
        var value: Double?
        var low: Double?
        var high: Double?
        var text: String { value.map { String(format: name.hasSuffix("_p") ? "%.3g" : "%.3f", $0) } ?? "" }
        var ci: String { low.flatMap { l in high.map { String(format: "[%.3f, %.3f]", l, $0) } } ?? "" }
    }

    var node: String
    var instance: NodeInstance?
    var metrics: [Metric]?
    var n: String = ""
    /// Why an evaluator scored nothing (an external cohort without labels).
    var note: String?

    var listingRows: [[String]] {
        guard let metrics else { return [[node, "(not computed: run the pipeline)", "", "", ""]] }
        if metrics.isEmpty, note != nil { return [[node, "(nothing to score: no labels)", "", "", n]] }
        return metrics.map { [node, $0.name, $0.text, $0.ci, n] }
    }

    /// What a table shows for the node: a compare node's difference, else the task's first metric.
    var primary: Metric? {
        guard let metrics else { return nil }
        if let difference = metrics.first(where: { $0.name.hasSuffix("_a_minus_b") }) { return difference }
        for name in ["spearman", "auc", "cindex", "pearson", "accuracy", "mae"] {
            if let m = metrics.first(where: { $0.name == name }) { return m }
        }
        return metrics.first
    }

    static func read(graph: PipelineGraph, plan: Plan) -> [MetricResults] {
        var out: [MetricResults] = []
        for node in plan.nodes {
            guard let graphNode = graph.node(named: node.name), graphNode.type.outputs.contains(where: { $0.type == .metrics }) else { continue }
            var result = MetricResults(node: node.name, instance: graphNode.spec.instance)
            if let entry = node.entry {
                var metrics: [Metric] = []
                for port in graphNode.type.outputs where port.type == .metrics {
                    let url = entry.appendingPathComponent(port.name).appendingPathComponent("metrics.json")
                    guard let data = try? Data(contentsOf: url),
                          let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                          let found = object["metrics"] as? [String: [String: Any]] else { continue }
                    result.n = (object["n"] as? NSNumber).map { "\($0.intValue)" } ?? ""
                    result.note = object["note"] as? String
                    for name in found.keys.sorted() {
                        let m = found[name]!.compactMapValues { ($0 as? NSNumber)?.doubleValue }  // invariant: name taken from found.keys
                        metrics.append(Metric(name: name, value: m["value"], low: m["ci_low"], high: m["ci_high"]))
                    }
                }
                result.metrics = metrics
            }
            out.append(result)
        }
        return out
    }
}

/// A template's instances as rows × columns: the column axis's values across, the other axes'
/// values down; an instance without an axis (a probe beside models with an `arch` axis) shows the
/// template it came from there.
struct ResultTable {
    var title: String
    var rowAxes: [String]
    var columnAxis: String?
    var columnLabels: [String]
    /// Row labels, the metric(s) shown, one cell per column.
    var rows: [(labels: [String], metric: String, cells: [String])]
    var nodes: Set<String>

    var textRows: [[String]] {
        let head = rowAxes + ["metric"] + (columnAxis == nil ? ["value"] : columnLabels)
        return [head] + rows.map { $0.labels + [$0.metric] + $0.cells }
    }

    var csvRows: [[String]] { textRows }

    static func group(_ results: [MetricResults], templates: [String], typeOf: (String) -> String?, columnAxis wanted: String?) -> [ResultTable] {
        var tables: [ResultTable] = []
        for template in templates {
            let members = results.filter { $0.instance?.template == template }
            guard !members.isEmpty else { continue }
            var axes: [String] = []
            for m in members { for a in m.instance?.axes ?? [] where !axes.contains(a) { axes.append(a) } }
            func label(_ m: MetricResults, _ axis: String) -> String {
                if axis == "from", m.instance?.label(axis) == nil { return m.instance?.from ?? m.instance?.template ?? "" }
                return m.instance?.label(axis) ?? m.instance?.source ?? m.instance?.template ?? ""
            }
            // Two sources with the same axes (a model and a probe on each encoder × target) would
            // share cells: then the template each came from is one more axis.
            let cellsTaken = members.map { m in axes.map { label(m, $0) } }
            if Set(cellsTaken).count < cellsTaken.count, !axes.contains("from") { axes.append("from") }
            // Named items (comparisons) read better down than across.
            let column: String? = axes.count >= 2 ? (wanted.flatMap { axes.contains($0) ? $0 : nil } ?? axes.first { $0 != "item" } ?? axes[0]) : nil
            // The axis with the fewest values outermost: targets, then the models within each.
            let rowAxes = axes.filter { $0 != column }.enumerated().sorted { a, b in
                let na = Set(members.map { label($0, a.element) }).count, nb = Set(members.map { label($0, b.element) }).count
                return (na, a.offset) < (nb, b.offset)
            }.map(\.element)
            var columnLabels: [String] = []
            if let column { for m in members where !columnLabels.contains(label(m, column)) { columnLabels.append(label(m, column)) } }
            var rowKeys: [[String]] = []
            var cells: [[String]: [String: MetricResults]] = [:]
            for m in members {
                let key = rowAxes.map { label(m, $0) }
                if cells[key] == nil { rowKeys.append(key) }
                cells[key, default: [:]][column.map { label(m, $0) } ?? "value"] = m
            }
            // Rows of one value of the first row axis stay together (score rows, then grade rows).
            if rowAxes.count > 1 {
                let order = rowKeys.map { $0[0] }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
                rowKeys = order.flatMap { first in rowKeys.filter { $0[0] == first } }
            }
            let rows = rowKeys.map { key -> (labels: [String], metric: String, cells: [String]) in
                let byColumn = cells[key] ?? [:]
                let labels = column == nil ? ["value"] : columnLabels
                let shown = labels.map { c -> String in
                    guard let m = byColumn[c] else { return "" }
                    guard m.metrics != nil else { return "(not computed)" }
                    guard let p = m.primary else { return "" }
                    return p.ci.isEmpty ? p.text : "\(p.text) \(p.ci)"
                }
                let metricNames = labels.compactMap { byColumn[$0]?.primary?.name }.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
                return (key, metricNames.joined(separator: "/"), shown)
            }
            let typeNames = Set(members.compactMap { typeOf($0.node) })
            let what = typeNames.contains("compare") ? "paired differences a − b, 95% CIs" : "95% CIs"
            tables.append(ResultTable(title: "\(template): \(members.count) nodes (\(what)\(column.map { "; columns: \($0)" } ?? ""))",
                                      rowAxes: rowAxes, columnAxis: column, columnLabels: columnLabels,
                                      rows: rows, nodes: Set(members.map(\.node))))
        }
        return tables
    }
}

enum TextTable {
    static func render(_ rows: [[String]]) -> String {
        guard let width = rows.map(\.count).max() else { return "" }
        let widths = (0..<width).map { i in rows.map { i < $0.count ? $0[i].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").replacingOccurrences(of: #"\s+$"#, with: "", options: .regularExpression)
        }.joined(separator: "\n")
    }
}
