import Foundation
import Flow
import Neural
import XCTest
@testable import NICNodes

/// What the encoder node reports about its training and how it fits patches to architectures.
final class EncoderTrainingTests: XCTestCase {
    func testValidationScoresPerTaskKind() {
        // Regression: R² on the targets (1 for a perfect fit, 0 for the mean, negative when worse).
        let truth = [1.0, 2, 3, 4]
        XCTAssertEqual(SupervisedTraining.scores(kind: "regression", rows: truth.map { [$0] }, truth: truth)[0].1, 1, accuracy: 1e-12)
        XCTAssertEqual(SupervisedTraining.scores(kind: "regression", rows: truth.map { _ in [2.5] }, truth: truth)[0].1, 0, accuracy: 1e-12)
        // Binary: logits; accuracy at 0, AUC of the ranking (one of four pairs misordered: 0.75).
        let binary = SupervisedTraining.scores(kind: "binary", rows: [[-2], [0.5], [-0.1], [3]], truth: [0, 0, 1, 1])
        XCTAssertEqual(binary.map(\.0), ["accuracy", "auc"])
        XCTAssertEqual(binary[0].1, 0.5)
        XCTAssertEqual(binary[1].1, 0.75)
        // Classification: argmax accuracy and macro one-vs-rest AUC of the softmax.
        let classes = SupervisedTraining.scores(kind: "classification", rows: [[3, 0, 0], [0, 3, 0], [0, 0, 3], [0, 3, 0]], truth: [0, 1, 2, 2])
        XCTAssertEqual(classes[0].1, 0.75)
        XCTAssertGreaterThan(classes[1].1, 0.5)
        XCTAssertTrue(SupervisedTraining.scores(kind: "binary", rows: [], truth: [])[1].1.isNaN, "no labelled patch: no score")
    }

    func testDownsampleFollowsTheArchitecture() throws {
        let small = try Architecture.parse(yaml: "input: [64, 64, 3]\nlayers: [flatten, {dense: 2}]", file: "small.yaml")
        let full = try Architecture.parse(yaml: "input: [128, 128, 3]\nlayers: [flatten, {dense: 2}]", file: "full.yaml")
        XCTAssertEqual(try EncoderNode.downsample(nil, patch: 128, architecture: small, file: "small.yaml"), 2)
        XCTAssertEqual(try EncoderNode.downsample(nil, patch: 128, architecture: full, file: "full.yaml"), 1)
        XCTAssertEqual(try EncoderNode.downsample(2, patch: 128, architecture: small, file: "small.yaml"), 2)
        XCTAssertThrowsError(try EncoderNode.downsample(2, patch: 128, architecture: full, file: "full.yaml")) { error in
            XCTAssertTrue("\(error)".contains("full.yaml takes 128 px inputs"), "\(error)")
            XCTAssertTrue("\(error)".contains("set 'downsample' to 1"), "\(error)")
        }
        XCTAssertThrowsError(try EncoderNode.downsample(3, patch: 128, architecture: small, file: "small.yaml"))
    }
}

/// Supervised multi-task training through the streaming loader: the same seed gives the same weights
/// to the bit, whatever thread budget the node had (alone with every core, or sharing them with a
/// second training), and the model reports where its time went.
final class EncoderDeterminismTests: XCTestCase {
    func pipeline(seeds: [Int]) -> String {
        var yaml = """
        pipeline: mtl
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
          annotations: {kind: table, path: cohort/patches.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort, annotations: annotations}, params: {mode: training, per_task: 24, seed: 1}}
          augmented: {type: augmenter, in: {patches: tiles}, params: {recipe: nodes/augment/heavy.yaml, seed: 2, preview: 2}}

        """
        for seed in seeds {
            yaml += """
              mtl\(seed):
                type: encoder
                in: {patches: augmented}
                params: {architecture: nodes/encoders/tiny.yaml, epochs: 2, batch_size: 8, shuffle_buffer: 16, validation: 0.5, seed: \(seed)}

            """
        }
        return yaml
    }

