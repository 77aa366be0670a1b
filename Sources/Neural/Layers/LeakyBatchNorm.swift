import Foundation

/// LeakyReLU then BatchNorm as one training layer: the batch norm normalises z = LeakyReLU_α(x) read
/// straight from x, so the activation's output is never stored (one tensor fewer to write, read and
/// keep), and backward returns the gradient for x through both (BatchNorm.forward(_:training:leakyAlpha:)).
/// Made by `Fusion.training`; the two layers it owns keep their names and parameters.
final class LeakyBatchNorm: Layer {
    let leaky: LeakyReLU
    let norm: BatchNorm

    init(_ leaky: LeakyReLU, _ norm: BatchNorm) {
        // invariant: Fusion fuses a LeakyReLU into batch norm only when its α ≤ 1
        precondition(leaky.alpha <= 1, "max(x, αx) is LeakyReLU only for α ≤ 1")
        self.leaky = leaky
        self.norm = norm
    }

    /// The batch norm's name: errors and profiles name the layer whose output this is.
    var name: String { norm.name }
    var parameters: [Parameter] { norm.parameters }
    var buffers: [Parameter] { norm.buffers }

    func outputShape(_ input: [Int]) throws -> [Int] { try norm.outputShape(leaky.outputShape(input)) }

    func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard training else { return try norm.forward(leaky.forward(x, training: false), training: false) }
        return try norm.forward(x, training: true, leakyAlpha: leaky.alpha)
    }

    /// The batch norm saved x and α, so its backward already is the gradient for x.
    func backward(_ dy: Tensor) throws -> Tensor { try norm.backward(dy) }
}
