import NICBasics
import XCTest
@testable import Neural

/// Finite-difference checks in Float32. Why these tolerances: with central differences of step h the
/// truncation error is O(h²) (≈1e-4 relative at h = 1e-2 on these smooth, O(1)-scaled functions) and
/// the rounding error is ≈ ε₃₂·|L|/h ≈ 6e-8·10/1e-2 ≈ 6e-5; the loss itself is summed in Double. A 1e-2
/// relative tolerance is two orders above both and still catches any wrong index, sign or factor (those
/// give O(1) errors). Inputs of piecewise-linear layers are kept ≥ 2h away from kinks and ties.
enum GradCheck {
    static func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var rng = Xoshiro256StarStar(seed: seed)
        return Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in (rng.nextUnitFloat() * 2 - 1) * scale })
    }

    /// Values at least `gap` apart from each other and from zero (no kinks for ReLU/max within ±h).
    static func separated(_ shape: [Int], seed: UInt64, gap: Float = 0.05) -> Tensor {
        var rng = Xoshiro256StarStar(seed: seed)
        let n = shape.reduce(1, *)
        let perm = rng.permutation(n)
        return Tensor(shape: shape, data: perm.map { Float($0 - n / 2) * gap + gap / 2 })
    }

    static func projection(_ y: Tensor, _ r: Tensor) -> Double {
        var s = 0.0
        for i in 0..<y.count { s += Double(y.data[i]) * Double(r.data[i]) }
        return s
    }

    static func indices(_ count: Int, max: Int, seed: UInt64) -> [Int] {
        if count <= max { return Array(0..<count) }
        var rng = Xoshiro256StarStar(seed: seed)
        return Array(rng.permutation(count).prefix(max))
    }

    static func compare(_ analytic: [Float], _ numeric: [Float], tol: Float, _ what: String, file: StaticString, line: UInt) {
        let scale = max(analytic.map(abs).max() ?? 0, numeric.map(abs).max() ?? 0, 1e-3)
        var worst: Float = 0, at = 0
        for i in 0..<analytic.count where abs(analytic[i] - numeric[i]) > worst {
            worst = abs(analytic[i] - numeric[i]); at = i
        }
        XCTAssertLessThan(worst / scale, tol, "\(what): analytic \(analytic[at]) vs numeric \(numeric[at]) (scale \(scale))", file: file, line: line)
        XCTAssertGreaterThan(numeric.map(abs).max() ?? 0, 0, "\(what): numeric gradient is all zero, the check proves nothing", file: file, line: line)
    }

    /// Checks d(Σ r·f(x))/dx and /dθ for every parameter of `network` (inputs and parameters).
    static func check(_ network: Network, inputs: [Tensor], h: Float = 1e-2, tol: Float = 1e-2, samples: Int = 60,
                      prepare: () -> Void = {}, file: StaticString = #filePath, line: UInt = #line) throws {
        let y0 = try network.forward(inputs, training: true)
        prepare()
        let r = random(y0.shape, seed: 99)
        network.zeroGrad()
        _ = try network.forward(inputs, training: true)
        let dxs = try network.backward(r)
        func loss(_ xs: [Tensor]) throws -> Double { projection(try network.forward(xs, training: true), r) }
        for (k, x) in inputs.enumerated() {
            let idx = indices(x.count, max: samples, seed: 5 + UInt64(k))
            var numeric: [Float] = []
            for i in idx {
                var xs = inputs
                xs[k].data[i] = x.data[i] + h
                let up = try loss(xs)
                xs[k].data[i] = x.data[i] - h
                let down = try loss(xs)
                numeric.append(Float((up - down) / (2 * Double(h))))
            }
            compare(idx.map { dxs[k].data[$0] }, numeric, tol: tol, "input \(k)", file: file, line: line)
        }
        for p in network.parameters {
            let analytic = p.grad.data
            let idx = indices(p.value.count, max: samples, seed: 7)
            let numeric = try numericGradient(p, at: idx, h: h) { try loss(inputs) }
            compare(idx.map { analytic[$0] }, numeric, tol: tol, p.key, file: file, line: line)
        }
    }

    /// d loss / d θᵢ by central differences for the entries `indices` of one parameter (restored after).
    static func numericGradient(_ p: Parameter, at indices: [Int], h: Float, loss: () throws -> Double) rethrows -> [Float] {
        try indices.map { i in
            let v = p.value.data[i]
            p.value.data[i] = v + h
            let up = try loss()
            p.value.data[i] = v - h
            let down = try loss()
            p.value.data[i] = v
            return Float((up - down) / (2 * Double(h)))
        }
    }

    /// A single layer as a one-block network.
    static func check(_ layer: Layer, input: Tensor, h: Float = 1e-2, tol: Float = 1e-2, prepare: () -> Void = {},
                      file: StaticString = #filePath, line: UInt = #line) throws {
        let shape = Array(input.shape.dropFirst())
        let block = Network.Block(name: "layers", sources: ["input"], layers: [layer], inputShapes: [shape], outputShape: try layer.outputShape(shape))
        let net = Network(name: "check", inputs: [("input", shape)], blocks: [block])
        try check(net, inputs: [input], h: h, tol: tol, prepare: prepare, file: file, line: line)
    }

    /// d loss / d prediction by central differences in Double on a Float tensor.
    static func checkLoss(_ prediction: Tensor, h: Float = 1e-3, tol: Float = 1e-3, file: StaticString = #filePath, line: UInt = #line,
                          _ f: (Tensor) throws -> (Double, Tensor)) rethrows {
        let (_, g) = try f(prediction)
        var numeric: [Float] = []
        for i in 0..<prediction.count {
            var p = prediction
            p.data[i] += h
            let up = try f(p).0
            p.data[i] = prediction.data[i] - h
            let down = try f(p).0
            numeric.append(Float((up - down) / (2 * Double(h))))
        }
        compare(g.data, numeric, tol: tol, "loss gradient", file: file, line: line)
    }
}
