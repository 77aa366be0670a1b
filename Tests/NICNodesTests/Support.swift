import Flow
import Foundation
import NICNodes
import Slides
import Synthetic
import XCTest

/// Writes `text` to `root/relative`, creating the folders on the way.
@discardableResult
func writeFile(_ relative: String, _ text: String, under root: URL) throws -> URL {
    let url = root.appendingPathComponent(relative)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try Data(text.utf8).write(to: url)
    return url
}

/// A temporary project with a small synthetic cohort and a cache, for running pathology pipelines in-process.
final class CohortWorkspace {
    let root: URL
    let cache: Cache
    let cohort: SyntheticCohort

    init(patients: Int = 2, size: Int = 1024, annotations: Int = 8, seed: UInt64 = 11,
         annotation: SyntheticCohort.AnnotationStyle = .exhaustive, look: SyntheticLook = SyntheticLook()) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("nic-nodes-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("nodes/augment"), withIntermediateDirectories: true)
        cache = try Cache(root: root.appendingPathComponent(".nic/cache"))
        var options = SyntheticCohort.Options()
        options.patients = patients
        options.size = size
        options.seed = seed
        options.annotationsPerTask = annotations
        options.secondSlideProbability = 0.5
        options.annotation = annotation
        options.look = look
        cohort = SyntheticCohort(options)
        try cohort.write(to: root.appendingPathComponent("cohort"))
        // The repository's recipes, so the tests exercise what users get.
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for name in ["light.yaml", "heavy.yaml"] {
            try FileManager.default.copyItem(at: repo.appendingPathComponent("nodes/augment/\(name)"), to: root.appendingPathComponent("nodes/augment/\(name)"))
        }
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    @discardableResult
    func write(_ relative: String, _ text: String) throws -> URL { try writeFile(relative, text, under: root) }

    func run(_ yaml: String, jobs: Int = 2, cache: Cache? = nil, registry: NodeRegistry = PathologyNodes.registry) throws -> RunSummary {
        let url = try write("pipeline.yaml", yaml)
        let spec = try SpecParser.parse(file: url, displayPath: "pipeline.yaml")
        let graph = try PipelineGraph.build(spec, registry: registry)
        let cache = cache ?? self.cache
        return Executor(plan: try Planner.plan(graph, cache: cache), cache: cache, jobs: jobs).run()
    }

    /// Copies files of the repository's nodes/ folder (e.g. "heads/binary.yaml") into the workspace's.
    func copyRepoNodes(_ names: [String]) throws {
        for name in names {
            let target = root.appendingPathComponent("nodes/\(name)")
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: NICPipelineTests.repo.appendingPathComponent("nodes/\(name)"), to: target)
        }
    }

    /// A tiny trainable encoder at nodes/encoders/tiny.yaml (128 px patches ÷ 8) with the repository's
    /// heads, for tests that train encoders in seconds. Not invariant to rotation.
    func writeTinyEncoder() throws {
        try copyRepoNodes(["heads/classification.yaml", "heads/binary.yaml", "heads/regression.yaml"])
        try write("nodes/encoders/tiny.yaml", """
        name: tiny
        input: [16, 16, 3]
        layers:
          - conv: {filters: 4, kernel: 3, stride: 2, padding: same}
          - batchnorm: {}
          - leaky_relu: 0.2
          - flatten
          - dense: 8
        """)
    }

    /// Runs like `run` in the workspace's cache, keeping a run record (run.json) as `nic run` does.
    func runRecorded(_ yaml: String, jobs: Int = 2) throws -> (summary: RunSummary, record: RunRecord) {
        let url = try write("pipeline.yaml", yaml)
        let graph = try PipelineGraph.build(try SpecParser.parse(file: url, displayPath: "pipeline.yaml"), registry: PathologyNodes.registry)
        let plan = try Planner.plan(graph, cache: cache)
        let recorder = try RunRecorder(runsRoot: root.appendingPathComponent("runs"), plan: plan, cache: cache, jobs: jobs)
        let summary = Executor(plan: plan, cache: cache, jobs: jobs, observer: recorder).run()
        recorder.finish(summary)
        return (summary, try RunRecord.load(recorder.folder))
    }

    /// The start of a pipeline compressing the cohort with mean-RGB into `grids` (two cells a slide
    /// for the encoder's patches); tests append their patient-level nodes.
    static func meanRGBGrids(pipeline: String, previews: Int = 0) -> String {
        """
        pipeline: \(pipeline)
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
        nodes:
          tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 2}}
          rgb: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/mean-rgb.yaml, training: none}}
          grids: {type: compressor, in: {slides: cohort, encoder: rgb}, params: {min_tissue: 0.3, previews: \(previews)}}

        """
    }

    /// The folder of a node's output port after a successful run.
    func output(_ summary: RunSummary, _ node: String, _ port: String) throws -> URL {
        guard let entry = summary.entries[node] else {
            XCTFail("no output for \(node); failures: \(summary.failures)")
            throw CancellationError()
        }
        return entry.appendingPathComponent(port)
    }
}

func testDataSlide(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
    let dir = ProcessInfo.processInfo.environment["NIC_TEST_DATA"].map { URL(fileURLWithPath: $0) }
        ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/nic/data")
    let url = dir.appendingPathComponent("CMU-1-Small-Region.svs")
    guard FileManager.default.fileExists(atPath: url.path) else {
        XCTFail("missing test slide \(url.path): run scripts/fetch-test-data.sh (or `make test`)", file: file, line: line)
        throw CancellationError()
    }
    return url
}
