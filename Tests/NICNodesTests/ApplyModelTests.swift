import Flow
import Foundation
@testable import NICNodes
import NICBasics
import Neural
import Stats
import TensorStore
import XCTest

/// Kept patient models (`model` output of patient_model and probe) and the `apply` node: a kept
/// model repeats its folds' out-of-fold predictions on the training grids, the ensemble is the mean
/// of its members, a planted signal transfers to a cohort of another seed, grids of another encoder
/// are refused with both named, and an unlabelled cohort gives a submission and nothing to score.
final class ApplyModelTests: XCTestCase {
    static let models = """
      cnn:
        type: patient_model
        in: {grids: grids}
        params: {architecture: nodes/patient/tiny.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 3, epochs: 2, batch_size: 4, test_crops: 2, seed: 5}
      mil:
        type: patient_model
        in: {grids: grids}
        params: {architecture: nodes/patient/mil.yaml, head: nodes/heads/cox.yaml, target: [time, event], folds: 3, epochs: 2, batch_size: 4, seed: 5}
      gated:
        type: patient_model
        in: {grids: grids}
        params: {architecture: nodes/patient/gated.yaml, head: nodes/heads/binary.yaml, target: [high_grade], folds: 3, epochs: 2, batch_size: 2, aggregation: slides, seed: 5}
      probe:
        type: probe
        in: {grids: grids}
        params: {head: nodes/heads/regression.yaml, target: [score], folds: 3, inner_folds: 2}

    """

    func testApplyOnTheTrainingGridsRepeatsEachFoldAndAveragesTheMembers() throws {
        let ws = try CohortWorkspace(patients: 8, size: 768, annotations: 4)
        try ws.copyRepoNodes(["encoders/mean-rgb.yaml", "heads/regression.yaml", "heads/cox.yaml", "heads/binary.yaml"])
        try ws.write("nodes/patient/mil.yaml", "layers: [{dense: 4}, relu]\npool: {type: mean}\n")
        try ws.write("nodes/patient/gated.yaml", "layers: [{dense: 4}, relu]\npool: {type: gated_attention, hidden: 3, dropout: 0.25}\n")
        try ws.write("nodes/patient/tiny.yaml", "input: [4, 4, 3]\nlayers: [flatten, {dense: 4}]\n")
        var yaml = CohortWorkspace.meanRGBGrids(pipeline: "apply") + Self.models
        for name in ["cnn", "mil", "gated", "probe"] {
            yaml += "  apply_\(name): {type: apply, in: {model: \(name).model, grids: grids}}\n"
            yaml += "  eval_\(name): {type: evaluator, in: {predictions: apply_\(name)}, params: {bootstrap: 0}}\n"
        }
        let summary = try ws.run(yaml)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        for name in ["cnn", "mil", "gated", "probe"] {
            let oof = try Predictions.read(from: try ws.output(summary, name, "predictions"))
            let applied = try ws.output(summary, "apply_\(name)", "predictions")
            let external = try Predictions.read(from: applied)
            XCTAssertTrue(external.external, name)
            XCTAssertEqual(external.patients, oof.patients, name)
            XCTAssertEqual(Set(external.folds), [0], name)
            let members = try CSVTable.read(applied.appendingPathComponent("members.csv"))
            XCTAssertEqual(members.columns, ["patient", "fold1", "fold2", "fold3"], name)
            for (i, patient) in oof.patients.enumerated() {
                guard let row = members.rows.first(where: { $0[0] == patient }) else { XCTFail("\(name): \(patient) missing"); continue }
                let values = row.dropFirst().map { Double($0)! }
                // The member of the patient's fold is the model that predicted it out of fold.
                XCTAssertEqual(values[oof.folds[i] - 1], oof.scores[i][0], accuracy: 1e-6, "\(name) \(patient)")
                let j = external.patients.firstIndex(of: patient)!
                XCTAssertEqual(external.scores[j][0], values.reduce(0, +) / Double(values.count), accuracy: 1e-9, "\(name) \(patient): the ensemble is the mean")
            }
            // The card says what the model needs.
            let card = try TrainedModel(folder: try ws.output(summary, name, "model")).card
            XCTAssertEqual(card.members.count, 3)
            XCTAssertEqual(card.encoder.codeSize, 3)
            XCTAssertEqual(card.encoder.patchSize, 128)
            XCTAssertNotNil(card.encoder.key)
            XCTAssertEqual(card.trainingCohort.patients, oof.count)
            XCTAssertFalse(card.outOfFold.isEmpty, name)
            let metrics = try CSVTable.read(try ws.output(summary, "eval_\(name)", "metrics").appendingPathComponent("metrics.csv"))
            XCTAssertEqual(metrics.rows.count, 2, name)
        }
        // The key recorded is the encoder's, as the compressor's manifest names it.
        let encoderKey = try ws.output(summary, "rgb", "model").deletingLastPathComponent().lastPathComponent
        XCTAssertEqual(try TrainedModel(folder: try ws.output(summary, "mil", "model")).card.encoder.key, encoderKey)
        // Weights load in the PyTorch layout the encoders use.
        let tensors = try Safetensors.read(try ws.output(summary, "gated", "model").appendingPathComponent("fold1.safetensors"))
        XCTAssertNotNil(tensors["pool.attention_a.0.weight"])
        XCTAssertTrue(tensors.keys.contains { $0.hasPrefix("head.") }, "\(tensors.keys.sorted())")
    }

