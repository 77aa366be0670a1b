extension Network {
    /// Joins two single-input networks: the second's layers follow the first's (a trunk and its head).
    /// Build the head with a `prefix` (e.g. "head") so that tensor names do not collide.
    public static func chain(_ trunk: Network, _ head: Network) throws -> Network {
        guard head.inputs.count == 1, head.inputs[0].shape == trunk.outputShape else {
            throw NeuralError.shapeMismatch(layer: "\(head.name) input", expected: "\(trunk.outputShape) (the output of \(trunk.name))", got: head.inputs.first?.shape ?? [])
        }
        var blocks = trunk.blocks
        for b in head.blocks {
            let sources = b.sources.map { $0 == head.inputs[0].name ? trunk.blocks.last!.name : $0 }
            guard !trunk.blocks.contains(where: { $0.name == b.name }) else {
                throw NeuralError.invalidArgument("chain: block '\(b.name)' is in both networks; build the head with a prefix")
            }
            blocks.append(Network.Block(name: b.name, sources: sources, layers: b.layers,
                                        inputShapes: b.inputShapes, outputShape: b.outputShape))
        }
        return Network(name: "\(trunk.name)+\(head.name)", inputs: trunk.inputs, blocks: blocks, compute: trunk.compute)
    }
}
