import NICBasics
import Flow
import Foundation
import NICNodes
import Stats
import XCTest

final class EvaluatorTests: XCTestCase {
    var root: URL!
    var cache: Cache!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("nic-eval-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("nodes"), withIntermediateDirectories: true)
        cache = try Cache(root: root.appendingPathComponent("cache"))
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    func run(_ yaml: String) throws -> RunSummary {
        let url = root.appendingPathComponent("p.yaml")
        try Data(yaml.utf8).write(to: url)
        let graph = try PipelineGraph.build(try SpecParser.parse(file: url, displayPath: "p.yaml"), registry: PathologyNodes.registry)
        return Executor(plan: try Planner.plan(graph, cache: cache), cache: cache, jobs: 2).run()
    }

    func metrics(_ summary: RunSummary, _ node: String) throws -> [String: Any] {
        let data = try Data(contentsOf: summary.entries[node]!.appendingPathComponent("metrics/metrics.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    func testSurvivalMetricsWithIntervals() throws {
        var rows = ["patient,fold,time,event,risk"]
        var time: [Double] = [], event: [Bool] = [], risk: [Double] = []
        var rng = SplitMix64(seed: 3)
        for i in 0..<60 {
            let t = Double(rng.next() % 50 + 1), e = rng.next() % 4 != 0, r = -t / 10 + Double(rng.next() % 100) / 50
            time.append(t); event.append(e); risk.append(r)
            rows.append("p\(i),\(i % 4),\(t),\(e ? 1 : 0),\(r)")
        }
        try Data(rows.joined(separator: "\n").utf8).write(to: root.appendingPathComponent("pred.csv"))
        let summary = try run("""
        pipeline: eval
        inputs:
          preds: {kind: predictions, path: pred.csv, task: survival, target: [time, event], prediction: risk}
        nodes:
          score: {type: evaluator, in: {predictions: preds}, params: {bootstrap: 300, seed: 1}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let doc = try metrics(summary, "score")
        let values = doc["metrics"] as! [String: [String: Double]]
        let expected = Survival.concordance(time: time, event: event, risk: risk)!.cindex
        XCTAssertEqual(values["cindex"]!["value"]!, expected, accuracy: 1e-12)
        XCTAssertLessThan(values["cindex"]!["ci_low"]!, expected)
        XCTAssertGreaterThan(values["cindex"]!["ci_high"]!, expected)
        XCTAssertNotNil(values["logrank_p"]?["value"])
        let km = try CSVTable.read(summary.entries["score"]!.appendingPathComponent("metrics/km.csv"))
        XCTAssertEqual(Set(km.column("group")!), ["low risk", "high risk"])
    }

    func testBinaryAndRegression() throws {
        try Data("patient,label,p\na,0,0.1\nb,1,0.8\nc,1,0.4\nd,0,0.3\ne,1,0.9\n".utf8).write(to: root.appendingPathComponent("bin.csv"))
        try Data("patient,score,pred\na,1.5,1\nb,2.5,3\nc,3.5,2\nd,4.5,5\n".utf8).write(to: root.appendingPathComponent("reg.csv"))
        let summary = try run("""
        pipeline: eval2
        inputs:
          bin: {kind: predictions, path: bin.csv, task: binary, target: label, prediction: p}
          reg: {kind: predictions, path: reg.csv, task: regression, target: score, prediction: pred}
        nodes:
          b: {type: evaluator, in: {predictions: bin}, params: {bootstrap: 0}}
          r: {type: evaluator, in: {predictions: reg}, params: {metrics: [spearman, mae], bootstrap: 0}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let b = try metrics(summary, "b")["metrics"] as! [String: [String: Double]]
        XCTAssertEqual(b["auc"]!["value"], 1.0)  // every positive outscores every negative
        XCTAssertEqual(b["accuracy"]!["value"]!, 0.8, accuracy: 1e-12)  // c (0.4) is called negative
        let r = try metrics(summary, "r")["metrics"] as! [String: [String: Double]]
        XCTAssertEqual(r["spearman"]!["value"]!, 0.8, accuracy: 1e-12)
        XCTAssertEqual(r["mae"]!["value"]!, 0.75, accuracy: 1e-12)  // (0.5 + 0.5 + 1.5 + 0.5) / 4
    }

    func testBadPredictionsAreClearErrors() throws {
        try Data("patient,time,event,risk\na,3,1,0.5\nb,4,2,0.1\n".utf8).write(to: root.appendingPathComponent("bad.csv"))
        let summary = try run("""
        pipeline: eval3
        inputs:
          preds: {kind: predictions, path: bad.csv, task: survival, target: [time, event], prediction: risk}
        nodes: {}
        """)
        let message = summary.failures.first?.message ?? ""
        XCTAssertTrue(message.hasSuffix("bad.csv:3: column 'event' must be 1 (event observed) or 0 (censored), found '2'"), message)

        try Data("patient,label,p\na,0,0.1\nb,1,0.8\n".utf8).write(to: root.appendingPathComponent("b.csv"))
        let wrong = try run("""
        pipeline: eval4
        inputs:
          preds: {kind: predictions, path: b.csv, task: binary, target: label, prediction: p}
        nodes:
          e: {type: evaluator, in: {predictions: preds}, params: {metrics: [cindex]}}
        """)
        XCTAssertTrue(wrong.failures.first?.message.contains("'cindex' does not apply to a binary task") == true, "\(wrong.failures)")
    }
}
