import Flow
import Foundation
import NICBasics
import NICNodes
import XCTest

/// A test that checks pipelines against files of its own temporary `folder`.
protocol SpecFolderTesting: AnyObject {
    var folder: URL! { get }
}

extension SpecFolderTesting {
    @discardableResult
    func write(_ relative: String, _ text: String) throws -> URL { try writeFile(relative, text, under: folder) }

    /// "file:line:column: message" of every spec error (file relative to the test folder).
    func errors(_ yaml: String) throws -> [String] {
        let spec = try SpecParser.parse(text: yaml, file: "pipeline.yaml", directory: folder)
        do {
            _ = try PipelineGraph.build(spec, registry: PathologyNodes.registry)
            return []
        } catch let errors as SpecErrors {
            return errors.errors.map { error in
                let file = error.location.map { $0.file.replacingOccurrences(of: folder.path + "/", with: "").replacingOccurrences(of: folder.standardizedFileURL.path + "/", with: "") } ?? "?"
                return "\(file):\(error.location?.line ?? 0):\(error.location?.column ?? 0): \(error.message)"
            }
        }
    }
}
