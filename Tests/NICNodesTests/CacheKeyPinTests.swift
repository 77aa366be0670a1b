import Flow
import Foundation
import NICNodes
import XCTest

/// Cache keys are a promise to every existing cache: a refactor that keeps a node's meaning (typed
/// params, moved code, a new key builder) must keep its key, or every user's cache silently reruns.
/// The keys below were taken from the code as it stood; change them only with a version bump or a
/// deliberate change of what a node computes, and say so in the commit.
final class CacheKeyPinTests: XCTestCase {
    /// The pipeline of `pipelines/demo.yaml`, on small files written here, so the keys depend on
    /// nothing outside this test.
    static let pipeline = """
    pipeline: demo
    inputs:
      cohort:      {kind: slides, dir: data/demo/slides, pattern: "*.tif", labels: data/demo/labels.csv}
      annotations: {kind: table, path: data/demo/patches.csv}
    nodes:
      tiles:
        type: tile_sampler
        in: {slides: cohort, annotations: annotations}
        params: {mode: training, mpp: 0.5, size: 128, per_task: 600, seed: 1}
      augmented:
        type: augmenter
        in: {patches: tiles}
        params: {recipe: nodes/augment/heavy.yaml, seed: 2}
      mtl:
        type: encoder
        in: {patches: augmented}
        params:
          architecture: nodes/encoders/nic-encoder.yaml
          tasks: {tissue: classification, mitosis: binary, nuclei: regression}
          epochs: 6
          seed: 3
      mean_rgb:
        type: encoder
        in: {patches: tiles}
        params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}
      grids_mtl: {type: compressor, in: {slides: cohort, encoder: mtl}, params: {mpp: 0.5}}
      grids_rgb: {type: compressor, in: {slides: cohort, encoder: mean_rgb}, params: {mpp: 0.5, orientations: "8"}}
      score_mtl:
        type: patient_model
        in: {grids: grids_mtl}
        params: {architecture: nodes/patient/small.yaml, head: nodes/heads/regression.yaml, target: [score], epochs: 20, seed: 4}
      grade_rgb:
        type: patient_model
        in: {grids: grids_rgb}
        params: {architecture: nodes/patient/small.yaml, head: nodes/heads/binary.yaml, target: [high_grade], folds: 3}
      survival_mtl:
        type: patient_model
        in: {grids: grids_mtl}
        params: {architecture: nodes/patient/small.yaml, head: nodes/heads/cox.yaml, target: [time, event], epochs: 20, seed: 4}
      eval_score_mtl:    {type: evaluator, in: {predictions: score_mtl}, params: {bootstrap: 2000}}
      eval_grade_rgb:    {type: evaluator, in: {predictions: grade_rgb}, params: {metrics: [auc], bootstrap: 500, seed: 7}}
      eval_survival_mtl: {type: evaluator, in: {predictions: survival_mtl}, params: {bootstrap: 2000}}
    """

    /// Every file the pipeline reads, with fixed content. Slides are opaque bytes: planning hashes
    /// them and never opens them.
    static let files: [String: String] = [
        "data/demo/slides/p001-a.tif": "II*\u{0}slide one",
        "data/demo/slides/p002-a.tif": "II*\u{0}slide two",
        "data/demo/slides/notes.txt": "not matched by the pattern, still part of the folder's hash",
        "data/demo/labels.csv": "slide,patient,score,high_grade,time,event\np001-a,p001,1.5,1,12.0,1\np002-a,p002,-0.25,0,30.5,0\n",
        "data/demo/patches.csv": "slide,x,y,task,label\np001-a,100,200,tissue,tumour\np002-a,300,400,mitosis,1\np002-a,50,60,nuclei,17.5\n",
        "nodes/augment/heavy.yaml": """
        # comments never reach the key
        name: heavy
        ops:
          - {op: dihedral, p: 1.0}
          - {op: hed, p: 1.0, range: [0.0, 0.2]}
          - {op: elastic, p: 0.2, range: [1.0, 4.0], sigma: 8}
        """,
        "nodes/encoders/nic-encoder.yaml": """
        name: nic-encoder
        input: [64, 64, 3]
        layers:
          - conv: {filters: 8, kernel: 3, stride: 2, padding: valid}
          - leaky_relu: 0.2
          - batchnorm: {momentum: 0.1, eps: 0.001}
          - flatten
          - dense: 16
        """,
        "nodes/encoders/mean-rgb.yaml": "name: mean-rgb\ninput: [64, 64, 3]\nlayers:\n  - global_avg_pool\n",
        "nodes/encoders/contrastive-head.yaml": """
        name: contrastive-head
        inputs: {a: [16], b: [16]}
        blocks:
          - name: joint
            from: [a, b]
            layers: [{dense: 8}, {leaky_relu: 0.2}, {dense: 1}]
        loss: binary_cross_entropy
        """,
        "nodes/bigan/generator.yaml": "name: generator\ninput: [16]\nlayers:\n  - dense: 12\n",
        "nodes/bigan/discriminator.yaml": "name: discriminator\ninput: [64, 64, 3]\nlayers:\n  - flatten\n  - dense: 1\n",
        "nodes/vae/decoder.yaml": "name: decoder\ninput: [16]\nlayers:\n  - dense: 12\n",
        "nodes/heads/regression.yaml": "name: regression\nlayers:\n  - dense: 1\nloss: mse\n",
        "nodes/heads/binary.yaml": "name: binary\nlayers:\n  - dense: 1\nloss: binary_cross_entropy\n",
        "nodes/heads/cox.yaml": "name: cox\nlayers:\n  - dense: 1\nloss: {type: cox, ties: efron}\n",
        "nodes/patient/small.yaml": """
        name: small
        input: [16, 16, 16]
        layers:
          - separable_conv: {filters: 8, kernel: 3, stride: 2, padding: valid, l2: 1.0e-5}
          - batchnorm: {momentum: 0.1}
          - leaky_relu: 0.2
          - flatten
          - dense: {units: 8, l2: 1.0e-5}
        """,
    ]

