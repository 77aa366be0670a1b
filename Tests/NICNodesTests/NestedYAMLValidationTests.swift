import Flow
import Foundation
import NICNodes
import XCTest

/// A typo anywhere a pipeline reaches — a nested param value, a head, a recipe, an architecture's
/// layer — fails `nic validate` (`PipelineGraph.build`) with the file, line and column where it is
/// written, never a silent default at run time.
final class NestedYAMLValidationTests: XCTestCase, SpecFolderTesting {
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("nic-nested-\(UUID().uuidString.prefix(8))", isDirectory: true)
        // A `nodes/` folder makes this folder the one relative paths resolve against.
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("nodes"), withIntermediateDirectories: true)
        try write("arch.yaml", "input: [16, 16, 3]\nlayers:\n  - conv: {filters: 4, kernel: 3, stride: 2}\n  - flatten\n  - dense: 8\n")
        try write("heads/binary.yaml", "layers:\n  - dense: 1\nloss: binary_cross_entropy\n")
        try write("recipe.yaml", "name: r\nops:\n  - {op: dihedral, p: 1.0}\n  - {op: blur, p: 0.3, range: [0.3, 1.2]}\n")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func encoder(tasks: String) -> String {
        """
        pipeline: p
        inputs:
          patches: {kind: table, path: arch.yaml}
        nodes:
          mtl:
            type: encoder
            params:
              architecture: arch.yaml
              tasks: \(tasks)
        """
    }

    func testShippedDefinitionsPass() throws {
        // The pipeline itself has no typo: only the missing input port may be reported.
        let found = try errors(encoder(tasks: "{mitosis: {head: binary, weight: 2}, tissue: classification}"))
        XCTAssertTrue(found.allSatisfy { $0.contains("input port 'patches'") }, "\(found)")
    }

    func testTypoInANestedTaskKeyIsLocated() throws {
        let found = try errors(encoder(tasks: "{mitosis: {head: binary, wieght: 2}}"))
        // line 9: `      tasks: {mitosis: {head: binary, wieght: 2}}`; `wieght` starts at column 39.
        XCTAssertTrue(found.contains { $0.hasPrefix("pipeline.yaml:9:39: ") && $0.contains("unknown key 'wieght'") && $0.contains("did you mean 'weight'?") }, "\(found)")
    }

    /// A head named in `tasks` must be a file of `heads_dir` (the folder that is keyed): a misspelt
    /// name or a path elsewhere fails `nic validate` at the tasks, naming the heads there are.
    func testUnknownOrOutsideHeadIsLocatedAtValidate() throws {
        try write("elsewhere/my.yaml", "layers:\n  - dense: 1\nloss: binary_cross_entropy\n")
        func withHeads(_ tasks: String) -> String { encoder(tasks: tasks) + "\n      heads_dir: heads\n" }
        XCTAssertTrue(try errors(withHeads("{mitosis: binary}")).allSatisfy { $0.contains("input port 'patches'") })
        let misspelt = try errors(withHeads("{mitosis: binray}"))
        XCTAssertTrue(misspelt.contains { $0.hasPrefix("pipeline.yaml:9:14: ") && $0.contains("head 'binray' for task 'mitosis' not found")
                && $0.contains("did you mean 'binary'?") }, "\(misspelt)")
        let outside = try errors(withHeads("{mitosis: {head: elsewhere/my.yaml}}"))
        XCTAssertTrue(outside.contains { $0.hasPrefix("pipeline.yaml:9:14: ") && $0.contains("outside param 'heads_dir'") }, "\(outside)")
    }

    /// Every head of `heads_dir` is checked at validate, named in `tasks` or not (a task without a head
    /// gets one from the folder when the node runs), and an error points into the head file.
    func testTypoInAHeadOfHeadsDirIsLocatedInThatFile() throws {
        try write("heads/classification.yaml", "layers:\n  - dense: 9\nloss: {type: softmax}\n")
        let found = try errors(encoder(tasks: "[tissue]") + "\n      heads_dir: heads\n")
        XCTAssertTrue(found.contains { $0.hasPrefix("heads/classification.yaml:3:14: ") && $0.contains("unknown type 'softmax'")
                && $0.contains("(a file of param 'heads_dir' of node 'mtl')") }, "\(found)")
    }

    func testOutOfRangeTaskWeightIsLocated() throws {
        let found = try errors(encoder(tasks: "{mitosis: {head: binary, weight: -1}}"))
        XCTAssertTrue(found.contains { $0.hasPrefix("pipeline.yaml:9:47: ") && $0.contains("weight must be a number ≥ 0") }, "\(found)")
        let wrongType = try errors(encoder(tasks: "{mitosis: {head: binary, weight: heavy}}"))
        XCTAssertTrue(wrongType.contains { $0.hasPrefix("pipeline.yaml:9:47: ") && $0.contains("expected a number") }, "\(wrongType)")
    }

    func testTypoInAnArchitectureLayerIsLocatedInThatFile() throws {
        try write("arch.yaml", "input: [16, 16, 3]\nlayers:\n  - conv: {filters: 4, kernel: 3, strid: 2}\n  - flatten\n  - dense: 8\n")
        let found = try errors(encoder(tasks: "[tissue]"))
        XCTAssertTrue(found.contains { $0.hasPrefix("arch.yaml:3:35: ") && $0.contains("unknown key 'strid'") && $0.contains("did you mean 'stride'?")
            && $0.contains("referenced from pipeline.yaml:8:") }, "\(found)")
    }

    func testTypoInAHeadFileIsLocatedInThatFile() throws {
        try write("heads/aux.yaml", "layers:\n  - dense: 1\nloss: mse\nauxiliary: {target: score, wieght: 0.5}\n")
        let found = try errors("""
        pipeline: p
        inputs:
          grids: {kind: table, path: arch.yaml}
        nodes:
          m:
            type: patient_model
            params: {architecture: arch.yaml, head: heads/aux.yaml, target: [score]}
        """)
        XCTAssertTrue(found.contains { $0.hasPrefix("heads/aux.yaml:4:28: ") && $0.contains("unknown key 'wieght'") && $0.contains("did you mean 'weight'?") }, "\(found)")
        try write("heads/aux.yaml", "layers:\n  - dense: {units: 1, bais: false}\nloss: mse\n")
        let layer = try errors("pipeline: p\nnodes:\n  m: {type: patient_model, params: {head: heads/aux.yaml, target: [score]}}\n")
        XCTAssertTrue(layer.contains { $0.hasPrefix("heads/aux.yaml:2:23: ") && $0.contains("unknown key 'bais'") }, "\(layer)")
    }

    func testTypoInARecipeIsLocatedInThatFile() throws {
        try write("recipe.yaml", "name: r\nops:\n  - {op: dihedral, p: 1.0}\n  - {op: blur, p: 0.3, range: [0.3, 1.2], sigam: 8}\n")
        let found = try errors("pipeline: p\nnodes:\n  a: {type: augmenter, params: {recipe: recipe.yaml}}\n")
        XCTAssertTrue(found.contains { $0.hasPrefix("recipe.yaml:4:43: ") && $0.contains("unknown key 'sigam'") && $0.contains("did you mean 'sigma'?") }, "\(found)")
        try write("recipe.yaml", "name: r\nops:\n  - {op: blurr, p: 0.3, range: [0.3, 1.2]}\n")
        let op = try errors("pipeline: p\nnodes:\n  a: {type: augmenter, params: {recipe: recipe.yaml}}\n")
        XCTAssertTrue(op.contains { $0.hasPrefix("recipe.yaml:3:10: ") && $0.contains("unknown op 'blurr'") && $0.contains("did you mean 'blur'?") }, "\(op)")
        try write("recipe.yaml", "name: r\nops:\n  - {op: blur, p: 1.5, range: [0.3, 1.2]}\n")
        let range = try errors("pipeline: p\nnodes:\n  a: {type: augmenter, params: {recipe: recipe.yaml}}\n")
        XCTAssertTrue(range.contains { $0.hasPrefix("recipe.yaml:3:19: ") && $0.contains("'ops[1].p'") && $0.contains("probability must be in 0...1") }, "\(range)")
    }

    /// A param that only another training mode reads would be silently ignored: `nic validate`
    /// refuses it where it is written, and takes it with the mode that reads it.
    func testParamOfAnotherTrainingModeIsRefusedWhereWritten() throws {
        func encoder(training: String, extra: String) -> String {
            """
            pipeline: p
            inputs:
              patches: {kind: table, path: arch.yaml}
            nodes:
              enc:
                type: encoder
                in: {patches: patches}
                params:
                  architecture: arch.yaml
                  training: \(training)
                  \(extra)
            """
        }
        let bigan = try errors(encoder(training: "bigan", extra: "kl_weight: 0.001"))
        XCTAssertTrue(bigan.contains { $0.hasPrefix("pipeline.yaml:11:7: node 'enc': param 'kl_weight' is read only with training 'vae', but this node's training is 'bigan'") },
                      "\(bigan)")
        let supervised = try errors(encoder(training: "supervised", extra: "decoder: arch.yaml"))
        XCTAssertTrue(supervised.contains { $0.hasPrefix("pipeline.yaml:11:7: node 'enc': param 'decoder' is read only with training 'vae'") }, "\(supervised)")
        let vae = try errors(encoder(training: "vae", extra: "kl_weight: 0.001"))
        XCTAssertFalse(vae.contains { $0.contains("kl_weight") }, "\(vae)")
        let own = try errors(encoder(training: "bigan", extra: "label_smoothing: 0.2"))
        XCTAssertFalse(own.contains { $0.contains("label_smoothing") }, "\(own)")
    }
}
