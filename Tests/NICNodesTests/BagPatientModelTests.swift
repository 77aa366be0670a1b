import Flow
import Foundation
import NICNodes
import Stats
import TensorStore
import XCTest

/// The bag (MIL) patient model end to end on a tiny synthetic cohort with several slides per patient:
/// every patient predicted out of fold on the CNN's folds, attention maps grid-shaped with zero
/// background and summing to one over each patient's bag, and the aggregation choice enforced.
final class BagPatientModelTests: XCTestCase {
    func testGatedAttentionBagsPredictEveryPatientAndWriteAttentionMaps() throws {
        let ws = try CohortWorkspace(patients: 8, size: 768, annotations: 4)
        try ws.copyRepoNodes(["encoders/mean-rgb.yaml", "heads/regression.yaml", "heads/cox.yaml"])
        try ws.write("nodes/patient/mil.yaml", """
        input: [3]
        layers: [{dense: 8}, relu]
        pool: {type: gated_attention, hidden: 4, dropout: 0.25}
        """)
        try ws.write("nodes/patient/tiny.yaml", "input: [4, 4, 3]\nlayers: [flatten, {dense: 4}]\n")
        let summary = try ws.run(CohortWorkspace.meanRGBGrids(pipeline: "mil", previews: 1) + """
          mil:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/mil.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 3, epochs: 2, batch_size: 2, bag_cells: 5, seed: 5}
          slides:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/mil.yaml, head: nodes/heads/cox.yaml, target: [time, event], folds: 3, epochs: 2, batch_size: 4, aggregation: slides, seed: 5}
          cnn:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/tiny.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 3, epochs: 1, batch_size: 4, test_crops: 1, seed: 5}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let labels = try CSVTable.read(ws.root.appendingPathComponent("cohort/labels.csv"))
        let patients = Set(labels.column("patient")!).sorted()
        let stems = labels.column("slide")!
        XCTAssertGreaterThan(stems.count, patients.count, "the cohort must have a patient with several slides")

        let out = try ws.output(summary, "mil", "predictions")
        let mil = try Predictions.read(from: out)
        let cnn = try Predictions.read(from: try ws.output(summary, "cnn", "predictions"))
        XCTAssertEqual(mil.patients, patients)
        XCTAssertEqual(mil.folds, cnn.folds, "bag and CNN models are judged on the same splits")
        XCTAssertTrue(mil.scores.allSatisfy { $0.count == 1 && $0[0].isFinite })
        XCTAssertTrue(try Predictions.read(from: try ws.output(summary, "slides", "predictions")).scores.allSatisfy { $0[0].isFinite })

        // One bag per patient: the attention of all of a patient's slides sums to 1; background is 0.
        let gridSet = try GridSet(folder: try ws.output(summary, "grids", "grids"))
        var mass: [String: Double] = [:]
        for (stem, patient) in zip(stems, labels.column("patient")!) {
            let map = try ZarrArrayReader(at: out.appendingPathComponent("attention/\(stem)")).read(as: Float.self)
            let loaded = try gridSet.load(stem)
            XCTAssertEqual(map.count, loaded.rows * loaded.columns)
            for (value, tissue) in zip(map, loaded.mask) {
                if tissue { XCTAssertGreaterThan(value, 0) } else { XCTAssertEqual(value, 0) }
            }
            mass[patient, default: 0] += map.reduce(0) { $0 + Double($1) }
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("attention/\(stem).png").path))
        }
        for patient in patients { XCTAssertEqual(mass[patient] ?? 0, 1, accuracy: 1e-4, patient) }
        // The report's preview: the attention map beside the false-colour grid of the slide the
        // compressor drew (previews: 1, the first slide).
        let preview = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("preview").path).sorted()
        XCTAssertEqual(preview, ["\(stems[0])-attention.png", "\(stems[0])-pca.png", "captions.json"])
    }

    /// curves.csv holds each fold's held-out loss per epoch beside its training loss; for a mean-pool
    /// regression bag model (one orientation, every cell in a bag) the last epoch's held-out loss is the
    /// mean squared error of the fold's out-of-fold predictions on the standardised target.
    func testCurvesRecordEachFoldsHeldOutLossBesideTheTrainingLoss() throws {
        let ws = try CohortWorkspace(patients: 2, size: 512, annotations: 2)
        try ws.copyRepoNodes(["encoders/mean-rgb.yaml", "heads/regression.yaml"])
        try ws.write("nodes/patient/mil.yaml", "layers: [{dense: 4}, relu]\npool: {type: mean}\n")
        try ws.write("nodes/patient/tiny.yaml", "input: [4, 4, 3]\nlayers: [flatten, {dense: 4}]\n")
        let summary = try ws.run("""
        pipeline: curves
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 2}}
          rgb: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}}
          train: {type: planted_grids, in: {encoder: rgb}, params: {patients: 16, seed: 1}}
          mil: {type: patient_model, in: {grids: train}, params: {architecture: nodes/patient/mil.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 2, epochs: 3, batch_size: 4}}
          cnn: {type: patient_model, in: {grids: train}, params: {architecture: nodes/patient/tiny.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 2, epochs: 3, batch_size: 4, test_crops: 2}}
        """, registry: PathologyNodes.registry.merging([PlantedGrids.self]))
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        for name in ["mil", "cnn"] {
            let out = try ws.output(summary, name, "predictions")
            let curves = try CSVTable.read(out.appendingPathComponent("curves.csv"))
            XCTAssertEqual(curves.columns, ["epoch", "fold1_loss", "fold2_loss", "fold1_val_loss", "fold2_val_loss"], name)
            XCTAssertEqual(curves.rows.count, 3, name)
            for row in curves.rows { XCTAssertTrue(row.dropFirst().allSatisfy { Double($0).map { $0.isFinite && $0 >= 0 } ?? false }, "\(name): \(row)") }
            guard name == "mil" else { continue }
            let predictions = try Predictions.read(from: out)
            let truth = predictions.labels.map { Double($0)! }
            let mean = truth.reduce(0, +) / Double(truth.count)
            let std = (truth.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(truth.count - 1)).squareRoot()
            for fold in 1...2 {
                let members = predictions.patients.indices.filter { predictions.folds[$0] == fold }
                let mse = members.map { i in pow((predictions.scores[i][0] - truth[i]) / std, 2) }.reduce(0, +) / Double(members.count)
                let recorded = Double(curves.rows[2][2 + fold])!
                XCTAssertEqual(recorded, mse, accuracy: 1e-4 * max(1, mse), "fold \(fold)")
            }
        }
    }

    func testPatientBagsNeedABagModel() throws {
        let ws = try CohortWorkspace(patients: 4, size: 512, annotations: 2)
        try ws.copyRepoNodes(["encoders/mean-rgb.yaml", "heads/regression.yaml"])
        try ws.write("nodes/patient/tiny.yaml", "input: [4, 4, 3]\nlayers: [flatten, {dense: 4}]\n")
        let summary = try ws.run(CohortWorkspace.meanRGBGrids(pipeline: "cnn") + """
          cnn:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/tiny.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 2, epochs: 1, batch_size: 2, aggregation: patient}
        """)
        XCTAssertFalse(summary.succeeded)
        let messages = summary.failures.map(\.message).joined(separator: "\n")
        XCTAssertTrue(messages.contains("'patient' (one bag per patient) needs a bag model"), messages)
    }
}
