import Flow
import Foundation
@testable import NICNodes
import Stats
import XCTest

/// `compare`: the paired bootstrap of a metric difference, against numpy/scipy/scikit-learn/lifelines
/// on the same resamples (scripts/probe_fixture.py), and its checks that a and b are comparable.
final class CompareTests: XCTestCase {
    static let fixture: URL = NICPipelineTests.repo.appendingPathComponent("Tests/StatsTests/Fixtures/probe.json")

    func predictions(_ c: [String: Any], scores key: String) -> Predictions {
        let metric = c["metric"] as! String
        let scores = (c[key] as! [NSNumber]).map { [$0.doubleValue] }
        let n = scores.count
        let patients = (0..<n).map { "p\($0)" }
        switch metric {
        case "cindex":
            return Predictions(task: .survival, targetColumns: ["time", "event"], classes: [], patients: patients, folds: [Int](repeating: 1, count: n),
                               labels: [String](repeating: "", count: n), time: (c["time"] as! [NSNumber]).map(\.doubleValue),
                               event: (c["event"] as! [NSNumber]).map { $0.intValue == 1 }, scores: scores)
        case "auc":
            return Predictions(task: .binary, targetColumns: ["label"], classes: ["0", "1"], patients: patients, folds: [Int](repeating: 1, count: n),
                               labels: (c["truth"] as! [NSNumber]).map { "\($0.intValue)" }, time: [Double](repeating: 0, count: n),
                               event: [Bool](repeating: false, count: n), scores: scores)
        default:
            return Predictions(task: .regression, targetColumns: ["score"], classes: [], patients: patients, folds: [Int](repeating: 1, count: n),
                               labels: (c["truth"] as! [NSNumber]).map { "\($0.doubleValue)" }, time: [Double](repeating: 0, count: n),
                               event: [Bool](repeating: false, count: n), scores: scores)
        }
    }

    func testNonFinitePredictionsAreNotWritten() throws {
        let p = Predictions(task: .regression, targetColumns: ["score"], classes: [], patients: ["a", "b"], folds: [1, 2],
                            labels: ["1", "2"], time: [0, 0], event: [false, false], scores: [[0.5], [.nan]])
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nic-pred-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        XCTAssertThrowsError(try p.write(to: folder)) { XCTAssertTrue("\($0)".contains("patient 'b' (fold 2) is nan: the model diverged"), "\($0)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("predictions.csv").path))
    }

    func testPairedBootstrapMatchesNumpyReference() throws {
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture)) as! [String: Any]
        for c in fixture["paired_bootstrap"] as! [[String: Any]] {
            let metric = c["metric"] as! String
            let expected = c["expected"] as! [String: Any]
            func value(_ k: String) -> Double { (expected[k] as! NSNumber).doubleValue }
            func pair(_ k: String) -> [Double] { (expected[k] as! [NSNumber]).map(\.doubleValue) }
            let a = predictions(c, scores: "a"), b = predictions(c, scores: "b")
            // b in another order: the comparison pairs patients by id, not by row.
            var shuffled = b
            let order = Array(b.patients.indices.reversed())
            shuffled.patients = order.map { b.patients[$0] }
            shuffled.labels = order.map { b.labels[$0] }
            shuffled.time = order.map { b.time[$0] }
            shuffled.event = order.map { b.event[$0] }
            shuffled.scores = order.map { b.scores[$0] }
            let result = try Compare.paired(a, shuffled, metric: metric, resamples: (c["resamples"] as! NSNumber).intValue,
                                            confidence: (c["confidence"] as! NSNumber).doubleValue, seed: UInt64((c["seed"] as! NSNumber).intValue))
            XCTAssertEqual(result.a.estimate, value("a"), accuracy: 1e-12, metric)
            XCTAssertEqual(result.b.estimate, value("b"), accuracy: 1e-12, metric)
            XCTAssertEqual(result.difference.estimate, value("difference"), accuracy: 1e-12, metric)
            XCTAssertEqual(result.difference.valid, (expected["valid"] as! NSNumber).intValue, metric)
            XCTAssertEqual(result.difference.low, pair("difference_ci")[0], accuracy: 1e-12, metric)
            XCTAssertEqual(result.difference.high, pair("difference_ci")[1], accuracy: 1e-12, metric)
            XCTAssertEqual(result.a.low, pair("a_ci")[0], accuracy: 1e-12, metric)
            XCTAssertEqual(result.b.high, pair("b_ci")[1], accuracy: 1e-12, metric)
            XCTAssertEqual(result.fractionABetter, value("fraction_a_better"), accuracy: 1e-12, metric)
        }
    }