    /// Re-pinned on purpose for issue 11: the encoder node's version 2 (early stopping, derived
    /// downsample, per-task AUC/R², BiGAN label smoothing) and the patient model's crops_per_slide
    /// move the keys of the encoders, the patient models and everything downstream; the tile
    /// sampler, augmenter and sources kept theirs. Re-pinned for issue 12: the patient model's new
    /// params (`aggregation`, `bag_cells`) and version 2 (bag models) move the keys of the patient
    /// models and their evaluators; the CNN's results are unchanged. The tile sampler's `jitter` param
    /// (default 0: the same patches) moves the tiles' key and everything downstream; the encoder's
    /// `generator_steps` (BiGAN D/G ratio, default 1: the same training) the encoders' and downstream.
    /// Re-pinned for issue 16: the encoder node's version 3 (training reads through the streaming
    /// loader: chunk-order shuffle plus a `shuffle_buffer`, so trained weights change) moves the keys
    /// of both encoders (one node type, one version) and everything downstream.
    static let pinned: [String: String] = [
        "annotations": "511f00da43389ceb84c6643ef061d5ab37dd2385ee83fcb6800346de5c5ef633",
        "augmented": "aa5b2a8cd6d8c63c8cca4374aa046a166f3ed12eee1aeab4b3fa99727ffeb125",
        "cohort": "7150b38a2343827c5beda681efa4907039692382cf67b813f7b400073a7cbe90",
        "eval_grade_rgb": "9891db5d5b494cd57ff98e1154c1496c256244dd33695da240ff9a17f0fec0e1",
        "eval_score_mtl": "9516e3c5d12e57bec6e0626d3c61e86ca87a9d954ba823bb176dd4de83eb9d1a",
        "eval_survival_mtl": "aec5b4bd19b5dc1c518740cd2de976a456301d4601d8d0d871dc0332530b102c",
        "grade_rgb": "c8ace6c2af68c55c329040094bb8f15eb338a5a122016532fa2dce87267154b3",
        "grids_mtl": "b27d95d2fc25f71f2b8f89b7e834e2be90abc4a5472011f70df8e3fcbca4e825",
        "grids_rgb": "88a5bc6945e3e33fc26c8c51accbd1c03200beac07836d1192971d3adbb14863",
        "mean_rgb": "e7ddac371d82e1c0db2663aa547c7a0cc6e624eac8b4be4e094d1cfc35d93781",
        "mtl": "c920c53fed258466eaca2c0d5f4d8fb0ebe03529d4643ac7141bb2cd5f41aea1",
        "score_mtl": "95b3639b0ed341a27bf2338af7773bc2783a182e3fe580ac100787ec1177810a",
        "survival_mtl": "2e271a300429478ff201fe1d8602fa1eb590f034afc36de148ece4bfdac483a1",
        "tiles": "af13d8eff5626b69b1b8bf16957f577a166a48ad40f6c3a5c4e8969910ba98d4",
    ]

    func testDemoPipelineKeysArePinned() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("nic-keys-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: root) }
        for (relative, text) in Self.files {
            let url = root.appendingPathComponent(relative)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        let specURL = root.appendingPathComponent("pipeline.yaml")
        try Data(Self.pipeline.utf8).write(to: specURL)
        let graph = try PipelineGraph.build(try SpecParser.parse(file: specURL, displayPath: "pipeline.yaml"),
                                            registry: PathologyNodes.registry)
        let plan = try Planner.plan(graph, cache: try Cache(root: root.appendingPathComponent(".nic/cache")))
        let keys = Dictionary(uniqueKeysWithValues: plan.nodes.map { ($0.name, $0.key) })
        // Printed in source form, so a deliberate change is re-pinned by pasting.
        let listing = keys.sorted { $0.key < $1.key }.map { "        \"\($0.key)\": \"\($0.value)\"," }.joined(separator: "\n")
        XCTAssertEqual(keys, Self.pinned, "cache keys changed; now:\n\(listing)")
    }
}
