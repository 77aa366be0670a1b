import Flow
import Foundation
import NICNodes
import XCTest

/// A node computes from the content its cache entry is keyed on: a referenced definition is read once,
/// when the pipeline is checked, and the node never opens the path again. Editing the file between
/// planning and running cannot give an entry keyed on one content and computed from another.
final class KeyedContentTests: XCTestCase {
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
        let graph = try PipelineGraph.build(try SpecParser.parse(file: url, displayPath: "pipeline.yaml"), registry: PathologyNodes.registry)
        let plan = try Planner.plan(graph, cache: workspace.cache)

        // After planning, the file becomes an encoder with weights (which `training: none` refuses)
        // and a 2-channel code: a node reading the path now would fail or compute something else.
        let edited = "name: edited\ninput: [64, 64, 3]\nlayers:\n  - conv: {filters: 2, kernel: 3}\n  - global_avg_pool\n"
        try workspace.write("nodes/encoders/mean-rgb.yaml", edited)
        let summary = Executor(plan: plan, cache: workspace.cache, jobs: 2).run()
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")

        let model = try workspace.output(summary, "rgb", "model")
        XCTAssertEqual(try String(contentsOf: model.appendingPathComponent("encoder.yaml"), encoding: .utf8), original,
                       "the model folder keeps the definition the entry was keyed on")
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: model.appendingPathComponent("model.json"))) as? [String: Any]
        XCTAssertEqual(info?["code_size"] as? Int, 3, "mean-RGB's 3-channel code, not the edited file's 2")

        // Checked again, the edited file is a different key: the cache never serves one for the other.
        let replanned = try Planner.plan(try PipelineGraph.build(try SpecParser.parse(file: url, displayPath: "pipeline.yaml"), registry: PathologyNodes.registry),
                                         cache: workspace.cache)
        XCTAssertNotEqual(replanned.node(named: "rgb")?.key, plan.node(named: "rgb")?.key)
        XCTAssertEqual(replanned.node(named: "tiles")?.key, plan.node(named: "tiles")?.key)
    }
}
