import Foundation
import XCTest

/// Library code must not trap on what a user gives it: a trap kills the run with SIGILL and no
/// sentence. This reads every file under Sources/ and fails on
/// - `try!` anywhere;
/// - `precondition`, `preconditionFailure`, `fatalError` except on the allow-listed internal
///   invariants below (each with its reason);
/// - a force unwrap without an `// invariant: why` comment (same or previous line) in the modules
///   that handle user input (Flow, NICNodes, NICCLI); the numeric kernels (Neural, TensorStore,
///   Stats, Slides) unwrap buffer addresses and their own lookups and are checked by their tests;
/// - an unchecked Int conversion of a number parsed from text (`Int(Double(row[…` or
///   `Double(…).map { Int(`), which traps on NaN, infinity or 1e30 (the patches.csv trap).
final class NoTrapsInSourcesTests: XCTestCase {
    /// file suffix → (code fragment, why it cannot be reached from user input)
    static let allowedTraps: [String: [(String, String)]] = [
        "Flow/Node/NodeType.swift": [("registered twice", "a programming error when the registry is built, before any input is read")],
        "NICBasics/ComputeContext.swift": [("no thread-local key left", "the process ran out of pthread keys at start-up")],
        "Stats/Folds.swift": [("folds: k must be at least 2", "the folds param is declared .atLeast(2) and checked at validate time")],
        "Stats/ROC.swift": [("auc: lengths differ", "callers pass parallel arrays built together")],
        "Stats/Survival.swift": [("concordance: lengths differ", "callers pass parallel arrays built together")],
        "Stats/Ranking.swift": [("pearson: lengths differ", "callers pass parallel arrays built together")],
        "TensorStore/Zstd.swift": [("zstd: out of memory creating a context", "allocation failure of a fixed-size context")],
        "TensorStore/ChunkCodec.swift": [("chunk.count == chunkByteCount", "the writer passes whole chunks it laid out itself"),
                                         ("validated: bytes codec comes first only", "metadata parsing rejects any other order")],
        "Slides/Tissue.swift": [("values.count == width * height", "masks are built by this module with their size")],
        "Slides/RGBImage.swift": [("RGBImage:", "images are built by this module with their size"), ("crop outside the image", "callers clamp crops to the image")],
        "Neural/Layer.swift": [("a.count == b.count", "internal vector helper on same-shaped tensors")],
        "Neural/Tensor.swift": [("holds", "tensor shapes are computed by the layers; user shapes are checked by Architecture"),
                                ("shape == other.shape", "internal same-shape arithmetic")],
        "Neural/Layers/BatchNorm.swift": [("fused into batch norm only in training", "fusion is chosen by the network, not by input")],
        "Neural/Layers/LeakyBatchNorm.swift": [("LeakyReLU only for", "fusion checks α ≤ 1 before it fuses")],
        "Neural/Layers/ConvWithEpilogue.swift": [("an epilogue folds", "fusion builds epilogues of one or two followers")],
        "Synthetic/SyntheticSlide+Cells.swift": [("returned above", "unreachable by construction of the switch")],
        "NICNodes/Formats/PatchSet.swift": [("p.width == size && p.height == size", "patches are read at the PatchSet's size"), ("records.count == count", "the writer was sized from the records")],
        "NICNodes/GridCrops.swift": [("mask size", "masks are read with the grid's size"), ("crop buffer size", "buffers are allocated for the crop")],
    ]

    static var sources: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources")
    }

    /// Each Swift file's lines, with string literals blanked and trailing comments kept apart.
    func swiftFiles() throws -> [(path: String, lines: [String])] {
        let root = Self.sources
        guard let walker = FileManager.default.enumerator(atPath: root.path) else { return [] }
        var files: [(String, [String])] = []
        for case let relative as String in walker where relative.hasSuffix(".swift") {
            let text = try String(contentsOf: root.appendingPathComponent(relative), encoding: .utf8)
            files.append((relative, text.components(separatedBy: "\n")))
        }
        XCTAssertGreaterThan(files.count, 50, "Sources/ not found at \(root.path)")
        return files.sorted { $0.0 < $1.0 }
    }

    /// The code of a line: string literals emptied, the trailing comment cut.
    static func code(_ line: String) -> String {
        var out = ""
        var inString = false, escaped = false
        var previous: Character = " "
        for ch in line {
            if inString {
                if escaped { escaped = false } else if ch == "\\" { escaped = true } else if ch == "\"" { inString = false; out.append(ch) }
                continue
            }
            if ch == "/" && previous == "/" { out.removeLast(); break }
            if ch == "\"" { inString = true }
            out.append(ch)
            previous = ch
        }
        return out
    }

    func testNoTryBang() throws {
        for (path, lines) in try swiftFiles() {
            for (i, line) in lines.enumerated() where Self.code(line).contains("try!") {
                XCTFail("Sources/\(path):\(i + 1): try! traps on failure; throw or handle the error: \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
    }

    func testTrapsOnlyOnAllowListedInvariants() throws {
        let trap = try NSRegularExpression(pattern: #"\b(precondition|preconditionFailure|fatalError)\("#)
        for (path, lines) in try swiftFiles() {
            for (i, line) in lines.enumerated() {
                let code = Self.code(line)
                guard trap.firstMatch(in: code, range: NSRange(code.startIndex..., in: code)) != nil else { continue }
                let allowed = Self.allowedTraps.first { path.hasSuffix($0.key) }?.value.contains { line.contains($0.0) } ?? false
                XCTAssertTrue(allowed, "Sources/\(path):\(i + 1): a trap not on the allow-list (make it a thrown error, or allow-list it with a reason): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
    }

    func testForceUnwrapsInInputHandlingModulesSayWhyTheyHold() throws {
        let unwrap = try NSRegularExpression(pattern: #"[\w\)\]]!(?=[\.\)\],\s\[]|$)"#)
        for (path, lines) in try swiftFiles() where ["Flow/", "NICNodes/", "NICCLI/"].contains(where: path.hasPrefix) {
            for (i, line) in lines.enumerated() {
                let code = Self.code(line)
                guard unwrap.firstMatch(in: code, range: NSRange(code.startIndex..., in: code)) != nil else { continue }
                let explained = line.contains("invariant") || (i > 0 && lines[i - 1].contains("invariant"))
                XCTAssertTrue(explained, "Sources/\(path):\(i + 1): a force unwrap without '// invariant: why': \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
    }

    func testNoUncheckedIntOfParsedNumbers() throws {
        let pattern = try NSRegularExpression(pattern: #"Int(32|64)?\((Double|Float)\((row|text|field|string|value)\b|(Double|Float)\([^)]*\)\.map\(\{ ?Int"#)
        for (path, lines) in try swiftFiles() {
            for (i, line) in lines.enumerated() {
                let code = Self.code(line)
                guard pattern.firstMatch(in: code, range: NSRange(code.startIndex..., in: code)) != nil else { continue }
                XCTFail("Sources/\(path):\(i + 1): Int(...) of a parsed number traps on NaN, infinity or huge values; check it is finite and in range first: \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
    }
}
