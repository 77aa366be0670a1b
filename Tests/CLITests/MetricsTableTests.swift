import Foundation
import XCTest

/// `nic metrics` groups a matrix's evaluators into one table (rows and columns from its axes) and
/// its compare nodes into another, with the same numbers as the full listing; the report opens with
/// them. Predictions come from CSVs (the `predictions` node), so the evaluators compute real metrics.
final class MetricsTableTests: XCTestCase {
    /// Two "encoders" × two "models" × one regression target, the second encoder's model noisier.
    func predictions(noise: Double, seed: Int) -> String {
        var rows = ["patient,score,prediction"]
        var state = UInt64(seed)
        for i in 0..<24 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let jitter = (Double(state >> 33) / Double(1 << 31) - 0.5) * noise
            rows.append("p\(i),\(i),\(Double(i) + jitter * 24)")
        }
        return rows.joined(separator: "\n") + "\n"
    }

    func testMatrixEvaluatorsReadAsOneTable() throws {
        let kit = try Kit()
        for (e, enc) in ["mtl", "rgb"].enumerated() {
            for (m, model) in ["mil", "cnn"].enumerated() {
                try kit.write("\(enc)-\(model).csv", predictions(noise: enc == "mtl" ? 0.3 : 2.0, seed: 10 * e + m + 1))
            }
        }
        try kit.write("p.yaml", """
        pipeline: tables
        defaults: {evaluator: {bootstrap: 200}, compare: {bootstrap: 200}}
        nodes:
          model:
            type: predictions
            matrix: {enc: [mtl, rgb], arch: [mil, cnn]}
            params: {path: "${enc}-${arch}.csv", task: regression, target: [score]}
          eval: {type: evaluator, foreach: model, in: {predictions: "${item}"}}
          vs:
            type: compare
            foreach: {mtl-vs-rgb: {a: mtl, b: rgb}}
            matrix: {arch: [mil, cnn]}
            in: {a: "model@${item.a}-${arch}", b: "model@${item.b}-${arch}"}
        """)
        let run = try kit.run(["run", "p.yaml", "--quiet"])
        XCTAssertEqual(run.status, 0, run.stderr)

        let tables = try kit.run(["metrics", "p.yaml"])
        XCTAssertEqual(tables.status, 0, tables.stderr)
        let lines = tables.stdout.split(separator: "\n").map(String.init)
        // eval: columns from the first axis (enc), one row per arch, the task's metric in each cell.
        let header = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("eval: 4 nodes") }, tables.stdout)
        XCTAssertEqual(lines[header + 1].split(separator: " ", omittingEmptySubsequences: true), ["arch", "metric", "mtl", "rgb"], tables.stdout)
        let csv = try kit.run(["metrics", "p.yaml", "--csv"])
        let listing = csv.stdout.split(separator: "\n").map { $0.split(separator: ",", maxSplits: 3).map(String.init) }
        func value(_ node: String, _ metric: String) -> String? { listing.first { $0[0] == node && $0[1] == metric }?[2] }
        for (row, arch) in ["mil", "cnn"].enumerated() {
            let cells = lines[header + 2 + row]
            XCTAssertTrue(cells.hasPrefix(arch + " ") && cells.contains("spearman"), cells)
            for enc in ["mtl", "rgb"] {
                let spearman = try XCTUnwrap(value("eval@\(enc)-\(arch)", "spearman"), csv.stdout)
                XCTAssertTrue(cells.contains(spearman + " ["), "\(enc)/\(arch): \(spearman) not in '\(cells)'")
            }
        }
        // vs: the paired difference per arch (columns: arch), beside the evaluators' table.
        let vs = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("vs: 2 nodes (paired differences") }, tables.stdout)
        XCTAssertEqual(lines[vs + 1].split(separator: " ", omittingEmptySubsequences: true), ["item", "metric", "mil", "cnn"], tables.stdout)
        let difference = try XCTUnwrap(value("vs@mtl-vs-rgb-mil", "spearman_a_minus_b"), csv.stdout)
        XCTAssertTrue(lines[vs + 2].hasPrefix("mtl-vs-rgb") && lines[vs + 2].contains(difference), lines[vs + 2])
        XCTAssertGreaterThan(Double(difference) ?? 0, 0, "the less noisy encoder ranks better")

        // --all keeps the full listing; --csv its columns (scripts/demo_check.py reads them).
        let all = try kit.run(["metrics", "p.yaml", "--all"])
        XCTAssertTrue(all.stdout.hasPrefix("node"), all.stdout)
        XCTAssertTrue(all.stdout.contains("eval@rgb-cnn") && all.stdout.contains("pearson"), all.stdout)
        XCTAssertEqual(listing.first, ["node", "metric", "value", "95% CI,n"])

        // The report opens with the same tables, the matrix drawn as one box.
        let reports = try FileManager.default.contentsOfDirectory(atPath: kit.root.appendingPathComponent("runs").path)
        let html = try String(contentsOf: kit.root.appendingPathComponent("runs/\(try XCTUnwrap(reports.first))/report.html"), encoding: .utf8)
        let results = try XCTUnwrap(html.range(of: "id=\"section-results\""))
        XCTAssertLessThan(results.lowerBound, try XCTUnwrap(html.range(of: "id=\"section-dag\"")).lowerBound, "results come first")
        XCTAssertTrue(html.contains("data-template=\"eval\"") && html.contains("data-template=\"vs\""))
        XCTAssertTrue(html.contains("data-group=\"model\" data-count=\"4\""), "the matrix is one box in the graph")
    }

    /// An evaluator over two templates with the same axes (a model and a baseline per encoder): the
    /// template each instance came from becomes a row axis, so no cell hides another.
    func testSameAxesFromTwoTemplatesGetARowEach() throws {
        let kit = try Kit()
        for (i, name) in ["model-mtl", "model-rgb", "base-mtl", "base-rgb"].enumerated() {
            try kit.write("\(name).csv", predictions(noise: 0.5 + Double(i), seed: i + 1))
        }
        try kit.write("p.yaml", """
        pipeline: two
        defaults: {evaluator: {bootstrap: 100}}
        nodes:
          model: {type: predictions, matrix: {enc: [mtl, rgb]}, params: {path: "model-${enc}.csv", task: regression, target: [score]}}
          base:  {type: predictions, matrix: {enc: [mtl, rgb]}, params: {path: "base-${enc}.csv", task: regression, target: [score]}}
          eval:  {type: evaluator, foreach: [model, base], in: {predictions: "${item}"}}
        """)
        XCTAssertEqual(try kit.run(["run", "p.yaml", "--quiet"]).status, 0)
        let out = try kit.run(["metrics", "p.yaml"]).stdout
        let lines = out.split(separator: "\n").map(String.init)
        let header = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("eval: 4 nodes") }, out)
        XCTAssertEqual(lines[header + 1].split(separator: " ", omittingEmptySubsequences: true), ["from", "metric", "mtl", "rgb"], out)
        XCTAssertTrue(lines[header + 2].hasPrefix("model ") && lines[header + 3].hasPrefix("base "), out)
        XCTAssertFalse(lines[header + 2...header + 3].contains { $0.contains("  ") && $0.hasSuffix("spearman") }, "every cell filled: \(out)")
    }
}
