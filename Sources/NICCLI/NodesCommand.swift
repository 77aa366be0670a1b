import ArgumentParser
import Flow
import Foundation

struct NodesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nodes", abstract: "List node types with their ports and params.")

    @Argument(help: "Show only these types.") var types: [String] = []

    func run() throws {
        let registry = NICEnvironment.registry
        for name in types where registry[name] == nil {
            throw ValidationError("unknown node type '\(name)'; known: \(registry.names.joined(separator: ", "))")
        }
        let shown = types.isEmpty ? registry.names : types
        for (i, name) in shown.enumerated() {
            let type = registry[name]!  // invariant: name taken from the registry's names
            if i > 0 { print("") }
            print("\(type.name) (v\(type.version)) – \(type.summary)")
            if !type.inputs.isEmpty {
                print("  inputs:")
                for port in type.inputs { print("    \(port.name): \(port.type)\(port.optional ? " (optional)" : "") – \(port.doc)") }
            }
            print("  outputs:")
            for port in type.outputs { print("    \(port.name): \(port.type) – \(port.doc)") }
            if !type.params.isEmpty {
                print("  params:")
                for param in type.params {
                    let requirement = param.defaultValue.map { $0.isNull ? "optional" : "default \($0.canonicalJSON)" } ?? "required"
                    let rules = (param.checks.map(\.description) + (param.readWhen.map { ["only with \($0)"] } ?? [])).map { ", " + $0 }.joined()
                    print("    \(param.name): \(param.type)\(rules), \(requirement) – \(param.doc)")
                }
            }
        }
    }
}
