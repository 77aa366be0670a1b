import Flow
import Foundation
import NICNodes
import XCTest

/// The audit of issue 23's "a typo anywhere fails `nic validate` with its location": for every kind
/// of file under `nodes/` (and a pipeline itself), a copy of a shipped file with one key misspelt, one
/// value of the wrong type and one value out of range must each fail `PipelineGraph.build` at that
/// file's `path:line:column`, naming the key.
final class NodesFolderTypoTests: XCTestCase, SpecFolderTesting {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("nic-audit-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("nodes"), withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    /// Copies the shipped `nodes/<relative>` with `edit` applied (which must change it) and returns
    /// the "line:column" where `marker` starts in the edited copy.
    func copy(_ relative: String, replacing old: String, with new: String, marker: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let original = try String(contentsOf: Self.repo.appendingPathComponent("nodes/\(relative)"), encoding: .utf8)
        guard let range = original.range(of: old) else {
            XCTFail("'\(old)' is not in nodes/\(relative)", file: file, line: line)
            return "?"
        }
        let edited = original.replacingCharacters(in: range, with: new)
        let url = folder.appendingPathComponent("nodes/\(relative)")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(edited.utf8).write(to: url)
        // The marker inside the replaced text, counted from the start of the edit.
        let start = edited.distance(from: edited.startIndex, to: range.lowerBound) + (new.range(of: marker).map { new.distance(from: new.startIndex, to: $0.lowerBound) } ?? 0)
        let before = edited.prefix(start)
        let lineNumber = before.filter { $0 == "\n" }.count + 1
        let column = before.count - (before.lastIndex(of: "\n").map { before.distance(from: before.startIndex, to: $0) + 1 } ?? 0) + 1
        return "\(lineNumber):\(column)"
    }

    /// Copies the shipped `nodes/<relative>` unchanged.
    func copy(_ relative: String) throws {
        let url = folder.appendingPathComponent("nodes/\(relative)")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? FileManager.default.removeItem(at: url)
        try FileManager.default.copyItem(at: Self.repo.appendingPathComponent("nodes/\(relative)"), to: url)
    }

    /// One edit of `relative`, checked: an error at `relative:line:column` whose message names `key`.
    func expect(_ relative: String, _ old: String, _ new: String, at marker: String, names key: String, pipeline: String,
                file: StaticString = #filePath, line: UInt = #line) throws {
        let place = try copy(relative, replacing: old, with: new, marker: marker, file: file, line: line)
        let found = try errors(pipeline)
        let prefix = "nodes/\(relative):\(place): "
        XCTAssertTrue(found.contains { $0.hasPrefix(prefix) && $0.contains(key) }, "\(new): expected an error at \(prefix)naming '\(key)'; got \(found)", file: file, line: line)
        try copy(relative)
    }

    func encoder(_ params: String) -> String {
        """
        pipeline: p
        nodes:
          enc:
            type: encoder
            params: {\(params)}
        """
    }

    func testEncoderArchitectures() throws {
        let p = encoder("architecture: nodes/encoders/nic-encoder.yaml, training: vae")
        try copy("vae/decoder.yaml")
        try expect("encoders/nic-encoder.yaml", "stride: 2", "strid: 2", at: "strid", names: "strid", pipeline: p)
        try expect("encoders/nic-encoder.yaml", "filters: 128", "filters: many", at: "many", names: "filters", pipeline: p)
        try expect("encoders/nic-encoder.yaml", "leaky_relu: 0.2", "leaky_relu: -0.2", at: "-0.2", names: "leaky_relu", pipeline: p)
        try expect("encoders/nic-encoder.yaml", "input: [64", "inptu: [64", at: "inptu", names: "inptu", pipeline: p)
        try expect("encoders/nic-encoder.yaml", "input: [64, 64, 3]", "input: [64, 64, -3]", at: "-3", names: "input", pipeline: p)
        try expect("encoders/nic-encoder.yaml", "input: [64, 64, 3]", "input: square", at: "square", names: "input", pipeline: p)
    }

    func testPatientArchitectures() throws {
        try copy("heads/cox.yaml")
        let p = "pipeline: p\nnodes:\n  m: {type: patient_model, params: {architecture: nodes/patient/abmil-gated.yaml, head: nodes/heads/cox.yaml, target: [time, event]}}\n"
        try expect("patient/abmil-gated.yaml", "hidden: 64", "hiden: 64", at: "hiden", names: "hiden", pipeline: p)
        try expect("patient/abmil-gated.yaml", "hidden: 64", "hidden: lots", at: "lots", names: "hidden", pipeline: p)
        try expect("patient/abmil-gated.yaml", "hidden: 64", "hidden: 0", at: "0", names: "hidden", pipeline: p)
        try expect("patient/abmil-gated.yaml", "type: gated_attention", "type: gated_atention", at: "gated_atention", names: "gated_atention", pipeline: p)
        try expect("patient/abmil-gated.yaml", "units: 128", "unit: 128", at: "unit", names: "unit", pipeline: p)
        try expect("patient/abmil-gated.yaml", "units: 128", "units: [128]", at: "[128]", names: "units", pipeline: p)
        try expect("patient/abmil-gated.yaml", "- dropout: 0.25", "- dropout: 1.25", at: "1.25", names: "dropout", pipeline: p)
        try expect("patient/nic-sepconv-small.yaml", "momentum: 0.1", "momentun: 0.1", at: "momentun", names: "momentun", pipeline: p.replacingOccurrences(of: "abmil-gated", with: "nic-sepconv-small"))
    }

    func testHeads() throws {
        try copy("patient/mil-mean.yaml")
        let p = "pipeline: p\nnodes:\n  m: {type: patient_model, params: {architecture: nodes/patient/mil-mean.yaml, head: nodes/heads/cox-score.yaml, target: [score]}}\n"
        try expect("heads/cox-score.yaml", "risk_set: fold", "risk_sets: fold", at: "risk_sets", names: "risk_sets", pipeline: p)
        try expect("heads/cox-score.yaml", "ties: efron", "ties: [efron]", at: "[efron]", names: "ties", pipeline: p)
        try expect("heads/cox-score.yaml", "ties: efron", "ties: eforn", at: "eforn", names: "ties", pipeline: p)
        try expect("heads/cox-score.yaml", "weight: 0.5", "weight: -0.5", at: "-0.5", names: "weight", pipeline: p)
        try expect("heads/cox-score.yaml", "weight: 0.5", "weight: half", at: "half", names: "weight", pipeline: p)
        try expect("heads/cox-score.yaml", "loss: mse", "loss: mes", at: "mes", names: "mes", pipeline: p)
        try expect("heads/cox-score.yaml", "loss: {type", "los: {type", at: "los", names: "los", pipeline: p)
        try expect("heads/cox-score.yaml", "- dense: 1", "- dense: one", at: "one", names: "dense", pipeline: p)
    }

    func testAugmentationRecipes() throws {
        let p = "pipeline: p\nnodes:\n  a: {type: augmenter, params: {recipe: nodes/augment/heavy.yaml}}\n"
        try expect("augment/heavy.yaml", "sigma: 8", "sigam: 8", at: "sigam", names: "sigam", pipeline: p)
        try expect("augment/heavy.yaml", "{op: noise, p: 0.3", "{op: noise, p: often", at: "often", names: "p", pipeline: p)
        try expect("augment/heavy.yaml", "{op: noise, p: 0.3", "{op: noise, p: 1.3", at: "1.3", names: "p", pipeline: p)
        try expect("augment/heavy.yaml", "ops:", "opps:", at: "opps", names: "opps", pipeline: p)
    }

    func testAnnotationTaskFiles() throws {
        let p = "pipeline: p\nnodes:\n  a: {type: annotations, params: {dir: nodes, tasks: nodes/tasks/qupath-synthetic.yaml}}\n"
        try expect("tasks/qupath-synthetic.yaml", "radius_um: 8", "radius_mu: 8", at: "radius_mu", names: "radius_mu", pipeline: p)
        try expect("tasks/qupath-synthetic.yaml", "radius_um: 8", "radius_um: wide", at: "wide", names: "radius_um", pipeline: p)
        try expect("tasks/qupath-synthetic.yaml", "min_coverage: 0.5", "min_coverage: 1.5", at: "1.5", names: "min_coverage", pipeline: p)
        try expect("tasks/qupath-synthetic.yaml", "samples: 16", "sample: 16", at: "sample", names: "sample", pipeline: p)
        try expect("tasks/qupath-synthetic.yaml", "samples: 16", "samples: -16", at: "-16", names: "samples", pipeline: p)
        try expect("tasks/qupath-synthetic.yaml", "kind: count", "kind: cuont", at: "cuont", names: "kind", pipeline: p)
    }

    func testGANAndContrastiveDefinitions() throws {
        try copy("encoders/nic-encoder.yaml")
        try copy("bigan/generator.yaml")
        let bigan = encoder("architecture: nodes/encoders/nic-encoder.yaml, training: bigan")
        try expect("bigan/discriminator.yaml", "from: image", "form: image", at: "form", names: "form", pipeline: bigan)
        try expect("bigan/discriminator.yaml", "- dense: 1024", "- dense: wide", at: "wide", names: "dense", pipeline: bigan)
        try expect("bigan/discriminator.yaml", "- dropout: 0.5", "- dropout: 2", at: "2", names: "dropout", pipeline: bigan)
        try expect("bigan/discriminator.yaml", "code: [128]", "code: [-128]", at: "-128", names: "code", pipeline: bigan)
        try copy("bigan/discriminator.yaml")
        try expect("bigan/generator.yaml", "upsample: 2 ", "upsampel: 2 ", at: "upsampel", names: "upsampel", pipeline: bigan)
        try expect("bigan/generator.yaml", "reshape: [4, 4, 64]", "reshape: [4, 4, 0]", at: "0]", names: "reshape", pipeline: bigan)
        let contrastive = encoder("architecture: nodes/encoders/nic-encoder.yaml, training: contrastive")
        try expect("encoders/contrastive-head.yaml", "loss: binary_cross_entropy", "loss: binary_crossentropy", at: "binary_crossentropy", names: "binary_crossentropy", pipeline: contrastive)
    }

    func testPipelines() throws {
        try copy("encoders/nic-encoder.yaml")
        let typo = try errors("pipeline: p\nnodes:\n  enc:\n    type: encoder\n    params: {architecture: nodes/encoders/nic-encoder.yaml, epocs: 3}\n")
        XCTAssertTrue(typo.contains { $0.hasPrefix("pipeline.yaml:5:61: ") && $0.contains("epocs") }, "\(typo)")
        let type = try errors("pipeline: p\nnodes:\n  enc:\n    type: encoder\n    params: {architecture: nodes/encoders/nic-encoder.yaml, epochs: many}\n")
        XCTAssertTrue(type.contains { $0.hasPrefix("pipeline.yaml:5:69: ") && $0.contains("epochs") }, "\(type)")
        let range = try errors("pipeline: p\nnodes:\n  enc:\n    type: encoder\n    params: {architecture: nodes/encoders/nic-encoder.yaml, epochs: 0}\n")
        XCTAssertTrue(range.contains { $0.hasPrefix("pipeline.yaml:5:69: ") && $0.contains("epochs") }, "\(range)")
        // A misspelt structural key stops the parse itself.
        XCTAssertThrowsError(try errors("pipeline: p\nnodes:\n  enc:\n    type: encoder\n    parmas: {architecture: nodes/encoders/nic-encoder.yaml}\n")) { error in
            XCTAssertTrue("\(error)".hasPrefix("pipeline.yaml:5:5: ") && "\(error)".contains("parmas"), "\(error)")
        }
    }
}
