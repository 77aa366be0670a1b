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
    static let pinned: [String: String] = [
        "annotations": "511f00da43389ceb84c6643ef061d5ab37dd2385ee83fcb6800346de5c5ef633",
        "augmented": "aa5b2a8cd6d8c63c8cca4374aa046a166f3ed12eee1aeab4b3fa99727ffeb125",
        "cohort": "7150b38a2343827c5beda681efa4907039692382cf67b813f7b400073a7cbe90",
        "eval_grade_rgb": "39b017dcc9bbf727bacf4a151c08fc5a875388561fa1902008a1b79eeee6e772",
        "eval_score_mtl": "271db592c88dd2f41227dd40d9d524d13fa32b65c0539cd71d6fe1203f9d42b7",
        "eval_survival_mtl": "11267c03a063840e8abb2fab82a5f94c34bbbccf79c48eaf3fb5c568c213f818",
        "grade_rgb": "1f86737f619f5c96e5f28d2c8f21f00cc877f641813f825d8823334b0ebbecab",
        "grids_mtl": "4da90f93590d8173619396db6ba072d89405549c3add6334acd14a42f353b572",
        "grids_rgb": "50d6e7c85d50024adfccde8f161dbc7603801bc6be661579cce37f5ef3f7740c",
        "mean_rgb": "7a73ef84a33c2c8b7faffae74ea60e27226ac496deb14b483f3fb356e88ddcd4",
        "mtl": "d0d9e9db58518ac54a060cec35591a02b863916a7411e48a8ff95598f8e64dfb",
        "score_mtl": "47d02753191638acfd7792b79d1d85024d614de788e00a9cf9ae385c7ced04c9",
        "survival_mtl": "b5e63781d15381fe8e3c12154324dee9054b742635ddc42db20f42db6f5fcaaf",
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