    func testGridsOfAnotherEncoderAreRefusedNamingBoth() throws {
        let ws = try CohortWorkspace(patients: 8, size: 768, annotations: 2)
        try ws.copyRepoNodes(["encoders/mean-rgb.yaml", "heads/regression.yaml"])
        let base = CohortWorkspace.meanRGBGrids(pipeline: "other") + """
          rgb2: {type: encoder, in: {patches: tiles2}, params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}}
          tiles2: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 3}}
          grids2: {type: compressor, in: {slides: cohort, encoder: rgb2}, params: {min_tissue: 0.3, previews: 0}}
          probe:
            type: probe
            in: {grids: grids}
            params: {head: nodes/heads/regression.yaml, target: [score], folds: 2, inner_folds: 2}

        """
        let refused = try ws.run(base + "  apply: {type: apply, in: {model: probe.model, grids: grids2}}\n")
        XCTAssertFalse(refused.succeeded)
        let message = refused.failures.map(\.message).joined(separator: "\n")
        let summary = try ws.run(base + "  apply: {type: apply, in: {model: probe.model, grids: grids2}, params: {allow_other_encoder: true}}\n")
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let trained = try ws.output(summary, "rgb", "model").deletingLastPathComponent().lastPathComponent
        let other = try ws.output(summary, "rgb2", "model").deletingLastPathComponent().lastPathComponent
        XCTAssertNotEqual(trained, other)
        XCTAssertTrue(message.contains(trained) && message.contains(other), message)
        XCTAssertTrue(message.contains("allow_other_encoder"), message)
        XCTAssertEqual(try Predictions.read(from: try ws.output(summary, "apply", "predictions")).count, 8)
    }

