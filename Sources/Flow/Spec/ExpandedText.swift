import Foundation
import Yams

extension PipelineSpec {
    /// The pipeline with includes read, defaults applied and every template expanded, as a plain
    /// pipeline file: running it gives the same nodes with the same cache keys (`nic expand`).
    public var expandedYAML: String {
        var out = "# \(file) expanded by `nic expand`"
        if !included.isEmpty { out += " (includes \(included.joined(separator: ", ")))" }
        out += "\npipeline: \(Self.flow(.scalar(.init(name, .implicit, .plain))))\n"
        let inputs = nodes.filter(\.isPipelineInput), plain = nodes.filter { !$0.isPipelineInput }
        func params(_ node: NodeSpec) -> [String] { node.params.map { "\($0.name): \(Self.flow($0.value))" } }
        if !inputs.isEmpty {
            out += "\ninputs:\n"
            for node in inputs {
                out += "  \(node.name): {\((["kind: \(node.type)"] + params(node)).joined(separator: ", "))}\n"
            }
        }
        if !plain.isEmpty { out += "\nnodes:\n" }
        for node in plain {
            if let instance = node.instance {
                let axes = zip(instance.axes, instance.labels).map { "\($0)=\($1)" }.joined(separator: " ")
                out += "  # \(instance.template) (\(node.location))\(axes.isEmpty ? "" : ": " + axes)\n"
            }
            out += "  \(node.name):\n    type: \(node.type)\n"
            if !node.inputs.isEmpty {
                let bindings = node.inputs.map { "\($0.port): \($0.sourceNode)\($0.sourcePort.map { "." + $0 } ?? "")" }
                out += "    in: {\(bindings.joined(separator: ", "))}\n"
            }
            let p = params(node)
            if !p.isEmpty { out += "    params: {\(p.joined(separator: ", "))}\n" }
        }
        return out
    }

    /// One YAML value on one line (flow style), keeping what makes it a string or a number.
    static func flow(_ node: Yams.Node) -> String {
        switch node {
        case .scalar(let s):
            if s.style == .plain, node.tagName != .str { return s.string.isEmpty ? "null" : s.string }
            let special = CharacterSet(charactersIn: ",[]{}#&*!|>'\"%@`:")
            let plainSafe = s.style == .plain && !s.string.isEmpty && s.string.trimmingCharacters(in: .whitespaces) == s.string
                && s.string.unicodeScalars.first.map { !special.contains($0) && $0 != "-" && $0 != "?" } == true
                && !s.string.contains(": ") && !s.string.contains(" #") && !s.string.contains(",") && !s.string.contains("{")
                && !s.string.contains("}") && !s.string.contains("[") && !s.string.contains("]")
            if plainSafe { return s.string }
            if s.style == .plain && s.string.isEmpty { return "null" }
            return ParamValue.jsonQuoted(s.string)
        case .sequence(let seq): return "[" + seq.map(flow).joined(separator: ", ") + "]"
        case .mapping(let map): return "{" + map.map { "\(flow($0.key)): \(flow($0.value))" }.joined(separator: ", ") + "}"
        case .alias: return "null"
        }
    }
}
