import Flow
import Foundation
import Neural
import NICNodes
import XCTest

/// A node computes from the content its cache entry is keyed on: a referenced definition is read once,
/// when the pipeline is checked, and the node never opens the path again. Editing the file between
/// planning and running cannot give an entry keyed on one content and computed from another.
final class KeyedContentTests: XCTestCase {
    /// Checks and plans the pipeline file as `nic run` does before anything runs.
    func plan(_ url: URL, _ workspace: CohortWorkspace) throws -> Plan {
        try Planner.plan(try PipelineGraph.build(try SpecParser.parse(file: url, displayPath: "pipeline.yaml"), registry: PathologyNodes.registry), cache: workspace.cache)
    }

    func testEncoderBuildsTheArchitectureItWasKeyedOnEvenIfTheFileChangesBeforeItRuns() throws {
        let workspace = try CohortWorkspace(patients: 2)
        let original = try String(contentsOf: NICPipelineTests.repo.appendingPathComponent("nodes/encoders/mean-rgb.yaml"), encoding: .utf8)
        try workspace.write("nodes/encoders/mean-rgb.yaml", original)
        let url = try workspace.write("pipeline.yaml", """
        pipeline: keyed
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 2}}
          rgb: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}}
        """)
        let planned = try plan(url, workspace)

        // After planning, the file becomes an encoder with weights (which `training: none` refuses)
        // and a 2-channel code: a node reading the path now would fail or compute something else.
        let edited = "name: edited\ninput: [64, 64, 3]\nlayers:\n  - conv: {filters: 2, kernel: 3}\n  - global_avg_pool\n"
        try workspace.write("nodes/encoders/mean-rgb.yaml", edited)
        let summary = Executor(plan: planned, cache: workspace.cache, jobs: 2).run()
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")

        let model = try workspace.output(summary, "rgb", "model")
        XCTAssertEqual(try String(contentsOf: model.appendingPathComponent("encoder.yaml"), encoding: .utf8), original,
                       "the model folder keeps the definition the entry was keyed on")
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: model.appendingPathComponent("model.json"))) as? [String: Any]
        XCTAssertEqual(info?["code_size"] as? Int, 3, "mean-RGB's 3-channel code, not the edited file's 2")

        // Checked again, the edited file is a different key: the cache never serves one for the other.
        let replanned = try plan(url, workspace)
        XCTAssertNotEqual(replanned.node(named: "rgb")?.key, planned.node(named: "rgb")?.key)
        XCTAssertEqual(replanned.node(named: "tiles")?.key, planned.node(named: "tiles")?.key)
    }

    /// Heads named in an encoder's `tasks:` come from `heads_dir`, a folder keyed by its files' content:
    /// the node gets those files' text as read at planning, so an edited head after planning changes
    /// neither what this run trains nor the entry it is cached under.
    func testEncoderTrainsTheHeadsItWasKeyedOnEvenIfTheFolderChangesBeforeItRuns() throws {
        let workspace = try CohortWorkspace(patients: 2, size: 768, annotations: 6)
        try workspace.writeTinyEncoder()
        let originalHead = try String(contentsOf: workspace.root.appendingPathComponent("nodes/heads/classification.yaml"), encoding: .utf8)
        let url = try workspace.write("pipeline.yaml", """
        pipeline: keyed-heads
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
          annotations: {kind: table, path: cohort/patches.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort, annotations: annotations}, params: {mode: training, per_task: 12, seed: 1}}
          mtl: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/tiny.yaml, tasks: {tissue: classification}, epochs: 1, batch_size: 8, validation: 0.5, seed: 3}}
        """)
        let planned = try plan(url, workspace)
        // The folder's key is the same hash a plain folder param would give: keys of existing encoders stay.
        XCTAssertEqual(DefinitionFolder.hash(of: try Dictionary(uniqueKeysWithValues: FileHasher.listFiles(under: workspace.root.appendingPathComponent("nodes/heads")).map {
            ($0, try String(contentsOf: workspace.root.appendingPathComponent("nodes/heads/\($0)"), encoding: .utf8))
        })), try FileHasher(stateFile: nil).hash(directoryAt: workspace.root.appendingPathComponent("nodes/heads")))

        // After planning the head gains a hidden layer: a node reading the folder now would train it.
        let edited = "name: classification\nlayers:\n  - dense: 5\n  - relu\n  - dense: 9\nloss: {type: softmax_cross_entropy}\n"
        try workspace.write("nodes/heads/classification.yaml", edited)
        let summary = Executor(plan: planned, cache: workspace.cache, jobs: 1).run()
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let model = try workspace.output(summary, "mtl", "model")
        XCTAssertEqual(try String(contentsOf: model.appendingPathComponent("heads/tissue.yaml"), encoding: .utf8), originalHead,
                       "the model keeps the head the entry was keyed on")
        let heads = try Safetensors.read(model.appendingPathComponent("heads.safetensors"))
        XCTAssertEqual(heads.keys.filter { $0.hasPrefix("heads.tissue.") && $0.hasSuffix(".weight") }.count, 1,
                       "one dense layer, as keyed, not the edited two: \(heads.keys.sorted())")

        let replanned = try plan(url, workspace)
        XCTAssertNotEqual(replanned.node(named: "mtl")?.key, planned.node(named: "mtl")?.key, "the edited folder is another key")
        XCTAssertEqual(replanned.node(named: "tiles")?.key, planned.node(named: "tiles")?.key)
    }
}
