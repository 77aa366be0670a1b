import Foundation
import XCTest

/// Every module a target's sources import is in the target's own `dependencies` in Package.swift.
/// SwiftPM lets a module import what reaches it through another dependency (Neural saw CZstd through
/// TensorStore), so an undeclared import builds until that other dependency changes; declaring each
/// one keeps Package.swift the true map of which module uses which.
///
/// Only the package's own modules are checked: its targets and the products it names (an external
/// product's module has the product's name: Yams, Crypto, Logging, ArgumentParser). The platform's
/// modules (Foundation, Dispatch, XCTest, Glibc, …) are not in Package.swift and are left alone.
final class DeclaredImportsTests: XCTestCase {
    struct Target {
        let name: String
        let directory: String
        let dependencies: Set<String>
    }

    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The text of the call that starts just after `open` (an opening parenthesis or bracket), up to
    /// its matching close; string literals are skipped, so a bracket inside one does not count.
    static func balanced(_ text: Substring, from open: String.Index) -> Substring? {
        let opening = text[open], closing: Character = opening == "(" ? ")" : "]"
        var depth = 0, inString = false, escaped = false
        var i = open
        while i < text.endIndex {
            let ch = text[i]
            if inString {
                if escaped { escaped = false } else if ch == "\\" { escaped = true } else if ch == "\"" { inString = false }
            } else if ch == "\"" {
                inString = true
            } else if ch == opening {
                depth += 1
            } else if ch == closing {
                depth -= 1
                if depth == 0 { return text[text.index(after: open)..<i] }
            }
            i = text.index(after: i)
        }
        return nil
    }

    static func strings(in text: Substring) throws -> [String] {
        let literal = try NSRegularExpression(pattern: #""([^"\\]*)""#)
        let s = String(text)
        return literal.matches(in: s, range: NSRange(s.startIndex..., in: s)).compactMap { Range($0.range(at: 1), in: s).map { String(s[$0]) } }
    }

    static func firstString(after label: String, in text: Substring) throws -> String? {
        guard let at = text.range(of: label + ":") else { return nil }
        return try strings(in: text[at.upperBound...]).first
    }

    /// The package's targets, read from Package.swift's `.target(`, `.executableTarget(`,
    /// `.testTarget(` and `.systemLibrary(` calls.
    static func targets(_ manifest: String) throws -> [Target] {
        let call = try NSRegularExpression(pattern: #"\.(target|executableTarget|testTarget|systemLibrary)\("#)
        let text = Substring(manifest)
        var targets: [Target] = []
        for match in call.matches(in: manifest, range: NSRange(manifest.startIndex..., in: manifest)) {
            guard let range = Range(match.range, in: manifest), let kind = Range(match.range(at: 1), in: manifest),
                  let body = balanced(text, from: manifest.index(before: range.upperBound)),
                  let name = try firstString(after: "name", in: body) else { continue }
            // Only the call's own labels: `name:` and `path:` come before any nested call.
            let directory = try firstString(after: "path", in: body) ?? "\(manifest[kind] == "testTarget" ? "Tests" : "Sources")/\(name)"
            var dependencies: Set<String> = []
            if let list = body.range(of: "dependencies:"), let open = body[list.upperBound...].firstIndex(of: "["),
               let items = balanced(body, from: open) {
                // `.product(name: "Yams", package: "Yams")` names the module by `name:`; the package is not a module.
                let modules = items.replacingOccurrences(of: #"package:\s*"[^"]*""#, with: "", options: .regularExpression)
                dependencies = Set(try strings(in: Substring(modules)))
            }
            targets.append(Target(name: name, directory: directory, dependencies: dependencies))
        }
        return targets
    }

    /// The modules a Swift file imports, with the line of each (`import X`, `@testable import X`,
    /// `import struct X.Y`, indented inside `#if`).
    static func imports(_ source: String) throws -> [(line: Int, module: String)] {
        let statement = try NSRegularExpression(
            pattern: #"^\s*(?:@\w+(?:\([^)]*\))?\s+)*import\s+(?:(?:typealias|struct|class|enum|protocol|let|var|func)\s+)?(\w+)"#)
        return source.components(separatedBy: "\n").enumerated().compactMap { i, line in
            guard let match = statement.firstMatch(in: line, range: NSRange(line.startIndex..., in: line)),
                  let module = Range(match.range(at: 1), in: line) else { return nil }
            return (i + 1, String(line[module]))
        }
    }

    func testEveryImportedProjectModuleIsDeclared() throws {
        let root = Self.root
        let manifest = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let targets = try Self.targets(manifest)
        XCTAssertGreaterThan(targets.count, 20, "Package.swift's targets not found at \(root.path)")
        let products = try NSRegularExpression(pattern: #"\.product\(\s*name:\s*"([^"]+)""#)
        let projectModules = Set(targets.map(\.name)).union(products.matches(in: manifest, range: NSRange(manifest.startIndex..., in: manifest))
            .compactMap { Range($0.range(at: 1), in: manifest).map { String(manifest[$0]) } })
        XCTAssertTrue(projectModules.isSuperset(of: ["NICBasics", "Neural", "CZstd", "Yams", "Logging"]), "parsed modules: \(projectModules.sorted())")

        var filesRead = 0
        for target in targets {
            let directory = root.appendingPathComponent(target.directory)
            guard let walker = FileManager.default.enumerator(atPath: directory.path) else { continue }
            for case let relative as String in walker where relative.hasSuffix(".swift") {
                filesRead += 1
                let source = try String(contentsOf: directory.appendingPathComponent(relative), encoding: .utf8)
                for (line, module) in try Self.imports(source)
                where projectModules.contains(module) && module != target.name && !target.dependencies.contains(module) {
                    XCTFail("\(target.directory)/\(relative):\(line): imports \(module), which target \(target.name) does not list in its dependencies in Package.swift")
                }
            }
        }
        XCTAssertGreaterThan(filesRead, 100, "no sources found under the targets' directories")
    }

    /// The parser reads the shapes Package.swift uses: a default path, an explicit path, products.
    func testTheManifestParserReadsTargetsPathsAndProducts() throws {
        let manifest = """
            .target(name: "A", dependencies: ["B", .product(name: "Yams", package: "YamsPackage")]),
            .testTarget(name: "ATests", dependencies: ["A"]),
            .target(name: "Kit", dependencies: ["A"], path: "Tests/Kit"),
            .systemLibrary(name: "CB", path: "Sources/CB", providers: [.apt(["libb-dev"])]),
            """
        let targets = try Self.targets(manifest)
        XCTAssertEqual(targets.map(\.name), ["A", "ATests", "Kit", "CB"])
        XCTAssertEqual(targets.map(\.directory), ["Sources/A", "Tests/ATests", "Tests/Kit", "Sources/CB"])
        XCTAssertEqual(targets[0].dependencies, ["B", "Yams"])
        XCTAssertEqual(try Self.imports("import Foundation\n  @testable import A\nimport struct Yams.Node\n// import Nope\nlet importance = 1").map(\.module),
                       ["Foundation", "A", "Yams"])
    }
}