    func testACohortWithoutLabelsGivesASubmissionAndNothingToScore() throws {
        let ws = try CohortWorkspace(patients: 8, size: 768, annotations: 2)
        try ws.copyRepoNodes(["encoders/mean-rgb.yaml", "heads/binary.yaml"])
        let yaml = CohortWorkspace.meanRGBGrids(pipeline: "unlabelled").replacingOccurrences(of: "inputs:\n", with: """
        inputs:
          unlabelled: {kind: slides, dir: cohort/slides, pattern: "*.tif"}

        """) + """
          test_grids: {type: compressor, in: {slides: unlabelled, encoder: rgb}, params: {min_tissue: 0.3, previews: 0}}
          probe:
            type: probe
            in: {grids: grids}
            params: {head: nodes/heads/binary.yaml, target: [high_grade], folds: 2, inner_folds: 2}
          apply: {type: apply, in: {model: probe.model, grids: test_grids}}
          eval: {type: evaluator, in: {predictions: apply}}

        """
        let summary = try ws.run(yaml)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let out = try ws.output(summary, "apply", "predictions")
        let submission = try CSVTable.read(out.appendingPathComponent("submission.csv"))
        XCTAssertEqual(submission.columns, ["patient", "prediction", "probability"])
        let stems = try FileManager.default.contentsOfDirectory(atPath: ws.root.appendingPathComponent("cohort/slides").path)
            .filter { $0.hasSuffix(".tif") }.map { String($0.dropLast(4)) }.sorted()
        XCTAssertEqual(submission.column("patient"), stems, "without labels a slide is a patient")
        XCTAssertTrue(submission.column("probability")!.allSatisfy { Double($0).map { $0 > 0 && $0 < 1 } ?? false })
        let metrics = try JSONSerialization.jsonObject(with: Data(contentsOf: try ws.output(summary, "eval", "metrics").appendingPathComponent("metrics.json"))) as! [String: Any]
        XCTAssertEqual(metrics["n"] as? Int, 0)
        XCTAssertTrue((metrics["note"] as? String)?.hasPrefix("nothing to score") ?? false, "\(metrics)")
    }

