import Flow
import Foundation
import NICNodes
import XCTest

/// The encoder's shared params (epochs, learning rate, …) that a training mode ignores are refused
/// at `nic validate` when written for a node of that mode, located at the key and saying why; a
/// `defaults:` entry applies only to the nodes whose mode reads it, and is checked where it is written.
final class TrainingModeParamTests: XCTestCase, SpecFolderTesting {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("nic-modes-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("nodes"), withIntermediateDirectories: true)
        // The key-pin test's small cohort and definitions: enough for a pipeline that plans.
        for (relative, text) in CacheKeyPinTests.files { try write(relative, text) }
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    /// A planned pipeline of one tile sampler and an encoder per mode, after `defaults`.
    func pipeline(defaults: String = "") -> String {
        """
        pipeline: p
        \(defaults)
        inputs:
          cohort: {kind: slides, dir: data/demo/slides, pattern: "*.tif", labels: data/demo/labels.csv}
          annotations: {kind: table, path: data/demo/patches.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort, annotations: annotations}, params: {mode: training, mpp: 0.5, size: 128, per_task: 600, seed: 1}}
          sup: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/nic-encoder.yaml}}
          gan: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/nic-encoder.yaml, training: bigan}}
          vae: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/nic-encoder.yaml, training: vae}}
          rgb: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}}
        """
    }

    /// One encoder of `training` with `extra` written as its own param on line 8.
    func encoder(training: String, extra: String = "") -> String {
        """
        pipeline: p
        inputs:
          annotations: {kind: table, path: data/demo/patches.csv}
        nodes:
          enc:
            params:
              training: \(training)
              \(extra)
            type: encoder
            in: {patches: annotations}
        """
    }

    func graph(_ yaml: String) throws -> PipelineGraph {
        try PipelineGraph.build(try SpecParser.parse(text: yaml, file: "pipeline.yaml", directory: folder), registry: PathologyNodes.registry)
    }

    func keys(_ yaml: String) throws -> [String: String] {
        let plan = try Planner.plan(try graph(yaml), cache: try Cache(root: folder.appendingPathComponent(".nic/cache")))
        return Dictionary(uniqueKeysWithValues: plan.nodes.map { ($0.name, $0.key) })
    }

    func testParamTheBiGANIgnoresIsRefusedAtItsKeySayingWhy() throws {
        let found = try errors(encoder(training: "bigan", extra: "weight_decay: 0.01"))
        XCTAssertTrue(found.contains("pipeline.yaml:8:7: node 'enc': param 'weight_decay' is read only with training 'supervised', 'vae', 'contrastive', "
                                     + "but this node's training is 'bigan', which ignores it: its Adam optimisers (β₁ 0.5, as the paper's) take no weight decay"), "\(found)")
        let none = try errors(encoder(training: "none", extra: "epochs: 3"))
        XCTAssertTrue(none.contains { $0.hasPrefix("pipeline.yaml:8:7: node 'enc': param 'epochs' is read only with training 'supervised', 'bigan', 'vae', 'contrastive', "
                                                   + "but this node's training is 'none', which ignores it: it trains nothing") }, "\(none)")
    }

    /// What each mode reads, as read from the mode files: `none` trains nothing (it keeps only the
    /// downsample it packages); the BiGAN's Adam has no weight decay, and it has no plateau, no
    /// held-out patches and no early stopping (it keeps its last epoch). Every other pair is read, so it is taken.
    func testEachModeRefusesExactlyTheSharedParamsItIgnores() throws {
        let shared = ["epochs: 3", "early_stopping: 2", "batch_size: 8", "learning_rate: 0.01", "weight_decay: 0.01", "validation: 0.1",
                      "patience: 3", "min_learning_rate: 0.0001", "downsample: 2", "seed: 5", "shuffle_buffer: 64"]
        let ignored: [String: (params: Set<String>, why: String)] = [
            "none": (Set(shared.map { String($0.prefix { $0 != ":" }) }).subtracting(["downsample"]), "which ignores it: it trains nothing"),
            "bigan": (["weight_decay", "validation", "patience", "min_learning_rate", "early_stopping"], "which ignores it: it"),
        ]
        for mode in ["supervised", "bigan", "vae", "contrastive", "none"] {
            XCTAssertFalse(try errors(encoder(training: mode)).contains { $0.contains("is read only with") }, "\(mode): a param not written is never refused")
            for line in shared {
                let name = String(line.prefix { $0 != ":" })
                let refusals = try errors(encoder(training: mode, extra: line)).filter { $0.contains("param '\(name)' is read only with") }
                if let expected = ignored[mode], expected.params.contains(name) {
                    XCTAssertEqual(refusals.count, 1, "\(mode) ignores \(name): \(refusals)")
                    XCTAssertTrue(refusals.allSatisfy { $0.hasPrefix("pipeline.yaml:8:7: ") && $0.contains("training is '\(mode)'") && $0.contains(expected.why) }, "\(refusals)")
                } else {
                    XCTAssertEqual(refusals, [], "\(mode) reads \(name)")
                }
            }
        }
    }

    /// A default applies where it fits: the BiGAN and mean-RGB nodes neither refuse nor take
    /// `kl_weight` or `weight_decay`, so their keys stay those of the pipeline without the defaults,
    /// and `nic expand` writes the defaults only onto the nodes that take them.
    func testDefaultAppliesOnlyToModesThatReadIt() throws {
        let withDefaults = pipeline(defaults: "defaults: {encoder: {kl_weight: 2, weight_decay: 0.01}}")
        let graph = try graph(withDefaults)
        XCTAssertEqual(graph.node(named: "vae")?.params["kl_weight"], .float(2))
        XCTAssertEqual(graph.node(named: "sup")?.params["weight_decay"], .float(0.01))
        XCTAssertEqual(graph.node(named: "gan")?.params["weight_decay"], .float(0), "the BiGAN ignores weight decay: the default does not reach it")
        XCTAssertEqual(graph.node(named: "sup")?.params["kl_weight"], .float(5e-5), "kl_weight is the VAE's: the supervised node keeps the declared default")

        let plain = try keys(pipeline()), defaulted = try keys(withDefaults)
        XCTAssertEqual(defaulted["gan"], plain["gan"])
        XCTAssertEqual(defaulted["rgb"], plain["rgb"])
        XCTAssertNotEqual(defaulted["sup"], plain["sup"])
        XCTAssertNotEqual(defaulted["vae"], plain["vae"])

        let expanded = graph.spec.expandedYAML
        let gan = try XCTUnwrap(expanded.components(separatedBy: "\n  ").first { $0.hasPrefix("gan:") })
        XCTAssertFalse(gan.contains("weight_decay") || gan.contains("kl_weight"), gan)
        XCTAssertEqual(try keys(expanded), defaulted, expanded)
    }

    /// A wrong default is an error where it is written, once, whether or not a node's mode reads it.
    func testWrongDefaultIsLocatedOnce() throws {
        let range = try errors(pipeline(defaults: "defaults: {encoder: {kl_weight: -1}}"))
        XCTAssertEqual(range, ["pipeline.yaml:2:33: defaults for 'encoder': param 'kl_weight' must be ≥ 0, found -1.0"])
        let type = try errors(pipeline(defaults: "defaults: {encoder: {weight_decay: high}}"))
        XCTAssertEqual(type, ["pipeline.yaml:2:36: defaults for 'encoder': param 'weight_decay' expects float, found a string (\"high\")"])
        // No node of the pipeline is a VAE: the default fits nowhere and is still checked.
        let nowhere = try errors(pipeline(defaults: "defaults: {encoder: {kl_weight: -1}}").replacingOccurrences(of: "training: vae", with: "training: bigan"))
        XCTAssertEqual(nowhere, ["pipeline.yaml:2:33: defaults for 'encoder': param 'kl_weight' must be ≥ 0, found -1.0"])
    }
}
