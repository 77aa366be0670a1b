import Foundation
import NICBasics
import Yams

/// Bounds on the YAML nic reads (pipelines and the files they reference), so that a small hostile
/// file cannot take the machine: a few hundred bytes of aliases can stand for 10^10 nodes ("billion
/// laughs"), and deep nesting overflows a recursive reader's stack. Real pipelines and architectures
/// are far inside these limits.
public enum YAMLLimits {
    /// Bytes of one YAML file.
    public static let maxBytes = 16 << 20
    /// Nesting of sequences and mappings.
    public static let maxDepth = 128
    /// Nodes after every alias is expanded.
    public static let maxNodes = 1_000_000
    /// Scalar bytes after every alias is expanded: a long string aliased thousands of times stays
    /// within the node count but not within memory (or the run record that copies params).
    public static let maxExpandedBytes = 16 << 20

    /// Reads a YAML file: only a regular file (a FIFO would block for ever, a device never end), at
    /// most `maxBytes`, UTF-8. Errors name the file.
    public static func readText(_ url: URL, display: String, at location: SourceLocation?) throws -> String {
        var st = stat()
        guard stat(url.path, &st) == 0 else {
            throw SpecError("cannot read \(display): \(FlowError.plainReason(errno: errno))", at: location)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SpecError("\(display) is not a regular file (a folder, FIFO, device or socket); expected a YAML file", at: location)
        }
        guard st.st_size <= maxBytes else {
            throw SpecError("\(display) has \(st.st_size) bytes; a YAML file may have at most \(maxBytes >> 20) MiB", at: location)
        }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw SpecError("cannot read \(display)", at: location)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw SpecError("cannot read \(display) as UTF-8 text", at: location)
        }
        return text
    }

    /// Parses YAML text within the bounds; nil for an empty document. Flow nesting is checked on the
    /// text first (the reader recurses), then the composed tree is walked with a budget, so that
    /// the check itself costs at most `maxNodes` steps however far the aliases would expand.
    public static func compose(_ text: String, file: String) throws -> Yams.Node? {
        try checkFlowNesting(text, file: file)
        guard let root = try Yams.compose(yaml: text) else { return nil }
        var budget = maxNodes, bytes = maxExpandedBytes
        try walk(root, depth: 1, budget: &budget, bytes: &bytes, file: file)
        return root
    }

    private static func walk(_ node: Yams.Node, depth: Int, budget: inout Int, bytes: inout Int, file: String) throws {
        budget -= 1
        if case .scalar(let scalar) = node {
            bytes -= scalar.string.utf8.count
            if bytes < 0 {
                throw SpecError("YAML expands to more than \(maxExpandedBytes >> 20) MiB of text (anchors and aliases repeat long values); nic reads at most \(maxExpandedBytes >> 20) MiB per file",
                                at: SourceLocation(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1))
            }
        }
        if budget < 0 {
            throw SpecError("YAML expands to more than \(maxNodes) nodes (anchors and aliases repeat whole subtrees); nic reads at most \(maxNodes) per file",
                            at: SourceLocation(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1))
        }
        if depth > maxDepth {
            throw SpecError("YAML nested more than \(maxDepth) levels deep", at: SourceLocation(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1))
        }
        switch node {
        case .scalar, .alias: return
        case .sequence(let items): for item in items { try walk(item, depth: depth + 1, budget: &budget, bytes: &bytes, file: file) }
        case .mapping(let pairs):
            for (key, value) in pairs {
                try walk(key, depth: depth + 1, budget: &budget, bytes: &bytes, file: file)
                try walk(value, depth: depth + 1, budget: &budget, bytes: &bytes, file: file)
            }
        }
    }

    /// Depth of `[`/`{` outside quotes and comments; block nesting needs indentation, so the file
    /// size bounds it.
    static func checkFlowNesting(_ text: String, file: String) throws {
        var depth = 0, line = 1, column = 0
        var quote: Character?
        var comment = false
        var previous: Character = "\n"
        for ch in text {
            column += 1
            defer { previous = ch }
            if ch == "\n" { line += 1; column = 0; comment = false; continue }
            if comment { continue }
            if let q = quote {
                if ch == q { quote = nil }
                continue
            }
            switch ch {
            case "\"", "'": if previous == " " || previous == "[" || previous == "{" || previous == "," || previous == ":" || previous == "\n" { quote = ch }
            case "#": if previous == " " || previous == "\n" || previous == "\t" { comment = true }
            case "[", "{":
                depth += 1
                if depth > maxDepth {
                    throw SpecError("YAML nested more than \(maxDepth) levels deep", at: SourceLocation(file: file, line: line, column: column))
                }
            case "]", "}": depth = max(0, depth - 1)
            default: break
            }
        }
    }
}
