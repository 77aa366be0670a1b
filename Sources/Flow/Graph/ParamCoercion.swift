import Foundation
import NICBasics
import Yams

/// Turns a YAML value into a typed `ParamValue`, reporting a located error when it does not fit.
struct ParamCoercion {
    var file: String
    let baseDirectory: URL
    var errors: [SpecError] = []

    init(file: String, baseDirectory: URL) {
        self.file = file
        self.baseDirectory = baseDirectory
    }

    func location(_ node: Yams.Node) -> SourceLocation {
        SourceLocation(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1)
    }

    /// `what` names the value in messages, e.g. "node 'train' param 'lr'".
    mutating func coerce(_ node: Yams.Node, to type: ParamType, what: String) -> ParamValue? {
        func wrong() -> ParamValue? {
            errors.append(SpecError("\(what) expects \(type), found \(SpecParser.describeKind(node))", at: location(node)))
            return nil
        }
        switch type {
        case .int:
            guard let s = plainScalar(node), node.tagName == .int, let i = node.int else {
                if let s = plainScalar(node), node.tagName == .float, let d = node.float, d == d.rounded(), abs(d) < 9e15, !s.isEmpty {
                    return .int(Int(d))
                }
                return wrong()
            }
            _ = s
            return .int(i)
        case .float:
            guard plainScalar(node) != nil else { return wrong() }
            if node.tagName == .int, let i = node.int { return .float(Double(i)) }
            if node.tagName == .float, let d = node.float { return .float(d) }
            return wrong()
        case .bool:
            guard plainScalar(node) != nil, node.tagName == .bool, let b = node.bool else { return wrong() }
            return .bool(b)
        case .string:
            guard let scalar = node.scalar, !(scalar.style == .plain && node.tagName == .null) else { return wrong() }
            return .string(scalar.string)
        case .choice(let options):
            guard let scalar = node.scalar, !(scalar.style == .plain && node.tagName == .null) else { return wrong() }
            guard options.contains(scalar.string) else {
                errors.append(SpecError("\(what) must be one of \(Suggest.list(options)), found '\(scalar.string)'\(Suggest.hint(for: scalar.string, among: options))", at: location(node)))
                return nil
            }
            return .string(scalar.string)
        case .list(let element):
            // A single value where a list is expected is a common shorthand; accept it as a one-item list.
            guard let items = node.sequence else {
                if node.scalar != nil, node.tagName != .null, let one = coerce(node, to: element, what: what) { return .list([one]) }
                return wrong()
            }
            var out: [ParamValue] = []
            var ok = true
            for (i, item) in items.enumerated() {
                if let v = coerce(item, to: element, what: "\(what) item \(i + 1)") { out.append(v) } else { ok = false }
            }
            return ok ? .list(out) : nil
        case .file, .directory, .reference, .definitions:
            guard let scalar = node.scalar, !(scalar.style == .plain && node.tagName == .null), !scalar.string.isEmpty else { return wrong() }
            let url = resolve(scalar.string)
            var isDir: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
            let wantDir: Bool
            switch type { case .directory, .definitions: wantDir = true; default: wantDir = false }
            if !exists {
                errors.append(SpecError("\(what): \(wantDir ? "folder" : "file") not found: \(url.path) (relative paths resolve against \(baseDirectory.path))", at: location(node)))
                return nil
            }
            if isDir.boolValue != wantDir {
                errors.append(SpecError("\(what) expects a \(wantDir ? "folder" : "file"), but \(url.path) is a \(isDir.boolValue ? "folder" : "file")", at: location(node)))
                return nil
            }
            // A FIFO would block the run for ever and a device (/dev/zero) never end its hash.
            var st = stat()
            if !wantDir, stat(url.path, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG {
                errors.append(SpecError("\(what): \(url.path) is not a regular file (a FIFO, device or socket); expected a file", at: location(node)))
                return nil
            }
            return .string(url.path)
        case .any:
            return Self.plainValue(node)
        }
    }

    func resolve(_ path: String) -> URL {
        let expanded = (path as NSString).expandingTildeInPath
        return URL(fileURLWithPath: expanded, relativeTo: baseDirectory).standardizedFileURL
    }

    private func plainScalar(_ node: Yams.Node) -> String? {
        guard let scalar = node.scalar, scalar.style == .plain else { return nil }
        return scalar.string
    }

    /// YAML → JSON-shaped value following the YAML core schema (quoted scalars are always strings).
    static func plainValue(_ node: Yams.Node) -> ParamValue {
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain {
                switch node.tagName {
                case .null: return .null
                case .bool: if let b = node.bool { return .bool(b) }
                case .int: if let i = node.int { return .int(i) }
                case .float: if let d = node.float { return .float(d) }
                default: break
                }
            }
            return .string(scalar.string)
        case .sequence(let seq): return .list(seq.map(plainValue))
        case .mapping(let map):
            var out: [String: ParamValue] = [:]
            for (k, v) in map { out[k.scalar?.string ?? "\(k)"] = plainValue(v) }
            return .map(out)
        case .alias: return .null
        }
    }
}

