import Flow
import Foundation
import NICBasics
import NICNodes
import XCTest

/// Params are declared once (`@Param`); these tests hold every node type to that declaration: a bad
/// value for any param of any node type is a located spec error at validate time, never a run-time
/// crash or a silent default.
final class ParamDeclarationTests: XCTestCase {
    let registry = PathologyNodes.registry

    /// "line:column: message" for every spec error of `yaml`.
    func errors(_ yaml: String) throws -> [String] {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nic-params-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let spec = try SpecParser.parse(text: yaml, file: "pipeline.yaml", directory: folder)
        do {
            _ = try PipelineGraph.build(spec, registry: registry)
            return []
        } catch let errors as SpecErrors {
            return errors.errors.map { "\($0.location?.line ?? 0):\($0.location?.column ?? 0): \($0.message)" }
        }
    }

    /// Values that fit a param's YAML type, from which each check must reject at least one.
    func candidates(for type: ParamType) -> [(yaml: String, value: ParamValue)] {
        switch type {
        case .int: return [(-1, -1), (0, 0), (1, 1), (-1_000_000_000, -1_000_000_000), (1_000_000_000_000, 1_000_000_000_000)].map { ("\($0.0)", .int($0.1)) }
        case .float: return [-1.0, 0, 1.5, -1e9, 1e12].map { ("\($0)", .float($0)) }
        case .list(let element): return candidates(for: element).map { ("[\($0.yaml)]", .list([$0.value])) } + [("[]", .list([]))]
        default: return []
        }
    }

    /// A YAML value of the wrong type for `type`, or nil where any scalar is acceptable.
    func wrongType(for type: ParamType) -> String? {
        switch type {
        case .int, .float: return "\"twelve\""
        case .bool: return "maybe"
        case .choice: return "no-such-choice"
        case .list(let element): return wrongType(for: element).map { "[\($0)]" }
        case .string: return "{a: 1}"
        case .any: return nil
        case .file, .directory, .reference, .definitions: return "/no/such/path/anywhere"
        }
    }

    func testEveryNodeTypeRejectsOutOfRangeAndWrongTypedParamsWithALocation() throws {
        var checked = 0
        for name in registry.names {
            let type = registry[name]!
            for param in type.params {
                let prefix = "pipeline: p\nnodes:\n  n:\n    type: \(name)\n    params:\n      \(param.name): "
                let column = "      \(param.name): ".count + 1
                // A list's item errors point at the item, one column in.
                let at = { (error: String) in error.hasPrefix("6:\(column):") || error.hasPrefix("6:\(column + 1):") }
                if let bad = wrongType(for: param.type) {
                    let found = try errors(prefix + bad + "\n")
                    XCTAssertTrue(found.contains { at($0) && $0.contains("param '\(param.name)'") },
                                  "\(name).\(param.name) = \(bad): expected an error at 6:\(column), got \(found)")
                    checked += 1
                }
                for check in param.checks where !check.unkeyedAtDefault {  // a key rule, not a check of the value
                    guard let bad = candidates(for: param.type).first(where: { !check.accepts($0.value) }) else {
                        XCTFail("\(name).\(param.name): no candidate value breaks '\(check)'; extend the candidates")
                        continue
                    }
                    let found = try errors(prefix + bad.yaml + "\n")
                    XCTAssertTrue(found.contains { at($0) && $0.contains("param '\(param.name)' must be \(check)") },
                                  "\(name).\(param.name) = \(bad.yaml): expected 'must be \(check)' at 6:\(column), got \(found)")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 80)
    }

    func testNonFiniteNumbersAreSpecErrors() throws {
        let found = try errors("pipeline: p\nnodes:\n  e:\n    type: evaluator\n    params: {confidence: .nan}\n")
        XCTAssertTrue(found.contains { $0.hasPrefix("5:26:") && $0.contains("must be a finite number") }, "\(found)")
    }

    func testTypicalMistakesNameTheRule() throws {
        let found = try errors("""
        pipeline: p
        nodes:
          m:
            type: patient_model
            params: {head: x.yaml, target: [score], folds: 1, epochs: 0, learning_rate: -0.1, batch_size: 1}
        """)
        for fragment in ["param 'folds' must be ≥ 2, found 1", "param 'epochs' must be ≥ 1, found 0",
                         "param 'learning_rate' must be > 0, found -0.1", "param 'batch_size' must be ≥ 2, found 1"] {
            XCTAssertTrue(found.contains { $0.contains(fragment) }, "missing '\(fragment)' in \(found)")
        }
    }

    /// Defaults are part of the declaration, so they must pass their own checks, and names must be the
    /// YAML spellings users write (snake_case).
    func testDefaultsPassTheirChecksAndNamesAreSnakeCase() {
        for name in registry.names {
            for param in registry[name]!.params {
                XCTAssertEqual(param.name, param.name.lowercased(), "\(name).\(param.name)")
                if let value = param.defaultValue {
                    for check in param.checks { XCTAssertTrue(check.accepts(value), "\(name).\(param.name) default \(value) breaks \(check)") }
                }
            }
        }
        XCTAssertEqual(registry["patient_model"]!.params.map(\.name),
                       ["architecture", "covariates", "head", "target", "classes", "folds", "epochs", "crops_per_slide", "batch_size", "learning_rate",
                        "patience", "test_crops", "aggregation", "bag_cells", "seed"])
    }
}