    /// A signal planted in the codes (the fraction of cells with channel 0 lit follows a patient's
    /// latent; every label follows the latent) is learnt on one cohort and carried to another seed.
    func testAPlantedSignalTransfersToAnotherCohort() throws {
        let ws = try CohortWorkspace(patients: 2, size: 512, annotations: 2)
        try ws.copyRepoNodes(["encoders/mean-rgb.yaml", "heads/regression.yaml", "heads/binary.yaml"])
        try ws.write("nodes/patient/mil.yaml", "layers: [{dense: 8}, relu]\npool: {type: mean}\n")
        let summary = try ws.run("""
        pipeline: planted
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 2}}
          rgb: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}}
          train: {type: planted_grids, in: {encoder: rgb}, params: {patients: 48, seed: 1}}
          test: {type: planted_grids, in: {encoder: rgb}, params: {patients: 48, seed: 2}}
          score:
            type: patient_model
            in: {grids: train}
            params: {architecture: nodes/patient/mil.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 3, epochs: 30, batch_size: 8, learning_rate: 0.01}
          grade: {type: probe, in: {grids: train}, params: {head: nodes/heads/binary.yaml, target: [high], folds: 3}}
          apply_score: {type: apply, in: {model: score.model, grids: test}}
          apply_grade: {type: apply, in: {model: grade.model, grids: test}}
          eval_score: {type: evaluator, in: {predictions: apply_score}, params: {bootstrap: 0}}
          eval_grade: {type: evaluator, in: {predictions: apply_grade}, params: {bootstrap: 0}}
        """, registry: PathologyNodes.registry.merging([PlantedGrids.self]))
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        func metric(_ node: String, _ name: String) throws -> Double {
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: try ws.output(summary, node, "metrics").appendingPathComponent("metrics.json"))) as! [String: Any]
            return ((json["metrics"] as! [String: Any])[name] as! [String: Any])["value"] as! Double
        }
        let spearman = try metric("eval_score", "spearman"), auc = try metric("eval_grade", "auc")
        XCTAssertGreaterThan(spearman, 0.8)
        XCTAssertGreaterThan(auc, 0.9)
    }

    /// A patient whose slides have no tissue cell has no evidence: `apply` skips it (CNN, bag model and
    /// probe alike) with a warning naming it, lists it in skipped.csv and task.json, and the evaluator
    /// scores the others and names the skipped; a cohort with no tissue at all is an error.
    func testAPatientWithoutTissueIsSkippedNamedAndNotScored() throws {
        let ws = try CohortWorkspace(patients: 2, size: 512, annotations: 2)
        try ws.copyRepoNodes(["encoders/mean-rgb.yaml", "heads/regression.yaml"])
        try ws.write("nodes/patient/mil.yaml", "layers: [{dense: 4}, relu]\npool: {type: mean}\n")
        try ws.write("nodes/patient/tiny.yaml", "input: [4, 4, 3]\nlayers: [flatten, {dense: 4}]\n")
        let models = ["cnn": "nodes/patient/tiny.yaml", "mil": "nodes/patient/mil.yaml"]
        var yaml = """
        pipeline: blank
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 2}}
          rgb: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}}
          train: {type: planted_grids, in: {encoder: rgb}, params: {patients: 16, seed: 1}}
          test: {type: planted_grids, in: {encoder: rgb}, params: {patients: 10, seed: 2, blank: 3}}
          probe: {type: probe, in: {grids: train}, params: {head: nodes/heads/regression.yaml, target: [score], folds: 2, inner_folds: 2}}

        """
        for (name, architecture) in models.sorted(by: { $0.key < $1.key }) {
            yaml += "  \(name): {type: patient_model, in: {grids: train}, params: {architecture: \(architecture), head: nodes/heads/regression.yaml, target: [score], folds: 2, epochs: 2, batch_size: 4, test_crops: 2}}\n"
        }
        for name in ["cnn", "mil", "probe"] {
            yaml += "  apply_\(name): {type: apply, in: {model: \(name).model, grids: test}}\n"
            yaml += "  eval_\(name): {type: evaluator, in: {predictions: apply_\(name)}, params: {bootstrap: 40}}\n"
        }
        let registry = PathologyNodes.registry.merging([PlantedGrids.self])
        let url = try ws.write("pipeline.yaml", yaml)
        let plan = try Planner.plan(try PipelineGraph.build(try SpecParser.parse(file: url, displayPath: "pipeline.yaml"), registry: registry), cache: ws.cache)
        let recorder = try RunRecorder(runsRoot: ws.root.appendingPathComponent("runs"), plan: plan, cache: ws.cache, jobs: 2)
        let summary = Executor(plan: plan, cache: ws.cache, jobs: 2, observer: recorder).run()
        recorder.finish(summary)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let record = try RunRecord.load(recorder.folder)
        let blank = ["P2-0", "P2-1", "P2-2"], kept = (3..<10).map { "P2-\($0)" }
        for name in ["cnn", "mil", "probe"] {
            let out = try ws.output(summary, "apply_\(name)", "predictions")
            let predictions = try Predictions.read(from: out)
            XCTAssertEqual(predictions.patients.sorted(), kept.sorted(), name)
            XCTAssertEqual(predictions.skipped, blank, name)
            XCTAssertEqual(try CSVTable.read(out.appendingPathComponent("submission.csv")).column("patient")?.sorted(), kept.sorted(), name)
            XCTAssertEqual(try CSVTable.read(out.appendingPathComponent("members.csv")).column("patient")?.sorted(), kept.sorted(), name)
            let skipped = try CSVTable.read(out.appendingPathComponent("skipped.csv"))
            XCTAssertEqual(skipped.columns, ["patient", "slides", "labelled", "reason"], name)
            XCTAssertEqual(skipped.column("patient"), blank, name)
            XCTAssertEqual(skipped.column("slides"), ["S000", "S001", "S002"], name)
            XCTAssertEqual(skipped.column("labelled"), ["yes", "yes", "yes"], name)
            let warnings = record.nodes["apply_\(name)"]?.warnings ?? []
            XCTAssertTrue(warnings.contains { w in w.contains("3 of 10 patient(s) skipped") && blank.allSatisfy(w.contains) }, "\(name): \(warnings)")
            let metrics = try JSONSerialization.jsonObject(with: Data(contentsOf: try ws.output(summary, "eval_\(name)", "metrics").appendingPathComponent("metrics.json"))) as! [String: Any]
            XCTAssertEqual(metrics["n"] as? Int, 7, name)
            XCTAssertEqual(metrics["skipped"] as? [String], blank, name)
            XCTAssertNotNil((metrics["metrics"] as? [String: Any])?["spearman"], name)
            XCTAssertTrue((record.nodes["eval_\(name)"]?.warnings ?? []).contains { $0.contains("not scored") && $0.contains("P2-0") }, name)
        }
        // Out-of-fold predictions of a cohort without blank patients carry no `skipped` key: their files are as before.
        let task = try String(contentsOf: try ws.output(summary, "probe", "predictions").appendingPathComponent("task.json"), encoding: .utf8)
        XCTAssertFalse(task.contains("skipped"), task)

        let none = try ws.run(yaml.replacingOccurrences(of: "blank: 3", with: "blank: 10"), registry: registry)
        XCTAssertFalse(none.succeeded)
        let message = none.failures.map(\.message).joined(separator: "\n")
        XCTAssertTrue(message.contains("none of the 10 patient(s) has a tissue cell"), message)
    }
}

