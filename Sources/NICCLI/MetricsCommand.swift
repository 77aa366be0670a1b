import ArgumentParser
import Flow
import Foundation

/// `nic metrics P.yaml`: every evaluator's results of the current spec as one table, from the cache.
struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "metrics", abstract: "Print the metrics (with CIs) of a pipeline's evaluators, from the cache.")

    @Argument(help: "The pipeline YAML file.") var file: String
    @OptionGroup var cacheOption: CacheOption
    @Flag(name: .long, help: "CSV instead of an aligned table.") var csv = false

    func run() throws {
        let graph = try loadGraph(file)
        let plan = try Planner.plan(graph, cache: try cacheOption.open(.existing))
        var rows: [[String]] = []
        for node in plan.nodes {
            guard let graphNode = graph.node(named: node.name), graphNode.type.outputs.contains(where: { $0.type == .metrics }) else { continue }
            guard let entry = node.entry else {
                rows.append([node.name, "(not computed: run the pipeline)", "", "", ""])
                continue
            }
            for port in graphNode.type.outputs where port.type == .metrics {
                let url = entry.appendingPathComponent(port.name).appendingPathComponent("metrics.json")
                guard let data = try? Data(contentsOf: url),
                      let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let metrics = object["metrics"] as? [String: [String: Any]] else { continue }
                let n = (object["n"] as? NSNumber).map { "\($0.intValue)" } ?? ""
                if metrics.isEmpty, object["note"] is String { rows.append([node.name, "(nothing to score: no labels)", "", "", n]) }
                for name in metrics.keys.sorted() {
                    let m = metrics[name]!.compactMapValues { ($0 as? NSNumber)?.doubleValue }  // invariant: name taken from metrics.keys
                    let value = m["value"].map { String(format: name.hasSuffix("_p") ? "%.3g" : "%.3f", $0) } ?? ""
                    let ci = m["ci_low"].flatMap { low in m["ci_high"].map { String(format: "[%.3f, %.3f]", low, $0) } } ?? ""
                    rows.append([node.name, name, value, ci, n])
                }
            }
        }
        let header = ["node", "metric", "value", "95% CI", "n"]
        if csv {
            print(CSVTable(columns: header, rows: rows).csvText(), terminator: "")
            return
        }
        let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max()! }  // invariant: the header row makes the list non-empty
        for row in [header] + rows {
            print(row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
    }
}
