import ArgumentParser
import Flow
import Foundation

struct OutputCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "output",
        abstract: "Print the cache folder holding a node's output (for scripts: cat \"$(nic output p.yaml node)\"/file).")

    @Argument(help: "The pipeline YAML file.") var file: String
    @Argument(help: "The node.") var node: String
    @Argument(help: "The output port (default: the node's only output).") var port: String?
    @OptionGroup var cacheOption: CacheOption

    func run() throws {
        let graph = try loadGraph(file)
        guard let graphNode = graph.node(named: node) else {
            throw ValidationError("no node '\(node)' in pipeline '\(graph.spec.name)'; nodes: \(graph.nodes.map(\.name).joined(separator: ", "))")
        }
        let outputs = graphNode.type.outputs.map(\.name)
        let chosen = port ?? (outputs.count == 1 ? outputs[0] : nil)
        guard let chosen, outputs.contains(chosen) else {
            throw ValidationError("node '\(node)' has outputs \(outputs.joined(separator: ", ")); name one")
        }
        let plan = try Planner.plan(graph, cache: try cacheOption.open(.existing))
        guard let entry = plan.node(named: node)?.entry else {
            standardError("node '\(node)' has no cached output for the current spec; run `nic run \(file)` first")
            throw ExitCode(ExitStatus.failed)
        }
        print(entry.appendingPathComponent(chosen).path)
    }
}
