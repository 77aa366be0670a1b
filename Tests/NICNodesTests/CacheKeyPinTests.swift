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
    /// params (`aggregation`, `bag_cells`; their defaults keep the CNN's behaviour) move the keys of
    /// the patient models and their evaluators.
    static let pinned: [String: String] = [
        "annotations": "511f00da43389ceb84c6643ef061d5ab37dd2385ee83fcb6800346de5c5ef633",
        "augmented": "39a6e69b546bd6a7efe8ddc2e5a13b38af77ef53d24ca4e2148db43d248813a3",
        "cohort": "7150b38a2343827c5beda681efa4907039692382cf67b813f7b400073a7cbe90",
        "eval_grade_rgb": "159222a70f88683a3c75193747bce378804cb597f0a9952d3aaa8204e1faec61",
        "eval_score_mtl": "7f08093f15c7cd75ee35d695c9134a0c9721ab0c5303ef2c6a5b354f93beae9b",
        "eval_survival_mtl": "40699889a3005d151a2052db01ce9e336c0ad74b1fc2ad0ac0e2dca2fbaf7d38",
        "grade_rgb": "c097a564b818b42f1d7311158886ef56637ed790838e8ba655f449d180b70aad",
        "grids_mtl": "760b168ed57a87e87aa2cc10524e5859db332c480bc63d301f1f510fe55c4ffe",
        "grids_rgb": "870f34acd552caaac584b82b2a527e45ebceb3f29fcc02898d7f63e5e11f5bbb",
        "mean_rgb": "715f13abb23a518d290b19e41daf82dddf2e47877b3fc4a9e045b6f5f2907fbb",
        "mtl": "e7f70ce7a21a609e9e6e1674ca84d16a161a4e42b65024fb0eaf91bb77282a82",
        "score_mtl": "94c94c23efd1d1f74d33ac347f39d12a9ca923ac9fb5ac968407d4df983c8cc9",
        "survival_mtl": "bb8f63df9466440fea7c1eb6ad5712609a0e8f75965094c9bc9654e48da278c8",
        "tiles": "05918347b74031cdd8bdda7d4094afc4f25833d818d9dde7401864db048f27b9",
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
