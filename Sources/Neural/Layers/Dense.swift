import NICBasics
import Foundation

/// Fully connected layer, y = x Wᵀ + b, with W stored as PyTorch's [out, in].
public final class Dense: SkipsInputGradient {
    public let name: String
    public let inFeatures: Int, units: Int
    public let weight: Parameter
    public let bias: Parameter?
    private var input: Tensor?

    /// `inputImage`: the [H, W, C] image a Flatten before this layer turned into features; `outputImage`:
    /// the [H, W, C] a Reshape after it makes. nic flattens NHWC, PyTorch NCHW: on export the weight's
    /// columns (and rows, and bias) are reordered so the PyTorch model computes the same function.
    public init(name: String, inFeatures: Int, units: Int, bias useBias: Bool = true, l2: Float = 0,
                inputImage: [Int]? = nil, outputImage: [Int]? = nil, rng: inout Xoshiro256StarStar) {
        self.name = name
        self.inFeatures = inFeatures
        self.units = units
        let limit = Float((6.0 / Double(inFeatures + units)).squareRoot())
        let w = Tensor(shape: [units, inFeatures], data: (0..<(units * inFeatures)).map { _ in (rng.nextUnitFloat() * 2 - 1) * limit })
        let inImg = inputImage.flatMap { $0.count == 3 && $0.reduce(1, *) == inFeatures ? $0 : nil }
        let outImg = outputImage.flatMap { $0.count == 3 && $0.reduce(1, *) == units ? $0 : nil }
        weight = Parameter(
            key: name + ".weight", value: w, l2: l2, torchShape: [units, inFeatures],
            toTorch: { t in
                var r = t
                if let o = outImg { r = Conv2D.permute(r, [o[0], o[1], o[2], inFeatures], [2, 0, 1, 3]) }
                if let i = inImg { r = Conv2D.permute(r, [units, i[0], i[1], i[2]], [0, 3, 1, 2]) }
                return r
            },
            fromTorch: { t in
                var r = t
                if let i = inImg { r = Conv2D.permute(r, [units, i[2], i[0], i[1]], [0, 2, 3, 1]) }
                if let o = outImg { r = Conv2D.permute(r, [o[2], o[0], o[1], inFeatures], [1, 2, 0, 3]) }
                return r
            })
        bias = useBias ? Parameter(
            key: name + ".bias", value: Tensor(zeros: [units]),
            toTorch: { t in outImg.map { Conv2D.permute(t, $0, [2, 0, 1]) } ?? t },
            fromTorch: { t in outImg.map { Conv2D.permute(t, [$0[2], $0[0], $0[1]], [1, 2, 0]) } ?? t }) : nil
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    public func outputShape(_ s: [Int]) throws -> [Int] {
        guard s == [inFeatures] else { throw NeuralError.shapeMismatch(layer: name, expected: "[\(inFeatures)] (flatten images first)", got: s) }
        return [units]
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard x.rank == 2, x.shape[1] == inFeatures else {
            throw NeuralError.shapeMismatch(layer: name, expected: "[N, \(inFeatures)]", got: x.shape)
        }
        if training { input = x }
        let n = x.shape[0]
        let out = Tensor(uninitialized: [n, units]) { y, _ in
            if let bias {
                for row in 0..<n { bias.value.data.withUnsafeBufferPointer { (y + row * units).update(from: $0.baseAddress!, count: units) } }
            }
            x.data.withUnsafeBufferPointer { xp in
                weight.value.data.withUnsafeBufferPointer { wp in
                    BLAS.sgemm(transB: true, m: n, n: units, k: inFeatures, a: xp.baseAddress!, lda: inFeatures,
                               b: wp.baseAddress!, ldb: inFeatures, beta: bias == nil ? 0 : 1, c: y, ldc: units)
                }
            }
        }
        return out
    }

    func backward(_ dy: Tensor, inputGradient: Bool) throws -> Tensor {
        let x = try requireState(input)
        let n = x.shape[0]
        guard dy.shape == [n, units] else { throw NeuralError.shapeMismatch(layer: name, expected: "output gradient [\(n), \(units)]", got: dy.shape) }
        if let bias { Conv2D.addColumnSums(dy, into: bias) }
        var dx = Tensor(zeros: inputGradient ? x.shape : [0])
        dy.data.withUnsafeBufferPointer { dp in
            x.data.withUnsafeBufferPointer { xp in
                weight.grad.data.withUnsafeMutableBufferPointer { gp in
                    BLAS.sgemm(transA: true, m: units, n: inFeatures, k: n, a: dp.baseAddress!, lda: units,
                               b: xp.baseAddress!, ldb: inFeatures, beta: 1, c: gp.baseAddress!, ldc: inFeatures)
                }
            }
            if inputGradient { weight.value.data.withUnsafeBufferPointer { wp in
                dx.data.withUnsafeMutableBufferPointer { dxp in
                    BLAS.sgemm(m: n, n: inFeatures, k: units, a: dp.baseAddress!, lda: units,
                               b: wp.baseAddress!, ldb: inFeatures, c: dxp.baseAddress!, ldc: inFeatures)
                }
            } }
        }
        return dx
    }
}
