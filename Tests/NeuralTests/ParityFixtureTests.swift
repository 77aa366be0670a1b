import Foundation
import Neural
import NeuralTools
import XCTest

/// nic's neural core and bag models against PyTorch, without PyTorch: each fixture holds nic's weights,
/// input and target and PyTorch's outputs and gradients computed from them (written by `make
/// parity-fixtures`, which runs scripts/parity_neural.py and scripts/parity_mil.py against a real
/// PyTorch). A fixture of an architecture that has changed since is stale: regenerate it.
final class ParityFixtureTests: XCTestCase {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let directory = repository.appendingPathComponent("Tests/NeuralTests/Fixtures/parity")

    static func cards() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }.sorted { $0.path < $1.path }
    }

    /// The shipped architectures the parity scripts cover, each with a fixture.
    func testEveryCaseHasAFixture() throws {
        let names = Set(try Self.cards().map { $0.deletingPathExtension().lastPathComponent })
        let expected: Set = ["nic-encoder", "nic-sepconv8+regression", "generator", "abmil-gated+regression", "mil-mean+regression",
                             "abmil-gated+classification", "mil-after+regression"]
        XCTAssertEqual(names, expected)
    }

    func testNicMatchesStoredPyTorchOutputs() throws {
        for json in try Self.cards() {
            let card = try ParityFixture.card(json)
            // A fixture is a statement about one architecture file: a changed file needs a new reference.
            for (path, stored) in [(card.architecture, card.architectureYAML)] + (card.head.map { [($0, card.headYAML ?? "")] } ?? []) {
                let current = try String(contentsOf: Self.repository.appendingPathComponent(path), encoding: .utf8)
                XCTAssertEqual(current, stored, "\(json.lastPathComponent): \(path) changed since the fixture was written; run `make parity-fixtures`")
            }
            let comparisons = try ParityFixture.check(json)
            XCTAssertGreaterThanOrEqual(comparisons.count, 4)
            for c in comparisons {
                print("parity \(json.deletingPathExtension().lastPathComponent) (PyTorch \(card.torch)): \(c)")
                XCTAssert(c.passed, "\(json.lastPathComponent): \(c)")
            }
        }
    }

    /// The check is not vacuous: a perturbed stored reference fails it.
    func testAPerturbedReferenceFails() throws {
        let json = Self.directory.appendingPathComponent("mil-mean+regression.json")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("parity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var tensors = try Safetensors.read(json.deletingPathExtension().appendingPathExtension("safetensors"))
        guard case .f32(var values, let shape)? = tensors["torch.eval_output"] else { return XCTFail("no torch.eval_output") }
        values[0] += 1e-3
        tensors["torch.eval_output"] = .f32(values, shape: shape)
        try Safetensors.write(tensors.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, to: work.appendingPathComponent("case.safetensors"))
        try FileManager.default.copyItem(at: json, to: work.appendingPathComponent("case.json"))
        let failed = try ParityFixture.check(work.appendingPathComponent("case.json")).filter { !$0.passed }.map(\.name)
        XCTAssertEqual(failed, ["inference output"])
    }
}
