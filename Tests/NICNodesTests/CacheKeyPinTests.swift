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
        "nodes/heads/classification.yaml": "name: classification\nlayers:\n  - dense: 9\nloss: {type: softmax_cross_entropy}\n",
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
    /// Re-pinned for issue 21: patient_model's version 3 and probe's version 2 (the `model` output —
    /// the kept fold models —, and the CNN's test crops drawn per patient) move the patient models'
    /// keys and their evaluators'; tiles, encoders and grids keep theirs (the compressor's new `stain`
    /// params stay out of the key at their default). Re-pinned for issue 16: the encoder node's version 3 (training reads through the streaming
    /// loader: chunk-order shuffle plus a `shuffle_buffer`, so trained weights change) moves the keys
    /// of both encoders (one node type, one version) and everything downstream. Re-pinned for issue 11:
    /// the tile sampler's version 2 (`jitter` leaves a binary task's negatives in place) moves the
    /// tiles' key and everything downstream; the sources kept theirs. Re-pinned for issue 23: the
    /// fixture gains nodes/heads/classification.yaml, which its `tissue: classification` task always
    /// named (`nic validate` now refuses a head missing from heads_dir); the folder is in every
    /// encoder's key, so both encoders and everything downstream move. With the fixture unchanged the
    /// keys were equal after heads_dir became a keyed definitions folder (checked before adding the file).
    static let pinned: [String: String] = [
        "annotations": "511f00da43389ceb84c6643ef061d5ab37dd2385ee83fcb6800346de5c5ef633",
        "augmented": "cd821c1d0b140b92c67be0b886c37d3b6cf130253ab87adf639c89d921ac3dda",
        "cohort": "7150b38a2343827c5beda681efa4907039692382cf67b813f7b400073a7cbe90",
        "eval_grade_rgb": "e5ac803ffbbbcc6a8d1134d10bb881b1e504f2fd696c80e99670be961a650e50",
        "eval_score_mtl": "3a2d1fe0ca72ee1a9aa9850c8d6038a39a2deea522f7e77b422384815d0114fd",
        "eval_survival_mtl": "80028163a2add66c0ed5c3144e6a1d14d7c0a99394a47a04afaad7501d72df5b",
        "grade_rgb": "655f975a2373fd909685c7fc0e8d3da82269df199ce2155e4d67fd7db0945f12",
        "grids_mtl": "c989a5905292c36c24a26db9bbc5cf4bdf9bdb29754e9a7033693029f1365f09",
        "grids_rgb": "496da798bfc6207b06c6397f79bf012f6720f50b9d5920640dc36108efb5d09f",
        "mean_rgb": "a7f8b2744ab1e38d3f373c8ec643c113e022db7fe97693aef47663cb5d47599b",
        "mtl": "3e4ac2cf29521516c7f7d359965ae3995c3f9b591b3ca4dfd9dbfdf8f50890a3",
        "score_mtl": "a11a0cc69f907d849acb08ca4a89be0963cc7ba22624f749f5659a8f3a8bd376",
        "survival_mtl": "1bc5c5ca2f84c1977bdf257a3f25f72cd2a9ea8e18bb5f23d81528901d862630",
        "tiles": "12cf687255af11f6b264e8d98901e9f08ddd2b8cf8d4d4f69902ee629e45e824",
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
