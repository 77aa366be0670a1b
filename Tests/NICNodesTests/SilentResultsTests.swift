import Flow
import Foundation
import NICNodes
import Stats
import XCTest

/// Results that used to be wrong and cached, or a finished run shown as died: each is now an error
/// or an explicit "not available".
final class SilentResultsTests: XCTestCase {
    /// A percentile interval needs a resample in each tail: with one, the "95 % CI" was [x, x] around
    /// whatever that resample gave, not containing the estimate.
    func testBootstrapTooSmallForTheLevelGivesNoInterval() {
        let one = Bootstrap.percentile(estimate: 0.8, replicates: [1.0], confidence: 0.95)
        XCTAssertTrue(one.low.isNaN && one.high.isNaN)
        XCTAssertEqual(one.valid, 1)
        let enough = Bootstrap.percentile(estimate: 0.5, replicates: (0..<40).map { Double($0) / 39 }, confidence: 0.95)
        XCTAssertEqual(enough.low, 0.025, accuracy: 1e-9)
        XCTAssertEqual(enough.high, 0.975, accuracy: 1e-9)
        XCTAssertTrue(Bootstrap.percentile(estimate: 0.5, replicates: (0..<39).map(Double.init), confidence: 0.95).low.isNaN)
    }

    func testBootstrapOfOneIsRejectedAtValidate() throws {
        let ws = try InteropWorkspace()
        let csv = try ws.write("bin.csv", "patient,label,p\na,0,0.1\nb,1,0.8\nc,1,0.4\nd,0,0.3\n")
        for (bootstrap, node) in [(1, "evaluator"), (39, "evaluator"), (10, "compare")] {
            let inputs = node == "compare" ? "{a: p, b: p}" : "{predictions: p}"
            XCTAssertThrowsError(try ws.run("""
            pipeline: b
            inputs:
              p: {kind: predictions, path: \(csv.path), task: binary, target: label, prediction: p}
            nodes:
              m: {type: \(node), in: \(inputs), params: {bootstrap: \(bootstrap)}}
            """), "\(node) bootstrap \(bootstrap)") { error in
                XCTAssertTrue("\(error)".contains("bootstrap"), "\(error)")
                XCTAssertTrue("\(error)".contains("in [40, 1000000]"), "\(error)")
            }
        }
    }

    /// NaN, inf and 1e400 in a numeric column: an error naming the column and row, not zeros.
    func testNonFiniteTableValuesAreLocatedErrors() throws {
        let ws = try InteropWorkspace()
        for bad in ["nan", "inf", "1e400", "-Infinity"] {
            let table = try ws.write("t-\(bad).csv", "patient,age,score\nP1,50,1\nP2,\(bad),2\nP3,70,3\n")
            let summary = try ws.run("""
            pipeline: t
            inputs:
              t: {kind: table, path: \(table.path)}
            nodes:
              x: {type: to_tensor, in: {table: t}, params: {columns: [age, score], standardize: true}}
            """)
            let failure = ws.failure(summary, "x") ?? "succeeded"
            XCTAssertTrue(failure.contains("column 'age' row 3: '\(bad)' is not a finite float32 number"), "\(bad): \(failure)")
        }
        try ws.copyRepo(["nodes/heads/regression.yaml"])
        let features = try ws.write("f.csv", "patient,age,score\n" + (1...8).map { "P\($0),\($0 == 4 ? "NaN" : String(40 + $0)),\($0)" }.joined(separator: "\n") + "\n")
        let summary = try ws.run("""
        pipeline: f
        inputs:
          f: {kind: table, path: \(features.path)}
        nodes:
          m: {type: patient_model, in: {features: f}, params: {head: nodes/heads/regression.yaml, target: [score], covariates: [age], folds: 2}}
        """)
        let failure = ws.failure(summary, "m") ?? "succeeded"
        XCTAssertTrue(failure.contains("features table line 5: column 'age' must be a finite number, found 'NaN'"), failure)
    }

    /// Aliases of a long string: within the node count, beyond the bytes.
    func testYAMLExpansionIsBoundedInBytes() throws {
        let long = String(repeating: "x", count: 64 << 10)
        let text = "a: &s \(long)\nb: [" + Array(repeating: "*s", count: 300).joined(separator: ", ") + "]\n"
        XCTAssertThrowsError(try YAMLLimits.compose(text, file: "big.yaml")) { error in
            XCTAssertTrue("\(error)".contains("big.yaml:"), "\(error)")
            XCTAssertTrue("\(error)".contains("more than 16 MiB of text"), "\(error)")
        }
        let small = "a: &s \(long)\nb: [" + Array(repeating: "*s", count: 100).joined(separator: ", ") + "]\n"
        XCTAssertNotNil(try YAMLLimits.compose(small, file: "ok.yaml"))
    }

    /// `validation: 0` holds out one slide: a score the split cannot give (AUC of one class) is null
    /// with a reason; the run record is written and says done.
    func testEncoderWithValidationZeroFinishesAndRecordsDone() throws {
        let ws = try CohortWorkspace(patients: 4, size: 768, annotations: 6)
        try ws.writeTinyEncoder()
        let recorded = try ws.runRecorded("""
        pipeline: v0
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
          annotations: {kind: table, path: cohort/patches.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort, annotations: annotations}, params: {mode: training, per_task: 24, seed: 1}}
          mtl:
            type: encoder
            in: {patches: tiles}
            params: {architecture: nodes/encoders/tiny.yaml, epochs: 1, batch_size: 8, shuffle_buffer: 16, validation: 0, seed: 1}
        """, jobs: 1)
        XCTAssertTrue(recorded.summary.succeeded, "\(recorded.summary.failures)")
        XCTAssertEqual(recorded.record.status, "done")
        XCTAssertEqual(recorded.record.nodes["mtl"]?.status, "done")
        let data = try Data(contentsOf: try ws.output(recorded.summary, "mtl", "model").appendingPathComponent("model.json"))
        let info = try JSONDecoder().decode(EncoderModel.Info.self, from: data)
        for task in info.tasks {
            for (name, value) in task.validation ?? [:] where value == nil {
                XCTAssertNotNil(task.unavailable?[name], "\(task.name) \(name) is null without a reason")
            }
        }
    }
}
