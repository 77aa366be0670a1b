import Flow
import Foundation
import NICBasics
import NICNodes
import XCTest

/// The engine shares the cores among the nodes running at a time and holds each to its share: two
/// training nodes running at once stay within their budgets (measured by their compute contexts) and
/// compute exactly what they compute alone, whatever threads they had.
final class ComputeBudgetTests: XCTestCase {
    func pipeline(models seeds: [Int]) -> String {
        var yaml = CohortWorkspace.meanRGBGrids(pipeline: "budgets")
        for seed in seeds {
            yaml += """
              model\(seed):
                type: patient_model
                in: {grids: grids}
                params: {architecture: nodes/patient/small.yaml, head: nodes/heads/regression.yaml, target: [score], folds: 2, epochs: 3, batch_size: 8, test_crops: 4, seed: \(seed)}

            """
        }
        return yaml
    }

    func testCoresAreSharedAmongRunningNodes() {
        XCTAssertEqual(ComputeContext.shares(cores: 2, running: 1), [2])
        XCTAssertEqual(ComputeContext.shares(cores: 2, running: 2), [1, 1])
        XCTAssertEqual(ComputeContext.shares(cores: 3, running: 2), [2, 1])
        XCTAssertEqual(ComputeContext.shares(cores: 2, running: 3), [1, 1, 1], "never below one thread")
        for cores in 1...16 {
            for running in 1...cores { XCTAssertEqual(ComputeContext.shares(cores: cores, running: running).reduce(0, +), cores) }
        }
    }

    func testConcurrentTrainingNodesKeepTheirBudgetsAndTheirResults() throws {
        let ws = try CohortWorkspace(patients: 8, size: 768, annotations: 4)
        let repo = NICPipelineTests.repo
        for name in ["encoders/mean-rgb.yaml", "heads/regression.yaml"] {
            let target = ws.root.appendingPathComponent("nodes/\(name)")
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: repo.appendingPathComponent("nodes/\(name)"), to: target)
        }
        // Big enough that a convolution splits its batch over every thread it may use.
        try ws.write("nodes/patient/small.yaml", """
        name: small
        input: [6, 6, 3]
        layers:
          - conv: {filters: 32, kernel: 3, stride: 1, padding: same}
          - leaky_relu: 0.2
          - batchnorm: {}
          - separable_conv: {filters: 32, kernel: 3, stride: 1, padding: valid}
          - leaky_relu: 0.2
          - flatten
          - dense: 8
        """)
        let cores = ProcessInfo.processInfo.activeProcessorCount

        // Both models at once: they share the cores (each gets the whole machine once the other is done).
        let together = try ws.run(pipeline(models: [1, 2]), jobs: 2)
        XCTAssertTrue(together.succeeded, "\(together.failures)")
        for model in ["model1", "model2"] {
            let use = try XCTUnwrap(together.threads[model])
            XCTAssertLessThanOrEqual(use.budget, cores)
            XCTAssertGreaterThanOrEqual(use.peak, 1, "\(model) ran no worker")
            XCTAssertLessThanOrEqual(use.peak, use.budget, "\(model) used more threads than its budget")
        }

        // Each model alone, same budget, fresh cache: the same predictions to the bit.
        for seed in [1, 2] {
            let alone = try ws.run(pipeline(models: [seed]), jobs: 2, cache: try Cache(root: ws.root.appendingPathComponent("cache-\(seed)")))
            XCTAssertTrue(alone.succeeded, "\(alone.failures)")
            XCTAssertEqual(alone.executed, ["cohort", "grids", "model\(seed)", "rgb", "tiles"])
            let concurrent = try Data(contentsOf: try ws.output(together, "model\(seed)", "predictions").appendingPathComponent("predictions.csv"))
            let sequential = try Data(contentsOf: try ws.output(alone, "model\(seed)", "predictions").appendingPathComponent("predictions.csv"))
            XCTAssertEqual(concurrent, sequential, "model\(seed): running beside another node changed its predictions")
        }

        // One job at a time: the whole machine, and a model really uses it.
        let wide = try ws.run(pipeline(models: [3]), jobs: 1)
        XCTAssertTrue(wide.succeeded, "\(wide.failures)")
        let use = try XCTUnwrap(wide.threads["model3"])
        XCTAssertEqual(use.budget, cores)
        // Whether Dispatch really ran two pieces at once depends on the machine's load (it may run
        // both on the calling thread); ComputeContextTests checks that a budget of 2 is used.
        XCTAssertLessThanOrEqual(use.peak, use.budget)
    }
}
