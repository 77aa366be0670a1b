import Flow
import Foundation
import NICNodes
import XCTest

/// `patient_model` on a table of clinical covariates: a linear Cox model on lifelines' Rossi data.
final class LinearModelTests: XCTestCase {
    func testLinearCoxOnRossiCovariates() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: repo.appendingPathComponent("Tests/StatsTests/Fixtures/stats.json"))) as! [String: Any]
        let rossi = fixture["rossi"] as! [String: Any]
        let names = rossi["covariates"] as! [String]
        let x = rossi["x"] as! [[NSNumber]], time = rossi["time"] as! [NSNumber], event = rossi["event"] as! [Bool]
        var csv = "patient," + names.joined(separator: ",") + ",week,arrest\n"
        for i in x.indices {
            csv += "r\(i)," + x[i].map { "\($0.doubleValue)" }.joined(separator: ",") + ",\(time[i].doubleValue),\(event[i] ? 1 : 0)\n"
        }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("nic-linear-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("nodes/heads"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: repo.appendingPathComponent("nodes/heads/cox.yaml"), to: root.appendingPathComponent("nodes/heads/cox.yaml"))
        try Data(csv.utf8).write(to: root.appendingPathComponent("rossi.csv"))
        try Data("""
        pipeline: clinical
        inputs:
          clinical: {kind: table, path: rossi.csv}
        nodes:
          cox: {type: patient_model, in: {features: clinical}, params: {head: nodes/heads/cox.yaml, target: [week, arrest], folds: 5}}
          score: {type: evaluator, in: {predictions: cox}, params: {bootstrap: 200}}
        """.utf8).write(to: root.appendingPathComponent("p.yaml"))
        let cache = try Cache(root: root.appendingPathComponent("cache"))
        let graph = try PipelineGraph.build(try SpecParser.parse(file: root.appendingPathComponent("p.yaml")), registry: PathologyNodes.registry)
        let summary = Executor(plan: try Planner.plan(graph, cache: cache), cache: cache, jobs: 2).run()
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let predictions = try Predictions.read(from: summary.entries["cox"]!.appendingPathComponent("predictions"))
        XCTAssertEqual(predictions.count, 432)
        XCTAssertEqual(Set(predictions.folds), [1, 2, 3, 4, 5])
        let metrics = try JSONSerialization.jsonObject(with: Data(contentsOf: summary.entries["score"]!.appendingPathComponent("metrics/metrics.json"))) as! [String: Any]
        let cindex = ((metrics["metrics"] as! [String: Any])["cindex"] as! [String: Double])["value"]!
        // Out-of-fold C-index of the Rossi model: in-sample it is 0.64 (lifelines); a little lower out of fold.
        XCTAssertGreaterThan(cindex, 0.55)
        XCTAssertLessThan(cindex, 0.68)
    }
}
