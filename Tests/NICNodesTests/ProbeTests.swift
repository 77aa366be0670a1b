import Flow
import Foundation
import NICNodes
import Stats
import XCTest

/// The linear probe end to end on a tiny synthetic cohort: out-of-fold predictions for every
/// labelled patient, on exactly the folds a patient_model on the same grids uses, readable by the
/// evaluator and comparable with the CNN.
final class ProbeTests: XCTestCase {
    func testProbePredictsEveryPatientOnThePatientModelsFolds() throws {
        let ws = try CohortWorkspace(patients: 10, size: 768, annotations: 4)
        for name in ["encoders/mean-rgb.yaml", "heads/regression.yaml", "heads/cox.yaml"] {
            let target = ws.root.appendingPathComponent("nodes/\(name)")
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: NICPipelineTests.repo.appendingPathComponent("nodes/\(name)"), to: target)
        }
        try ws.write("nodes/patient/tiny.yaml", """
        name: tiny
        input: [4, 4, 3]
        layers:
          - flatten
          - dense: 4
        """)
        let summary = try ws.run(CohortWorkspace.meanRGBGrids(pipeline: "probe") + """
          cnn:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/tiny.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 3, epochs: 1, batch_size: 4, test_crops: 1, seed: 5}
          probe: {type: probe, in: {grids: grids}, params: {head: nodes/heads/regression.yaml, target: [score], folds: 3, inner_folds: 2, seed: 5}}
          survival: {type: probe, in: {grids: grids}, params: {head: nodes/heads/cox.yaml, target: [time, event], folds: 3, inner_folds: 2, seed: 5, pooling: [mean]}}
          score: {type: evaluator, in: {predictions: probe}, params: {bootstrap: 50}}
          vs: {type: compare, in: {a: probe, b: cnn}, params: {bootstrap: 50}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")

        let labels = try CSVTable.read(ws.root.appendingPathComponent("cohort/labels.csv"))
        let patients = Set(labels.column("patient")!).sorted()
        let probe = try Predictions.read(from: try ws.output(summary, "probe", "predictions"))
        let cnn = try Predictions.read(from: try ws.output(summary, "cnn", "predictions"))
        XCTAssertEqual(probe.patients, patients)
        XCTAssertEqual(cnn.patients, patients)
        XCTAssertEqual(probe.folds, cnn.folds, "the probe and the CNN must be judged on the same splits")
        XCTAssertEqual(Set(probe.folds), [1, 2, 3])
        XCTAssertEqual(probe.labels, cnn.labels)
        XCTAssertTrue(probe.scores.allSatisfy { $0.count == 1 && $0[0].isFinite })

        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: try ws.output(summary, "probe", "predictions").appendingPathComponent("probe.json"))) as! [String: Any]
        XCTAssertEqual(record["model"] as? String, "ridge")
        XCTAssertEqual(record["features"] as? Int, 6, "mean and max of 3 mean-RGB channels")
        let folds = record["folds"] as! [[String: Any]]
        XCTAssertEqual(folds.count, 3)
        for fold in folds {
            XCTAssertTrue([0.01, 0.1, 1, 10, 100].contains(fold["penalty"] as! Double))
            XCTAssertEqual((fold["inner_deviance"] as! [Double]).count, 5)
            XCTAssertEqual((fold["train"] as! Int) + (fold["test"] as! Int), patients.count)
        }

        // Survival: the Cox probe's folds are the patient model's for a Cox head (stratified by event).
        let survival = try Predictions.read(from: try ws.output(summary, "survival", "predictions"))
        XCTAssertEqual(survival.task, .survival)
        XCTAssertEqual(survival.patients, patients)
        let event = Dictionary(labels.rows.map { ($0[labels.columnIndex("patient")!], $0[labels.columnIndex("event")!] == "1" ? "event" : "censored") },
                               uniquingKeysWith: { a, _ in a })
        let expected = Folds.assign(patients: patients, k: 3, seed: 5, strata: event)
        XCTAssertEqual(survival.folds, patients.map { expected[$0]! + 1 })

        let comparison = try JSONSerialization.jsonObject(with: Data(contentsOf: try ws.output(summary, "vs", "metrics").appendingPathComponent("metrics.json"))) as! [String: Any]
        XCTAssertNotNil((comparison["metrics"] as! [String: Any])["spearman_a_minus_b"])
    }
}
