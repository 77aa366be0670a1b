/// Rewrites of a block's layer list into fused layers that compute the same values with fewer
/// passes over memory. Done once when a network is built (and when its switches change), so running
/// a network is a plain loop over layers. The fused layers own the original ones: parameters, their
/// names and what optimisers and the safetensors writer see (`Network.layers`) stay the same.
enum Fusion {
    /// LeakyReLU (α ≤ 1) directly followed by BatchNorm → LeakyBatchNorm.
    static func training(_ layers: [Layer]) -> [Layer] {
        var out: [Layer] = []
        var index = 0
        while index < layers.count {
            if let leaky = layers[index] as? LeakyReLU, leaky.alpha <= 1,
               index + 1 < layers.count, let norm = layers[index + 1] as? BatchNorm {
                out.append(LeakyBatchNorm(leaky, norm))
                index += 2
            } else {
                out.append(layers[index])
                index += 1
            }
        }
        return out
    }

    /// A convolution followed by LeakyReLU (α ≤ 1) and/or BatchNorm → ConvWithEpilogue.
    static func inference(_ layers: [Layer]) -> [Layer] {
        var out: [Layer] = []
        var index = 0
        while index < layers.count {
            let layer = layers[index]
            index += 1
            guard let conv = layer as? EpilogueConvolution else {
                out.append(layer)
                continue
            }
            var followers: [Layer] = []
            var sawLeaky = false, sawNorm = false
            while index < layers.count, followers.count < 2 {
                if let leaky = layers[index] as? LeakyReLU, !sawLeaky, leaky.alpha <= 1 {
                    sawLeaky = true
                } else if layers[index] is BatchNorm, !sawNorm {
                    sawNorm = true
                } else {
                    break
                }
                followers.append(layers[index])
                index += 1
            }
            out.append(followers.isEmpty ? conv : ConvWithEpilogue(conv, followers: followers))
        }
        return out
    }
}
