import NICBasics
import XCTest
@testable import Neural

/// Every convolution algorithm against the naive reference (Conv2D+Reference): forward in training
/// and inference, input, weight and bias gradients, with one worker and with batch shares.
final class ConvReferenceTests: XCTestCase {
    struct Case {
        let cin, filters: Int, kernel: (Int, Int), stride: Int, padding: Padding, groups: Int
        let algorithm: Conv2D.Algorithm
    }

    static let cases: [Case] = [
        Case(cin: 4, filters: 6, kernel: (3, 3), stride: 1, padding: .same, groups: 1, algorithm: .im2col),
        Case(cin: 5, filters: 7, kernel: (3, 3), stride: 2, padding: .valid, groups: 1, algorithm: .im2col),
        Case(cin: 3, filters: 5, kernel: (2, 3), stride: 2, padding: .same, groups: 1, algorithm: .im2col),
        Case(cin: 4, filters: 6, kernel: (3, 3), stride: 1, padding: .same, groups: 2, algorithm: .im2col),
        Case(cin: 2, filters: 4, kernel: (3, 3), stride: 2, padding: .same, groups: 2, algorithm: .im2col),  // depth multiplier 2
        Case(cin: 5, filters: 3, kernel: (1, 1), stride: 1, padding: .valid, groups: 1, algorithm: .pointwise),
        Case(cin: 3, filters: 16, kernel: (3, 3), stride: 2, padding: .same, groups: 1, algorithm: .direct),
        Case(cin: 3, filters: 72, kernel: (3, 3), stride: 1, padding: .valid, groups: 1, algorithm: .direct),  // 64 + 8 blocks
        Case(cin: 3, filters: 3, kernel: (3, 3), stride: 1, padding: .same, groups: 3, algorithm: .depthwise),
        Case(cin: 6, filters: 6, kernel: (3, 2), stride: 2, padding: .valid, groups: 6, algorithm: .depthwise),
    ]

    func testEveryAlgorithmEqualsTheReference() throws {
        for (index, c) in Self.cases.enumerated() {
            for bias in [true, false] {
                var rng = Xoshiro256StarStar(seed: UInt64(10 + index))
                let conv = try Conv2D(name: "c", inChannels: c.cin, filters: c.filters, kernel: c.kernel, stride: c.stride,
                                      padding: c.padding, groups: c.groups, bias: bias, rng: &rng)
                if let b = conv.bias { b.value = GradCheck.random(b.value.shape, seed: 3) }
                let x = GradCheck.random([5, 9, 8, c.cin], seed: UInt64(20 + index))
                let dy = GradCheck.random([5] + (try conv.outputShape([9, 8, c.cin])), seed: UInt64(30 + index))
                let what = "case \(index) (\(c.algorithm)) bias \(bias)"
                XCTAssertEqual(conv.algorithm, c.algorithm, what)
                let y = try conv.referenceForward(x)
                let truth = try conv.referenceBackward(x, dy)
                for threads in [1, 2] {
                    try ComputeContext(threads: threads).run {
                        XCTAssertLessThanOrEqual(try conv.forward(x, training: false).maxAbsDifference(y), 1e-5, what)
                        conv.parameters.forEach { $0.zeroGrad() }
                        XCTAssertLessThanOrEqual(try conv.forward(x, training: true).maxAbsDifference(y), 1e-5, what)
                        XCTAssertLessThanOrEqual(try conv.backward(dy).maxAbsDifference(truth.dx), 1e-5, what)
                        XCTAssertLessThanOrEqual(conv.weight.grad.maxAbsDifference(truth.dWeight), 1e-4, what)
                        if let b = conv.bias { XCTAssertLessThanOrEqual(b.grad.maxAbsDifference(truth.dBias), 1e-4, what) }
                        conv.parameters.forEach { $0.zeroGrad() }
                        _ = try conv.forward(x, training: true)
                        try conv.backwardParameters(dy)
                        XCTAssertLessThanOrEqual(conv.weight.grad.maxAbsDifference(truth.dWeight), 1e-4, what + " (parameters only)")
                    }
                }
            }
        }
    }

    /// The reference itself against the layout-independent definition, through PyTorch's weight
    /// layout [out, in/groups, kh, kw], and its backward against finite differences.
    func testReferenceIsTheDefinition() throws {
        var rng = Xoshiro256StarStar(seed: 1)
        let conv = try Conv2D(name: "c", inChannels: 4, filters: 6, kernel: (3, 2), stride: 2, padding: .same, groups: 2, rng: &rng)
        conv.bias!.value = GradCheck.random([6], seed: 2)
        let x = GradCheck.random([2, 5, 6, 4], seed: 3)
        let y = try conv.referenceForward(x)
        let gh = convGeometry(input: 5, kernel: 3, stride: 2, padding: .same), gw = convGeometry(input: 6, kernel: 2, stride: 2, padding: .same)
        let w = conv.weight.torchValue
        for n in 0..<2 { for oh in 0..<gh.out { for ow in 0..<gw.out { for o in 0..<6 {
            var acc = Double(conv.bias!.value.data[o])
            for ci in 0..<2 { for i in 0..<3 { for j in 0..<2 {
                let ih = oh * 2 - gh.padBefore + i, iw = ow * 2 - gw.padBefore + j
                guard ih >= 0, ih < 5, iw >= 0, iw < 6 else { continue }
                acc += Double(w.data[((o * 2 + ci) * 3 + i) * 2 + j]) * Double(x.data[((n * 5 + ih) * 6 + iw) * 4 + (o / 3) * 2 + ci])
            } } }
            XCTAssertEqual(y.data[((n * gh.out + oh) * gw.out + ow) * 6 + o], Float(acc), accuracy: 1e-5)
        } } } }
        // Backward: the directional derivative of Σ y·r along a random direction of x and of W.
        let r = GradCheck.random(y.shape, seed: 4)
        let (dx, dw, _) = try conv.referenceBackward(x, r)
        let h: Float = 1e-2
        let vx = GradCheck.random(x.shape, seed: 5), vw = GradCheck.random(conv.weight.value.shape, seed: 6)
        func loss(_ x: Tensor) throws -> Double { GradCheck.projection(try conv.referenceForward(x), r) }
        var xp = x, xm = x
        for i in 0..<x.count { xp.data[i] += h * vx.data[i]; xm.data[i] -= h * vx.data[i] }
        XCTAssertEqual((try loss(xp) - loss(xm)) / Double(2 * h), GradCheck.projection(dx, vx), accuracy: 1e-3)
        let w0 = conv.weight.value
        for i in 0..<w0.count { conv.weight.value.data[i] = w0.data[i] + h * vw.data[i] }
        let up = try loss(x)
        for i in 0..<w0.count { conv.weight.value.data[i] = w0.data[i] - h * vw.data[i] }
        let down = try loss(x)
        conv.weight.value = w0
        XCTAssertEqual((up - down) / Double(2 * h), GradCheck.projection(dw, vw), accuracy: 1e-3)
    }
}
