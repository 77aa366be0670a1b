import Foundation

/// A convolution that can finish its output with a per-channel epilogue in the pass that adds its
/// bias (Conv2D, and SeparableConv2D through its pointwise half). Inference only.
protocol EpilogueConvolution: Layer {
    func forward(_ x: Tensor, epilogue: Epilogue) throws -> Tensor
}

extension Conv2D: EpilogueConvolution {}
extension SeparableConv2D: EpilogueConvolution {}

/// A convolution followed by LeakyReLU and/or BatchNorm (in either order), made by
/// `Fusion.inference`: in inference the followers are folded into the convolution's output pass
/// (two fewer passes over each activation); in training they run one by one, as unfused.
final class ConvWithEpilogue: Layer {
    let conv: EpilogueConvolution
    /// LeakyReLU (α ≤ 1) and/or BatchNorm, at most one of each, in network order.
    let followers: [Layer]

    init(_ conv: EpilogueConvolution, followers: [Layer]) {
        // invariant: Fusion builds an epilogue only from a non-empty run of at most one LeakyReLU and one BatchNorm
        precondition(!followers.isEmpty && followers.count <= 2, "an epilogue folds one LeakyReLU and/or one BatchNorm")
        self.conv = conv
        self.followers = followers
    }

    /// The convolution's name: profiles count the fused pass as the convolution's time.
    var name: String { conv.name }
    var parameters: [Parameter] { conv.parameters + followers.flatMap(\.parameters) }
    var buffers: [Parameter] { conv.buffers + followers.flatMap(\.buffers) }

    func outputShape(_ input: [Int]) throws -> [Int] {
        try followers.reduce(conv.outputShape(input)) { try $1.outputShape($0) }
    }

    func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard training else { return try conv.forward(x, epilogue: epilogue()) }
        return try followers.reduce(conv.forward(x, training: true)) { try $1.forward($0, training: true) }
    }

    func backward(_ dy: Tensor) throws -> Tensor {
        try conv.backward(followersBackward(dy))
    }

    func backwardParameters(_ dy: Tensor) throws {
        try conv.backwardParameters(followersBackward(dy))
    }

    private func followersBackward(_ dy: Tensor) throws -> Tensor {
        try followers.reversed().reduce(dy) { try $1.backward($0) }
    }

    /// The followers as one per-channel map, from the batch norm's current running statistics.
    func epilogue() -> Epilogue {
        var e = Epilogue()
        var sawNorm = false
        let sawLeaky = followers.first is LeakyReLU
        for layer in followers {
            if let leaky = layer as? LeakyReLU {
                e.alpha = leaky.alpha
                e.leakyFirst = !sawNorm
            } else if let norm = layer as? BatchNorm {
                let (scale, shift) = norm.inferenceAffine()
                e.scale = scale
                e.shift = shift
                // Batch norm before any activation: out = leaky(y·s + b·s + t), the bias inside the shift.
                if !sawLeaky { e.leakyFirst = false }
                sawNorm = true
            }
        }
        return e
    }
}