    func testComparisonNamesWhatDiffers() throws {
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixture)) as! [String: Any]
        let cases = fixture["paired_bootstrap"] as! [[String: Any]]
        let regression = predictions(cases[0], scores: "a"), binary = predictions(cases[1], scores: "a")
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(message { _ = try Compare.paired(regression, binary, metric: "spearman", resamples: 10, confidence: 0.95, seed: 0) }
            .contains("'a' holds regression predictions, 'b' binary"))
        var fewer = regression
        fewer.patients.removeLast(); fewer.labels.removeLast(); fewer.scores.removeLast(); fewer.folds.removeLast()
        fewer.time.removeLast(); fewer.event.removeLast()
        XCTAssertTrue(message { _ = try Compare.paired(regression, fewer, metric: "spearman", resamples: 10, confidence: 0.95, seed: 0) }
            .contains("1 only in 'a' (p29)"))
        var relabelled = regression
        relabelled.labels[3] = "99"
        XCTAssertTrue(message { _ = try Compare.paired(regression, relabelled, metric: "spearman", resamples: 10, confidence: 0.95, seed: 0) }
            .contains("patient 'p3'"))
        XCTAssertTrue(message { _ = try Compare.paired(regression, regression, metric: "auc", resamples: 10, confidence: 0.95, seed: 0) }
            .contains("expected one of mae, pearson, spearman"))
    }

    /// In a pipeline: metrics.json in the evaluator's shape; a model compared with itself differs by 0.
    func testCompareNodeWritesEvaluatorShapedMetrics() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("nic-compare-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        var rows = ["patient,score,good,bad"]
        for i in 0..<20 { rows.append("p\(i),\(i),\(Double(i) + Double(i % 3)),\(Double((i * 7) % 20))") }
        try Data(rows.joined(separator: "\n").utf8).write(to: root.appendingPathComponent("pred.csv"))
        try Data("""
        pipeline: compare
        inputs:
          good: {kind: predictions, path: pred.csv, task: regression, target: score, prediction: good}
          bad: {kind: predictions, path: pred.csv, task: regression, target: score, prediction: bad}
        nodes:
          vs: {type: compare, in: {a: good, b: bad}, params: {bootstrap: 200, seed: 3}}
          same: {type: compare, in: {a: good, b: good}, params: {bootstrap: 50}}
        """.utf8).write(to: root.appendingPathComponent("p.yaml"))
        let cache = try Cache(root: root.appendingPathComponent("cache"))
        let graph = try PipelineGraph.build(try SpecParser.parse(file: root.appendingPathComponent("p.yaml")), registry: PathologyNodes.registry)
        let summary = Executor(plan: try Planner.plan(graph, cache: cache), cache: cache, jobs: 2).run()
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: summary.entries["vs"]!.appendingPathComponent("metrics/metrics.json"))) as! [String: Any]
        XCTAssertEqual(doc["metric"] as? String, "spearman")
        XCTAssertEqual(doc["n"] as? Int, 20)
        let metrics = doc["metrics"] as! [String: [String: Double]]
        XCTAssertEqual(Set(metrics.keys), ["spearman_a", "spearman_b", "spearman_a_minus_b", "fraction_a_better"])
        let difference = metrics["spearman_a_minus_b"]!
        XCTAssertEqual(difference["value"]!, metrics["spearman_a"]!["value"]! - metrics["spearman_b"]!["value"]!, accuracy: 1e-12)
        XCTAssertLessThan(difference["ci_low"]!, difference["value"]!)
        XCTAssertGreaterThan(difference["ci_low"]!, 0, "a near-perfect ranking against a scrambled one")
        XCTAssertEqual(metrics["fraction_a_better"]!["value"], 1)
        let csv = try CSVTable.read(summary.entries["vs"]!.appendingPathComponent("metrics/metrics.csv"))
        XCTAssertEqual(csv.column("metric")!, ["spearman_a", "spearman_b", "spearman_a_minus_b", "fraction_a_better"])
        let same = try JSONSerialization.jsonObject(with: Data(contentsOf: summary.entries["same"]!.appendingPathComponent("metrics/metrics.json"))) as! [String: Any]
        let selfDifference = (same["metrics"] as! [String: [String: Double]])["spearman_a_minus_b"]!
        XCTAssertEqual([selfDifference["value"]!, selfDifference["ci_low"]!, selfDifference["ci_high"]!], [0, 0, 0])
    }
}