    func testSameSeedSameWeightsWhateverTheThreadBudget() throws {
        let ws = try CohortWorkspace(patients: 4, size: 768, annotations: 6)
        try ws.writeTinyEncoder()
        let files = ["encoder.safetensors", "heads.safetensors", "curves.csv"]
        func outputs(_ summary: RunSummary, _ node: String) throws -> [Data] {
            let model = try ws.output(summary, node, "model")
            return try files.map { try Data(contentsOf: model.appendingPathComponent($0)) }
        }
        // Two trainings at once share the cores (one thread each while both run).
        let together = try ws.run(pipeline(seeds: [1, 2]), jobs: 2)
        XCTAssertTrue(together.succeeded, "\(together.failures)")
        // The first alone, with every core, in a fresh cache.
        let alone = try ws.run(pipeline(seeds: [1]), jobs: 1, cache: try Cache(root: ws.root.appendingPathComponent("cache-alone")))
        XCTAssertTrue(alone.succeeded, "\(alone.failures)")
        XCTAssertEqual(alone.executed, ["annotations", "augmented", "cohort", "mtl1", "tiles"])
        XCTAssertEqual(try outputs(together, "mtl1"), try outputs(alone, "mtl1"), "the same seed must give the same weights and curves")
        XCTAssertNotEqual(try outputs(together, "mtl1")[0], try outputs(together, "mtl2")[0], "another seed, other weights")

        let info = try JSONDecoder().decode(EncoderModel.Info.self, from: Data(contentsOf: try ws.output(alone, "mtl1", "model").appendingPathComponent("model.json")))
        let time = try XCTUnwrap(info.time, "model.json says where the time went")
        XCTAssertGreaterThan(time.training, 0)
        XCTAssertGreaterThan(time.loading, 0)
        XCTAssertGreaterThan(time.validation, 0)
        XCTAssertLessThanOrEqual(time.firstStep, time.total)
        XCTAssertLessThanOrEqual(time.training + time.validation + time.waitingForData, time.total)
        XCTAssertTrue(["data", "network"].contains(time.bottleneck))
        // The run record keeps the split (and the last epoch's losses) as the node's metrics.
        let recorded = try ws.runRecorded(pipeline(seeds: [3]), jobs: 1)
        XCTAssertTrue(recorded.summary.succeeded, "\(recorded.summary.failures)")
        let metrics = try XCTUnwrap(recorded.record.nodes["mtl3"]?.metrics)
        for key in ["time_training_s", "time_loading_s", "time_waiting_for_data_s", "time_augmentation_s", "time_validation_s", "loss", "val_loss"] {
            XCTAssertNotNil(metrics[key], key)
        }
        XCTAssertEqual(info.trainPatches + info.validationPatches, try PatchSet(folder: try ws.output(alone, "tiles", "patches")).count)
    }
}

/// `monitor` reaches the trainer: with `sum` the kept epoch is the one with the lowest summed validation
/// loss; with `each_task` the one with the lowest mean of each task's validation loss relative to its
/// first epoch (read back from curves.csv), and a shared key stays as it was at the default.
final class EncoderMonitorTests: XCTestCase {
    func testTheKeptEpochFollowsTheMonitor() throws {
        let ws = try CohortWorkspace(patients: 4, size: 768, annotations: 6)
        try ws.writeTinyEncoder()
        func encoder(_ name: String, _ monitor: String?) -> String {
            "  \(name): {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/tiny.yaml, epochs: 6, batch_size: 8, validation: 0.5, learning_rate: 0.02, seed: 5\(monitor.map { ", monitor: \($0)" } ?? "")}}\n"
        }
        let summary = try ws.run("""
        pipeline: monitor
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
          annotations: {kind: table, path: cohort/patches.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort, annotations: annotations}, params: {mode: training, per_task: 24, seed: 1}}

        """ + encoder("by_sum", nil) + encoder("by_sum_named", "sum") + encoder("by_task", "each_task"), jobs: 1)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        func kept(_ node: String) throws -> (best: Int, curves: CSVTable) {
            let model = try ws.output(summary, node, "model")
            let info = try JSONDecoder().decode(EncoderModel.Info.self, from: Data(contentsOf: model.appendingPathComponent("model.json")))
            return (try XCTUnwrap(info.bestEpoch), try CSVTable.read(model.appendingPathComponent("curves.csv")))
        }
        func column(_ table: CSVTable, _ name: String) throws -> [Double] {
            let index = try XCTUnwrap(table.columnIndex(name), name)
            return table.rows.map { Double($0[index]) ?? .nan }
        }
        let sum = try kept("by_sum")
        let total = try column(sum.curves, "val_loss")
        XCTAssertEqual(sum.best, (total.indices.min { total[$0] < total[$1] } ?? -1) + 1)
        XCTAssertEqual(try ws.output(summary, "by_sum", "model"), try ws.output(summary, "by_sum_named", "model"),
                       "monitor: sum is the default and leaves the key as it was")

        let each = try kept("by_task")
        let tasks = each.curves.columns.filter { $0.hasPrefix("val_") && $0.hasSuffix("_loss") && $0 != "val_loss" }
        XCTAssertEqual(tasks.count, 3, "\(each.curves.columns)")
        let losses = try tasks.map { try column(each.curves, $0) }
        let relative = (0..<losses[0].count).map { e in losses.reduce(0) { $0 + $1[e] / $1[0] } / Double(losses.count) }
        XCTAssertEqual(each.best, (relative.indices.min { relative[$0] < relative[$1] } ?? -1) + 1)
    }
}
