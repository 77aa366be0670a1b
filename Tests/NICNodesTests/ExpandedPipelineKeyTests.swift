import Flow
import Foundation
import NICNodes
import XCTest

/// The example pipelines, rewritten with matrix/foreach/defaults/include, must give every node the
/// cache key it had when written by hand (Fixtures/handwritten holds them as they were), so that an
/// existing cache of the demo stays valid and nothing is recomputed.
final class ExpandedPipelineKeyTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A folder holding the repository's node definitions, the pipelines (new and hand-written) and
    /// small stand-ins for the cohorts: planning hashes slides and tables, it never opens them.
    func workspace() throws -> URL {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("nic-expanded-keys-\(UUID().uuidString.prefix(8))")
        try fm.createDirectory(at: root.appendingPathComponent("pipelines"), withIntermediateDirectories: true)
        try fm.createSymbolicLink(at: root.appendingPathComponent("nodes"), withDestinationURL: Self.repository.appendingPathComponent("nodes"))
        for name in ["demo", "encoder-comparison", "nic-tiny"] {
            try fm.copyItem(at: Self.repository.appendingPathComponent("pipelines/\(name).yaml"), to: root.appendingPathComponent("pipelines/\(name).yaml"))
            try fm.copyItem(at: Self.repository.appendingPathComponent("Tests/NICNodesTests/Fixtures/handwritten/\(name).yaml"),
                            to: root.appendingPathComponent("pipelines/handwritten-\(name).yaml"))
        }
        for cohort in ["demo", "tiny"] {
            let dir = root.appendingPathComponent("data/\(cohort)")
            try fm.createDirectory(at: dir.appendingPathComponent("slides"), withIntermediateDirectories: true)
            try Data("slide bytes".utf8).write(to: dir.appendingPathComponent("slides/p1.tif"))
            try Data("slide,patient,score\np1,p1,1\n".utf8).write(to: dir.appendingPathComponent("labels.csv"))
            try Data("slide,x,y,task,label\n".utf8).write(to: dir.appendingPathComponent("patches.csv"))
        }
        return root
    }

    func keys(_ file: String, in root: URL) throws -> [String: String] {
        let graph = try PipelineGraph.build(try SpecParser.parse(file: root.appendingPathComponent("pipelines/\(file)"), displayPath: "pipelines/\(file)"),
                                            registry: PathologyNodes.registry)
        let plan = try Planner.plan(graph, cache: try Cache(root: root.appendingPathComponent("cache-\(file)")))
        return Dictionary(uniqueKeysWithValues: plan.nodes.map { ($0.name, $0.key) })
    }

    /// Every hand-written node has an expanded node with its key; `exact`: and no node more.
    func assertKeysKept(_ name: String, exact: Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let root = try workspace()
        defer { try? FileManager.default.removeItem(at: root) }
        let old = try keys("handwritten-\(name).yaml", in: root)
        let new = try keys("\(name).yaml", in: root)
        let newByKey = Dictionary(new.map { ($0.value, [$0.key]) }, uniquingKeysWith: +)
        let lost = old.filter { newByKey[$0.value] == nil }.keys.sorted()
        XCTAssertEqual(lost, [], "\(name): hand-written nodes whose key no expanded node has", file: file, line: line)
        if exact {
            let oldKeys = Set(old.values)
            let extra = new.filter { !oldKeys.contains($0.value) }.keys.sorted()
            XCTAssertEqual(extra, [], "\(name): expanded nodes the hand-written pipeline did not have", file: file, line: line)
            XCTAssertEqual(new.count, old.count, "\(name): node count", file: file, line: line)
        }
    }

    func testDemoKeepsEveryKey() throws {
        try assertKeysKept("demo", exact: true)
        // Names follow the axes: the hand-written `abmil_survival_mtl128` is `model@mtl128-abmil-survival`.
        let root = try workspace()
        defer { try? FileManager.default.removeItem(at: root) }
        let old = try keys("handwritten-demo.yaml", in: root), new = try keys("demo.yaml", in: root)
        for (hand, expanded) in [("abmil_survival_mtl128", "model@mtl128-abmil-survival"), ("score_rgb", "model@mean_rgb-cnn-score"),
                                 ("grids_mtl", "grids@mtl"), ("probe_grade_mtl", "probe@mtl-grade"),
                                 ("eval_mil_score_mtl128", "eval@model-mtl128-mil-score"), ("eval_probe_survival_rgb", "eval@probe-mean_rgb-survival"),
                                 ("grade_mil_mtl128_vs_rgb", "compare@grade-mil-mtl128-vs-rgb"), ("tiles", "tiles")] {
            XCTAssertEqual(new[expanded], old[hand], "\(expanded) vs hand-written \(hand)")
        }
    }

    /// The comparison includes the demo: the demo's nodes come along (already cached after
    /// `make demo`), and every node the hand-written comparison had keeps its key.
    func testEncoderComparisonKeepsEveryKey() throws {
        try assertKeysKept("encoder-comparison", exact: false)
    }

    func testTinyKeepsEveryKey() throws {
        try assertKeysKept("nic-tiny", exact: true)
    }
}
