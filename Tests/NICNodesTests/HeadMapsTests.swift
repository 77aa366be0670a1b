import Flow
import Foundation
import Neural
import NICNodes
import XCTest

/// `head_maps` (an encoder's task heads on every grid cell) and `grid_readout` (a patient score from
/// named channels, nothing learned), checked against the heads' weights applied by hand.
final class HeadMapsTests: XCTestCase {
    static func pipeline(extra: String = "") -> String {
        """
        pipeline: maps
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
          annotations: {kind: table, path: cohort/patches.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort, annotations: annotations}, params: {mode: training, per_task: 8, seed: 1}}
          enc: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/tiny.yaml, epochs: 1, batch_size: 8, validation: 0.5, tasks: {tissue: classification, mitosis: binary, nuclei: regression}}}
          grids: {type: compressor, in: {slides: cohort, encoder: enc}, params: {min_tissue: 0.3, previews: 0}}
          maps: {type: head_maps, in: {encoder: enc, grids: grids}}
          readout: {type: grid_readout, in: {grids: maps}, params: {value: mitosis, weight: "tissue:tumour", target: [score]}}
          plain: {type: grid_readout, in: {grids: maps}, params: {value: nuclei, target: [time, event], task: survival}}
        \(extra)
        """
    }

    /// Each cell's channels are softmax(W·code + b) per class of the tissue task, sigmoid for the binary
    /// mitosis task and the regression head's output mapped back to the label's units, with W, b read from
    /// heads.safetensors (PyTorch layout: weight [out, in]); the mask is the grids' mask.
    func testHeadMapsAreTheEncodersHeadsOnEachCell() throws {
        let ws = try CohortWorkspace(patients: 2, size: 768, annotations: 6)
        try ws.writeTinyEncoder()
        let summary = try ws.run(Self.pipeline(), jobs: 1)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let modelFolder = try ws.output(summary, "enc", "model")
        let info = try EncoderModel(folder: modelFolder).info
        let tensors = try Safetensors.read(modelFolder.appendingPathComponent("heads.safetensors"))
        func dense(_ task: String) throws -> (w: [Float], b: [Float], out: Int) {
            let weight = try XCTUnwrap(tensors.first { $0.key.hasPrefix("heads.\(task).") && $0.key.hasSuffix("weight") }?.value)
            let bias = try XCTUnwrap(tensors.first { $0.key.hasPrefix("heads.\(task).") && $0.key.hasSuffix("bias") }?.value)
            return (weight.floats, bias.floats, bias.floats.count)
        }
        let grids = try GridSet(folder: try ws.output(summary, "grids", "grids"))
        let maps = try GridSet(folder: try ws.output(summary, "maps", "maps"))
        // Channels in the model's task order (model.json), a classification task's classes in its order.
        var expectedChannels: [String] = []
        for task in info.tasks { expectedChannels += task.kind == "classification" ? (task.classes ?? []).map { "\(task.name):\($0)" } : [task.name] }
        XCTAssertEqual(maps.info.channels, expectedChannels)
        XCTAssertEqual(Set(expectedChannels), ["tissue:stroma", "tissue:tumour", "mitosis", "nuclei"])
        XCTAssertEqual(Set(info.tasks.map(\.kind)), ["classification", "binary", "regression"])
        let c = grids.info.codeSize, k = maps.info.codeSize
        let heads = try info.tasks.map { try dense($0.name) }
        var compared = 0
        for slide in grids.info.slides {
            let (codes, mask, _, _) = try grids.load(slide.stem)
            let (values, mapMask, _, _) = try maps.load(slide.stem)
            XCTAssertEqual(mapMask, mask, slide.stem)
            for cell in mask.indices where mask[cell] {
                let code = (0..<c).map { Double(codes[cell * c + $0]) }
                var expected: [Double] = []
                for (task, head) in zip(info.tasks, heads) {
                    let logits = (0..<head.out).map { o in (0..<c).reduce(Double(head.b[o])) { $0 + Double(head.w[o * c + $1]) * code[$1] } }
                    switch task.kind {
                    case "classification":
                        let top = logits.max()!, total = logits.reduce(0) { $0 + exp($1 - top) }
                        expected += logits.map { exp($0 - top) / total }
                    case "binary": expected.append(1 / (1 + exp(-logits[0])))
                    default: expected.append(logits[0] * (task.std ?? 1) + (task.mean ?? 0))
                    }
                }
                XCTAssertEqual(expected.count, k)
                for j in 0..<k {
                    XCTAssertEqual(Double(values[cell * k + j]), expected[j], accuracy: 2e-3 * max(1, abs(expected[j])), "\(slide.stem) cell \(cell) \(expectedChannels[j])")
                }
                compared += 1
            }
        }
        XCTAssertGreaterThan(compared, 10)
    }

