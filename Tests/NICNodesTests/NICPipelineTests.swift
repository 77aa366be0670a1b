import Flow
import Foundation
import NICNodes
import Slides
import Synthetic
import TensorStore
import XCTest

/// The NIC nodes end to end on small data: compressor geometry and orientation consistency, and the
/// head swap that reruns only the patient model and its evaluator.
final class NICPipelineTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func copyRepoNodes(_ ws: CohortWorkspace, _ names: [String]) throws {
        for name in names {
            let target = ws.root.appendingPathComponent("nodes/\(name)")
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Self.repo.appendingPathComponent("nodes/\(name)"), to: target)
        }
    }

    /// Mean-RGB is invariant to the dihedral group, so it is the rotation-equivariant toy encoder: the
    /// grid of a rotated slide must equal the rotated grid of the slide.
    func testCompressorGridGeometryAndRotatedSlide() throws {
        let ws = try CohortWorkspace(patients: 1, size: 512, annotations: 2)
        try copyRepoNodes(ws, ["encoders/mean-rgb.yaml"])
        // The real CMU slide, and a 1024 × 896 px region of it written at exactly 0.5 µm/px (an 8 × 7 grid, no
        // partial cells whose position would shift under rotation) as a slide and as its 90° rotation.
        let cmu = try Slide(url: try testDataSlide())
        let region = try cmu.readLevelRegion(level: 0, x: 600, y: 900, width: 1024, height: 896)
        let folder = ws.root.appendingPathComponent("rotated")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, image) in [("region", region), ("region-rot", Dihedral.apply(region, orientation: 1))] {
            let writer = try PyramidTIFFWriter(url: folder.appendingPathComponent("\(name).tif"), width: image.width, height: image.height,
                                           tileSize: 256, compression: .deflate, mpp: 0.5, description: nil)
            try writer.write { y, rows in Array(image.pixels[(y * image.width * 3)..<((y + rows) * image.width * 3)]) }
        }
        try FileManager.default.copyItem(at: try testDataSlide(), to: folder.appendingPathComponent("cmu.svs"))
        let summary = try ws.run("""
        pipeline: compress
        inputs:
          slides: {kind: slides, dir: rotated}
        nodes:
          tiles: {type: tile_sampler, in: {slides: slides}, params: {mode: grid, max_per_slide: 4}}
          rgb: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}}
          grids: {type: compressor, in: {slides: slides, encoder: rgb}, params: {orientations: "8", min_tissue: 0.3}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let gridSet = try GridSet(folder: try ws.output(summary, "grids", "grids"))
        XCTAssertEqual(gridSet.info.codeSize, 3)

        // CMU Small Region at 0.499 µm/px: cells of 128 px at 0.5 µm/px are 128.26 level-0 px.
        let info = try XCTUnwrap(gridSet.info.slides.first { $0.stem == "cmu" })
        XCTAssertEqual([info.rows, info.columns], [23, 17])
        let cmuGrid = try gridSet.load("cmu")
        XCTAssertGreaterThan(info.tissueCells, 40)
        XCTAssertLessThan(info.tissueCells, 23 * 17)
        for cell in 0..<(23 * 17) {
            let code = cmuGrid.grid[(cell * 3)..<(cell * 3 + 3)]
            if cmuGrid.mask[cell] {
                XCTAssertTrue(code.allSatisfy { $0 > -1 && $0 < 1 } && code.contains { $0 != 0 }, "tissue cell \(cell) has code \(Array(code))")
            } else {
                XCTAssertEqual(Array(code), [0, 0, 0], "background cell \(cell) must be zero")
            }
        }
        // Every orientation of a rotation-invariant encoder stores the same codes.
        let raw0 = try ZarrArrayReader(at: gridSet.folder.appendingPathComponent("grids/cmu/o0")).read(as: Float16.self)
        for k in 1..<8 {
            let rawK = try ZarrArrayReader(at: gridSet.folder.appendingPathComponent("grids/cmu/o\(k)")).read(as: Float16.self)
            XCTAssertEqual(zip(raw0, rawK).map { abs(Float($0) - Float($1)) }.max()!, 0, accuracy: 2e-3, "orientation \(k)")
        }

        // The rotated slide's grid equals the original grid rotated the same way (orientation 1).
        let rotated = try gridSet.load("region-rot")
        let turned = try gridSet.load("region", orientation: 1)
        XCTAssertEqual([rotated.rows, rotated.columns], [turned.rows, turned.columns])
        var compared = 0
        for cell in 0..<(rotated.rows * rotated.columns) {
            guard rotated.mask[cell] && turned.mask[cell] else { continue }
            compared += 1
            for ch in 0..<3 {
                XCTAssertEqual(rotated.grid[cell * 3 + ch], turned.grid[cell * 3 + ch], accuracy: 4e-3, "cell \(cell) channel \(ch)")
            }
        }
        // The tissue masks themselves need not agree cell for cell: the detector works on a 4 µm/px
        // thumbnail whose morphology is not exactly rotation-symmetric at this small size.
        XCTAssertGreaterThan(compared, 10)
    }

    func testSwappingTheHeadRerunsOnlyTheModelAndItsEvaluator() throws {
        let ws = try CohortWorkspace(patients: 8, size: 768, annotations: 4)
        try copyRepoNodes(ws, ["encoders/mean-rgb.yaml", "heads/regression.yaml", "heads/cox.yaml", "heads/binary.yaml"])
        try ws.write("nodes/patient/tiny.yaml", """
        name: tiny
        input: [4, 4, 3]
        layers:
          - separable_conv: {filters: 8, kernel: 3, stride: 1, padding: valid}
          - leaky_relu: 0.2
          - flatten
          - dense: 8
        """)
        let regression = """
        pipeline: heads
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 2}}
          rgb: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}}
          grids: {type: compressor, in: {slides: cohort, encoder: rgb}, params: {min_tissue: 0.3, previews: 1}}
          model:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/tiny.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 2, epochs: 2, batch_size: 4, crops_per_slide: 2, test_crops: 2}
          score: {type: evaluator, in: {predictions: model}, params: {bootstrap: 50}}
        """
        let first = try ws.run(regression)
        XCTAssertTrue(first.succeeded, "\(first.failures)")
        XCTAssertEqual(first.executed.count, 6)
        let predictions = try Predictions.read(from: try ws.output(first, "model", "predictions"))
        XCTAssertEqual(predictions.task, .regression)
        XCTAssertEqual(Set(predictions.patients).count, 8, "one out-of-fold prediction per patient")
        XCTAssertEqual(Set(predictions.folds), [1, 2])
        XCTAssertTrue(predictions.scores.allSatisfy { $0.count == 1 && $0[0].isFinite })

        // The one-line swap to Cox (with its target) reruns the model and its evaluator only.
        let cox = regression.replacingOccurrences(of: "head: nodes/heads/regression.yaml, target: [score]",
                                                  with: "head: nodes/heads/cox.yaml, target: [time, event]")
        let second = try ws.run(cox)
        XCTAssertTrue(second.succeeded, "\(second.failures)")
        XCTAssertEqual(second.executed, ["model", "score"])
        let survival = try Predictions.read(from: try ws.output(second, "model", "predictions"))
        XCTAssertEqual(survival.task, .survival)
        let metrics = try JSONSerialization.jsonObject(with: Data(contentsOf: try ws.output(second, "score", "metrics").appendingPathComponent("metrics.json"))) as! [String: Any]
        XCTAssertNotNil((metrics["metrics"] as? [String: Any])?["cindex"])
    }
}

final class VAEEncoderTests: XCTestCase {
    func testVAEEncoderTrainsAndCompresses() throws {
        let ws = try CohortWorkspace(patients: 2, size: 512, annotations: 4)
        for name in ["vae/encoder.yaml", "vae/decoder.yaml"] {
            let target = ws.root.appendingPathComponent("nodes/\(name)")
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: NICPipelineTests.repo.appendingPathComponent("nodes/\(name)"), to: target)
        }
        let summary = try ws.run("""
        pipeline: vae
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 12}}
          vae: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/vae/encoder.yaml, training: vae, epochs: 2, batch_size: 8, validation: 0.25}}
          grids: {type: compressor, in: {slides: cohort, encoder: vae}, params: {min_tissue: 0.3, previews: 0}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let model = try ws.output(summary, "vae", "model")
        let info = try JSONDecoder().decode(EncoderModel.Info.self, from: Data(contentsOf: model.appendingPathComponent("model.json")))
        XCTAssertEqual(info.training, "vae")
        XCTAssertEqual([info.epochs, info.maxEpochs], [2, 2])
        XCTAssertEqual(info.stoppedEarly, false)
        XCTAssertEqual(info.codeSize, 128)
        XCTAssertEqual(info.codeFrom, 128)
        let curves = try CSVTable.read(model.appendingPathComponent("curves.csv"))
        XCTAssertEqual(curves.rows.count, 2)
        XCTAssertTrue(curves.column("val_loss")!.allSatisfy { Double($0)!.isFinite })
        let gridSet = try GridSet(folder: try ws.output(summary, "grids", "grids"))
        XCTAssertEqual(gridSet.info.codeSize, 128)
        let withTissue = try XCTUnwrap(gridSet.info.slides.first { $0.tissueCells > 0 })
        let grid = try gridSet.load(withTissue.stem)
        XCTAssertEqual(grid.grid.count, grid.rows * grid.columns * 128)
        XCTAssertTrue(grid.grid.contains { $0 != 0 })
    }

    func testContrastiveEncoderLearnsNeighbourhoods() throws {
        let ws = try CohortWorkspace(patients: 2, size: 768, annotations: 4)
        let target = ws.root.appendingPathComponent("nodes/encoders")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        for name in ["nic-encoder.yaml", "contrastive-head.yaml"] {
            try FileManager.default.copyItem(at: NICPipelineTests.repo.appendingPathComponent("nodes/encoders/\(name)"), to: target.appendingPathComponent(name))
        }
        let summary = try ws.run("""
        pipeline: contrastive
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 16, min_tissue: 0.3}}
          enc: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/nic-encoder.yaml, training: contrastive, epochs: 2, batch_size: 8, validation: 0.25}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let model = try ws.output(summary, "enc", "model")
        let info = try JSONDecoder().decode(EncoderModel.Info.self, from: Data(contentsOf: model.appendingPathComponent("model.json")))
        XCTAssertEqual(info.training, "contrastive")
        XCTAssertEqual(info.codeSize, 128)
        let curves = try CSVTable.read(model.appendingPathComponent("curves.csv"))
        XCTAssertEqual(curves.rows.count, 2)
        XCTAssertTrue(curves.column("val_accuracy")!.allSatisfy { (0...1).contains(Double($0)!) })
        let encoder = try EncoderModel(folder: model)  // loads back for compression
        // Keras counts 595,968 for this encoder: the 594,944 trainable ones plus 1,024 batch-norm running statistics.
        XCTAssertEqual(encoder.network.parameterCount, 594_944)
    }

    func testBiGANEncoderTrains() throws {
        let ws = try CohortWorkspace(patients: 2, size: 512, annotations: 4)
        for name in ["encoders/nic-encoder.yaml", "bigan/generator.yaml", "bigan/discriminator.yaml"] {
            let target = ws.root.appendingPathComponent("nodes/\(name)")
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: NICPipelineTests.repo.appendingPathComponent("nodes/\(name)"), to: target)
        }
        let summary = try ws.run("""
        pipeline: bigan
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 8}}
          enc: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/nic-encoder.yaml, training: bigan, epochs: 2, batch_size: 8, learning_rate: 2.0e-4}}
          twice: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/nic-encoder.yaml, training: bigan, epochs: 2, batch_size: 8, learning_rate: 2.0e-4, generator_steps: 2}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let model = try ws.output(summary, "enc", "model")
        let curves = try CSVTable.read(model.appendingPathComponent("curves.csv"))
        XCTAssertEqual(curves.rows.count, 2)
        XCTAssertTrue(curves.rows.allSatisfy { Double($0[1])!.isFinite && Double($0[2])!.isFinite })
        // The report can show whether one side won: the discriminator's hit rate on each side.
        for column in ["d_loss", "ge_loss", "d_real_accuracy", "d_fake_accuracy"] {
            XCTAssertTrue(curves.column(column)?.allSatisfy { (0...100).contains(Double($0) ?? -1) } ?? false, column)
        }
        let encoder = try EncoderModel(folder: model)
        XCTAssertEqual(encoder.info.training, "bigan")
        for name in ["encoder", "generator", "discriminator"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: model.appendingPathComponent("\(name).safetensors").path), name)
        }
        // Two (G, E) updates per D update: the same start, a different encoder, a finite one.
        let twice = try EncoderModel(folder: try ws.output(summary, "twice", "model"))
        let a = encoder.network.parameters.flatMap(\.value.data), b = twice.network.parameters.flatMap(\.value.data)
        XCTAssertEqual(a.count, b.count)
        XCTAssertNotEqual(a, b)
        XCTAssertTrue(b.allSatisfy(\.isFinite))
    }
}
