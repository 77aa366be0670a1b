import Flow
import Foundation
import NICNodes
import XCTest

/// A temporary project without a synthetic cohort, for pipelines that start from files other tools
/// wrote (feature files, annotations); fixtures are referenced where they lie.
final class InteropWorkspace {
    let root: URL
    let cache: Cache

    static let fixtures = NICPipelineTests.repo.appendingPathComponent("Tests/NICNodesTests/Fixtures")

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("nic-interop-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        cache = try Cache(root: root.appendingPathComponent(".nic/cache"))
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    /// Copies files of the repository (architectures, heads) into the project at the same relative paths.
    func copyRepo(_ paths: [String]) throws {
        for path in paths {
            let target = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: NICPipelineTests.repo.appendingPathComponent(path), to: target)
        }
    }

    @discardableResult
    func write(_ relative: String, _ text: String) throws -> URL { try writeFile(relative, text, under: root) }

    func run(_ yaml: String) throws -> RunSummary {
        let spec = try SpecParser.parse(file: try write("pipeline.yaml", yaml), displayPath: "pipeline.yaml")
        let graph = try PipelineGraph.build(spec, registry: PathologyNodes.registry)
        return Executor(plan: try Planner.plan(graph, cache: cache), cache: cache, jobs: 2).run()
    }

    /// The output folder of a node's port, failing the test with the run's failures when it has none.
    func output(_ summary: RunSummary, _ node: String, _ port: String) throws -> URL {
        guard let entry = summary.entries[node] else {
            XCTFail("no output for \(node); failures: \(summary.failures)")
            throw CancellationError()
        }
        return entry.appendingPathComponent(port)
    }

    /// The GridSet the `features` node makes of the TRIDENT-layout fixture (12 slides, 8 features a patch).
    func tridentGridSet() throws -> GridSet {
        let dir = Self.fixtures.appendingPathComponent("features/trident")
        let summary = try run("""
        pipeline: trident
        nodes:
          grids: {type: features, params: {dir: \(dir.path), labels: \(dir.path)/labels.csv}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        return try GridSet(folder: try output(summary, "grids", "grids"))
    }

    /// The error message a failed node reported.
    func failure(_ summary: RunSummary, _ node: String) -> String? {
        if case .failed(let message) = summary.outcomes[node] { return message }
        return nil
    }
}