    /// The readout of a patient is Σ weight·value / Σ weight over the tissue cells of all its slides (or
    /// the plain mean without a weight), in fold 0, with the patient's label beside it.
    func testReadoutIsTheWeightedMeanOverEachPatientsCells() throws {
        let ws = try CohortWorkspace(patients: 3, size: 768, annotations: 6)
        try ws.writeTinyEncoder()
        let summary = try ws.run(Self.pipeline(), jobs: 1)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let maps = try GridSet(folder: try ws.output(summary, "maps", "maps"))
        let value = try maps.channel("mitosis", param: "value"), weight = try maps.channel("tissue:tumour", param: "weight")
        let nuclei = try maps.channel("nuclei", param: "value")
        var expected: [String: (Double, Double)] = [:], plain: [String: (Double, Double)] = [:]
        for slide in maps.slideSet.slides {
            let patient = try XCTUnwrap(slide.labels["patient"])
            let (values, mask, _, _) = try maps.load(slide.stem)
            for cell in mask.indices where mask[cell] {
                let k = maps.info.codeSize
                let w = Double(values[cell * k + weight])
                expected[patient, default: (0, 0)].0 += w * Double(values[cell * k + value])
                expected[patient, default: (0, 0)].1 += w
                plain[patient, default: (0, 0)].0 += Double(values[cell * k + nuclei])
                plain[patient, default: (0, 0)].1 += 1
            }
        }
        for (node, truth) in [("readout", expected), ("plain", plain)] {
            let predictions = try Predictions.read(from: try ws.output(summary, node, "predictions"))
            XCTAssertEqual(Set(predictions.patients), Set(truth.keys), node)
            XCTAssertEqual(Set(predictions.folds), [0], node)
            for (i, patient) in predictions.patients.enumerated() {
                let (numerator, denominator) = truth[patient]!
                XCTAssertEqual(predictions.scores[i][0], numerator / denominator, accuracy: 1e-9 * max(1, abs(numerator / denominator)), "\(node) \(patient)")
            }
            XCTAssertEqual(predictions.task, node == "readout" ? .regression : .survival)
        }
        let labels = try CSVTable.read(ws.root.appendingPathComponent("cohort/labels.csv"))
        let scoreColumn = try XCTUnwrap(labels.columnIndex("score")), patientColumn = try XCTUnwrap(labels.columnIndex("patient"))
        let readout = try Predictions.read(from: try ws.output(summary, "readout", "predictions"))
        for row in labels.rows {
            let i = try XCTUnwrap(readout.patients.firstIndex(of: row[patientColumn]))
            XCTAssertEqual(Double(readout.labels[i]), Double(row[scoreColumn]))
        }
    }

    /// `grid_filter` keeps the cells whose tumour probability is at least the threshold: the codes are the
    /// grids' own, the mask is the grids' mask and the threshold, and the counts in gridset.json follow.
    func testGridFilterKeepsTheCellsAtOrAboveTheThreshold() throws {
        let ws = try CohortWorkspace(patients: 2, size: 768, annotations: 6)
        try ws.writeTinyEncoder()
        let summary = try ws.run(Self.pipeline(extra: """
          tumour: {type: grid_filter, in: {grids: grids, by: maps}, params: {channel: "tissue:tumour", at_least: 0.5}}
        """), jobs: 1)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let grids = try GridSet(folder: try ws.output(summary, "grids", "grids"))
        let maps = try GridSet(folder: try ws.output(summary, "maps", "maps"))
        let filtered = try GridSet(folder: try ws.output(summary, "tumour", "grids"))
        let tumour = try maps.channel("tissue:tumour", param: "channel")
        var kept = 0, dropped = 0
        for (slide, info) in zip(grids.info.slides, filtered.info.slides) {
            let (codes, mask, _, _) = try grids.load(slide.stem)
            let (values, _, _, _) = try maps.load(slide.stem)
            let (filteredCodes, filteredMask, _, _) = try filtered.load(slide.stem)
            XCTAssertEqual(filteredCodes, codes, slide.stem)
            for cell in mask.indices {
                let expected = mask[cell] && values[cell * maps.info.codeSize + tumour] >= 0.5
                XCTAssertEqual(filteredMask[cell], expected, "\(slide.stem) cell \(cell)")
                if mask[cell] { if expected { kept += 1 } else { dropped += 1 } }
            }
            XCTAssertEqual(info.tissueCells, filteredMask.filter { $0 }.count)
        }
        XCTAssertGreaterThan(kept, 0)
        XCTAssertGreaterThan(dropped, 0)
    }

    /// Grids of another encoder are refused with both keys named (unless allowed); a channel that does
    /// not exist is an error listing the channels; weight and per together are refused.
    func testMismatchesAreLocatedErrors() throws {
        let ws = try CohortWorkspace(patients: 2, size: 512, annotations: 6)
        try ws.writeTinyEncoder()
        let summary = try ws.run(Self.pipeline(extra: """
          other: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/tiny.yaml, epochs: 1, batch_size: 8, validation: 0.5, seed: 99, tasks: {tissue: classification, mitosis: binary, nuclei: regression}}}
          crossed: {type: head_maps, in: {encoder: other, grids: grids}}
          crossed_allowed: {type: head_maps, in: {encoder: other, grids: grids}, params: {allow_other_encoder: true}}
          missing: {type: grid_readout, in: {grids: maps}, params: {value: mitoses, target: [score]}}
          both: {type: grid_readout, in: {grids: maps}, params: {value: mitosis, weight: nuclei, per: nuclei, target: [score]}}
        """), jobs: 1)
        let failures = Dictionary(uniqueKeysWithValues: summary.failures.map { ($0.node, $0.message) })
        XCTAssertTrue(failures["crossed"]?.contains("compressed with encoder") ?? false, "\(failures)")
        XCTAssertNil(failures["crossed_allowed"])
        XCTAssertTrue(failures["missing"]?.contains("no channel 'mitoses'") ?? false, "\(failures)")
        XCTAssertTrue(failures["missing"]?.contains("mitosis") ?? false, "\(failures)")
        XCTAssertTrue(failures["both"]?.contains("'weight' and 'per'") ?? false, "\(failures)")
        XCTAssertNotNil(summary.entries["readout"])
    }
}