/// Test-only grids with a planted signal: per patient a latent z ~ N(0, 1); each tissue cell lights
/// code channel 0 with probability σ(2z) (other channels are noise); labels score = z, high = z > 0.
/// Takes an encoder only to stand for the grids' encoder (its key), as a compressor's grids do.
struct PlantedGrids: NodeType {
    static let name = "planted_grids"
    static let version = 1
    static let summary = "test: grids with a planted signal"
    static let inputs = [PortSpec("encoder", .model, optional: true, doc: "stands for the encoder of the grids")]
    static let outputs = [PortSpec("grids", .gridSet, doc: "the grids")]
    struct Params: NodeParams {
        @Param(doc: "patients") var patients = 40
        @Param(doc: "seed") var seed = 1
        @Param(doc: "the first this many patients' slides have no tissue cell (a blank slide)") var blank = 0
        init() {}
    }

    func run(_ context: NodeContext, _ params: Params) throws {
        let out = try context.output("grids")
        var rng = SplitMix64(seed: UInt64(params.seed))
        func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        let c = 3, rows = 6, columns = 6
        var slides: [SlideEntry] = [], infos: [GridSet.SlideInfo] = []
        for p in 0..<params.patients {
            let z = (-2 * log(max(1e-12, uniform()))).squareRoot() * cos(2 * .pi * uniform())
            let stem = String(format: "S%03d", p)
            var grid = [Float16](repeating: 0, count: rows * columns * c), mask = [UInt8](repeating: 0, count: rows * columns)
            for cell in 0..<(rows * columns) where uniform() < 0.8 && p >= params.blank {
                mask[cell] = 1
                grid[cell * c] = Float16(uniform() < 1 / (1 + exp(-2 * z)) ? 1 : 0)
                for ch in 1..<c { grid[cell * c + ch] = Float16(uniform()) }
            }
            if !mask.contains(1) && p >= params.blank { mask[0] = 1 }
            let folder = out.appendingPathComponent("grids/\(stem)")
            try ZarrArrayWriter(at: folder.appendingPathComponent("o0"), shape: [rows, columns, c], chunkShape: [rows, columns, c], dataType: .float16).write(grid)
            try ZarrArrayWriter(at: folder.appendingPathComponent("mask"), shape: [rows, columns], chunkShape: [rows, columns], dataType: .uint8).write(mask)
            infos.append(GridSet.SlideInfo(stem: stem, rows: rows, columns: columns, tissueCells: mask.filter { $0 != 0 }.count))
            slides.append(SlideEntry(path: "/nonexistent/\(stem).tif", stem: stem, vendor: "test", width: 768, height: 768, mpp: 0.5, mppSource: "test",
                                     levels: 1, quickhash: stem, labels: ["patient": "P\(params.seed)-\(p)", "score": "\(z)", "high": z > 0 ? "1" : "0"]))
        }
        try SlideSet(slides: slides, labelColumns: ["patient", "score", "high"]).write(to: out)
        let encoder = JSONEncoder()
        try encoder.encode(GridSet.Info(codeSize: c, size: 128, mpp: 0.5, orientations: 1, slides: infos)).write(to: out.appendingPathComponent("gridset.json"))
    }
}
