import Foundation

/// A trainable tensor (or a running statistic) with its gradient. `key` is the safetensors name in
/// PyTorch's state_dict convention, e.g. `layers.0.weight`.
public final class Parameter {
    public let key: String
    public var value: Tensor
    public var grad: Tensor
    /// L2 coefficient: the optimiser adds `l2 · value` to the gradient (Keras regularizer / torch weight_decay).
    public var l2: Float
    /// Shape in PyTorch layout; `toTorch`/`fromTorch` convert the data between the two layouts.
    public let torchShape: [Int]
    let toTorch: (Tensor) -> Tensor
    let fromTorch: (Tensor) -> Tensor

    public init(key: String, value: Tensor, l2: Float = 0, torchShape: [Int]? = nil,
                toTorch: @escaping (Tensor) -> Tensor = { $0 }, fromTorch: @escaping (Tensor) -> Tensor = { $0 }) {
        self.key = key
        self.value = value
        self.grad = Tensor(zeros: value.shape)
        self.l2 = l2
        self.torchShape = torchShape ?? value.shape
        self.toTorch = toTorch
        self.fromTorch = fromTorch
    }

    public func zeroGrad() {
        grad.data.withUnsafeMutableBufferPointer { p in
            guard let base = p.baseAddress else { return }
            base.update(repeating: 0, count: p.count)
        }
    }

    /// The value in PyTorch layout, for export.
    public var torchValue: Tensor {
        var t = toTorch(value)
        t.shape = torchShape
        return t
    }

    /// The gradient in PyTorch layout (what `param.grad` holds in PyTorch after backward).
    public var torchGrad: Tensor {
        var t = toTorch(grad)
        t.shape = torchShape
        return t
    }

    /// Sets the value from a tensor in PyTorch layout.
    public func setTorchValue(_ t: Tensor) {
        var v = fromTorch(Tensor(shape: torchShape, data: t.data))
        v.shape = value.shape
        value = v
    }
}

/// One step of a network. Images are NHWC; shapes given to `outputShape` exclude the batch axis.
public protocol Layer: AnyObject {
    /// The safetensors prefix of this layer's tensors, e.g. `layers.3`.
    var name: String { get }
    /// Output item shape for an input item shape; throws naming the layer when it cannot take it.
    func outputShape(_ input: [Int]) throws -> [Int]
    /// With `training: false` the layer keeps nothing for backward, does no training-only work and
    /// mutates nothing, so chunks of a batch may run through it on several threads at once.
    func forward(_ x: Tensor, training: Bool) throws -> Tensor
    /// Gradient of the loss w.r.t. the input of the last training forward; adds parameter gradients.
    func backward(_ dy: Tensor) throws -> Tensor
    /// Only the parameter gradients, for a first layer whose input gradient nobody needs.
    func backwardParameters(_ dy: Tensor) throws
    /// Trainable tensors.
    var parameters: [Parameter] { get }
    /// Saved but not trained (batch-norm running statistics).
    var buffers: [Parameter] { get }
}

extension Layer {
    public func backwardParameters(_ dy: Tensor) throws { _ = try backward(dy) }
    public var parameters: [Parameter] { [] }
    public var buffers: [Parameter] { [] }

    func requireState<T>(_ state: T?) throws -> T {
        guard let state else { throw NeuralError.noForwardState(layer: name) }
        return state
    }

    func checkRank(_ x: Tensor, _ rank: Int, _ what: String) throws {
        guard x.rank == rank else { throw NeuralError.shapeMismatch(layer: name, expected: what, got: x.shape) }
    }
}

/// A layer whose backward can skip the input gradient (a GEMM and its scatter, for a first layer):
/// it writes one `backward(_:inputGradient:)` and gets both `Layer` entry points.
protocol SkipsInputGradient: Layer {
    func backward(_ dy: Tensor, inputGradient: Bool) throws -> Tensor
}

extension SkipsInputGradient {
    public func backward(_ dy: Tensor) throws -> Tensor { try backward(dy, inputGradient: true) }
    public func backwardParameters(_ dy: Tensor) throws { _ = try backward(dy, inputGradient: false) }
}

/// Element-wise helpers shared by the layers, parallel over large arrays.
enum Elementwise {
    @inline(__always)
    static func map(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
        Tensor(uninitialized: x.shape) { out, n in
            x.data.withUnsafeBufferPointer { xp in
                let src = xp.baseAddress!
                parallelRanges(n, minimum: 1 << 15) { r in
                    for i in r { out[i] = f(src[i]) }
                }
            }
        }
    }

    @inline(__always)
    static func zip(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        precondition(a.count == b.count)  // invariant: callers zip a tensor with its own gradient or a same-shaped layer output
        return Tensor(uninitialized: a.shape) { out, n in
            a.data.withUnsafeBufferPointer { ap in
                b.data.withUnsafeBufferPointer { bp in
                    let pa = ap.baseAddress!, pb = bp.baseAddress!
                    parallelRanges(n, minimum: 1 << 15) { r in
                        for i in r { out[i] = f(pa[i], pb[i]) }
                    }
                }
            }
        }
    }
}
