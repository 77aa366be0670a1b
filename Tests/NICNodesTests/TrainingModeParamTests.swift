import Flow
import Foundation
import NICNodes
import XCTest

/// The encoder's shared params (epochs, learning rate, …) that a training mode ignores are refused
/// at `nic validate` when written for a node of that mode, located at the key and saying why.
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

    func testParamTheBiGANIgnoresIsRefusedAtItsKeySayingWhy() throws {
        let found = try errors(encoder(training: "bigan", extra: "weight_decay: 0.01"))
        XCTAssertTrue(found.contains("pipeline.yaml:8:7: node 'enc': param 'weight_decay' is read only with training 'supervised', 'vae', 'contrastive', "
                                     + "but this node's training is 'bigan', which ignores it: its Adam optimisers (β₁ 0.5, as the paper's) take no weight decay"), "\(found)")
        let none = try errors(encoder(training: "none", extra: "epochs: 3"))
        XCTAssertTrue(none.contains { $0.hasPrefix("pipeline.yaml:8:7: node 'enc': param 'epochs' is read only with training 'supervised', 'bigan', 'vae', 'contrastive', "
                                                   + "but this node's training is 'none', which ignores it: it trains nothing") }, "\(none)")
    }

    /// What each mode reads, as read from the mode files: `none` trains nothing (it keeps only the
    /// downsample it packages); the BiGAN's Adam has no weight decay, and it has no plateau and no
    /// held-out patches. Every other pair is read, so it is taken.
    func testEachModeRefusesExactlyTheSharedParamsItIgnores() throws {
        let shared = ["epochs: 3", "early_stopping: 2", "batch_size: 8", "learning_rate: 0.01", "weight_decay: 0.01", "validation: 0.1",
                      "patience: 3", "min_learning_rate: 0.0001", "downsample: 2", "seed: 5", "shuffle_buffer: 64"]
        let ignored: [String: (params: Set<String>, why: String)] = [
            "none": (Set(shared.map { String($0.prefix { $0 != ":" }) }).subtracting(["downsample"]), "which ignores it: it trains nothing"),
            "bigan": (["weight_decay", "validation", "patience", "min_learning_rate"], "which ignores it: it"),
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
}
