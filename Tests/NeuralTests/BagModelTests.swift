import NICBasics
import XCTest
@testable import Neural

final class BagModelTests: XCTestCase {
    /// Three bags, one with masked instances: d(Σ r·pooled)/d(instances, attention weights) by central
    /// differences, for every pooling kind.
    func testPoolingGradientsIncludingMasking() throws {
        let bags = [0..<4, 4..<9, 9..<12]
        let mask = [true, true, false, true, true, true, true, false, true, true, true, true]
        for kind in [BagPooling.Kind.mean, .attention(hidden: 5), .gatedAttention(hidden: 5)] {
            let pool = try BagPooling(kind: kind, features: 6, dropout: 0.25, seed: 3)
            let x = GradCheck.random([12, 6], seed: 4)
            let r = GradCheck.random([3, 6], seed: 5)
            pool.parameters.forEach { $0.zeroGrad() }
            _ = try pool.forward(x, bags: bags, mask: mask, training: true)
            pool.freezeDropout()
            pool.parameters.forEach { $0.zeroGrad() }
            _ = try pool.forward(x, bags: bags, mask: mask, training: true)
            let dx = try pool.backward(r)
            func loss(_ input: Tensor) throws -> Double {
                GradCheck.projection(try pool.forward(input, bags: bags, mask: mask, training: true).pooled, r)
            }
            let h: Float = 1e-2
            var numeric: [Float] = []
            for i in 0..<x.count {
                var up = x, down = x
                up.data[i] += h
                down.data[i] -= h
                numeric.append(Float((try loss(up) - loss(down)) / (2 * Double(h))))
            }
            GradCheck.compare(dx.data, numeric, tol: 1e-2, "\(kind) instances", file: #filePath, line: #line)
            for masked in [2, 7] {
                XCTAssertEqual(dx.data[(masked * 6)..<(masked * 6 + 6)].map(abs).max(), 0, "\(kind): a masked instance gets no gradient")
            }
            for p in pool.parameters {
                if p.key.hasSuffix("attention_c.bias") {
                    // The softmax does not change when every logit shifts: this bias has no gradient.
                    XCTAssertEqual(p.grad.data[0], 0, accuracy: 1e-6)
                    continue
                }
                let numeric = try GradCheck.numericGradient(p, at: Array(0..<p.value.count), h: h) { try loss(x) }
                GradCheck.compare(p.grad.data, numeric, tol: 1e-2, p.key, file: #filePath, line: #line)
            }
        }
    }

    /// Instance layers, gated attention, layers after the pool and the head, end to end.
    func testBagModelGradientsEndToEnd() throws {
        let arch = try Architecture.parse(yaml: "layers: [{dense: 5}, tanh]\npool: {type: gated_attention, hidden: 4}\nafter: [{dense: 3}, tanh]\n", file: "mil.yaml")
        let head = try Architecture.parse(yaml: "layers: [{dense: 2}]\n", file: "head.yaml")
        let model = try BagModel(architecture: arch, features: 6, head: head, seed: 9)
        XCTAssertEqual(model.stateDict().map(\.0).filter { $0.hasPrefix("after.") }, ["after.0.weight", "after.0.bias"])
        let x = GradCheck.random([11, 6], seed: 4), bags = [0..<5, 5..<11]
        let r = GradCheck.random([2, 2], seed: 5)
        func loss() throws -> Double { GradCheck.projection(try model.forward(x, bags: bags, training: true).output, r) }
        model.parameters.forEach { $0.zeroGrad() }
        _ = try model.forward(x, bags: bags, training: true)
        try model.backward(r)
        let h: Float = 1e-2
        for p in model.parameters where !p.key.hasSuffix("attention_c.bias") {
            let numeric = try GradCheck.numericGradient(p, at: Array(0..<p.value.count), h: h, loss: loss)
            GradCheck.compare(p.grad.data, numeric, tol: 1e-2, p.key, file: #filePath, line: #line)
        }
    }

    func testMaskedInstancesDoNotChangeTheOutput() throws {
        let model = try makeModel(pool: "gated_attention", features: 6)
        var x = GradCheck.random([10, 6], seed: 1)
        let mask = (0..<10).map { $0 % 3 != 0 }
        let before = try model.forward(x, bags: [0..<10], mask: mask, training: false)
        for i in 0..<10 where !mask[i] { for j in 0..<6 { x.data[i * 6 + j] = 100 } }
        let after = try model.forward(x, bags: [0..<10], mask: mask, training: false)
        XCTAssertEqual(before.output, after.output)
        XCTAssertEqual((0..<10).filter { !mask[$0] }.map { after.attention[$0] }, [0, 0, 0, 0])
    }

    func testShufflingABagLeavesItsOutputUnchanged() throws {
        for pool in ["mean", "attention", "gated_attention"] {
            let model = try makeModel(pool: pool, features: 6)
            let x = GradCheck.random([40, 6], seed: 2)
            var rng = Xoshiro256StarStar(seed: 3)
            let order = rng.permutation(40)
            let shuffled = x.gather(order)
            let a = try model.forward(x, bags: [0..<40], training: false)
            let b = try model.forward(shuffled, bags: [0..<40], training: false)
            XCTAssertEqual(a.output.data[0], b.output.data[0], accuracy: 1e-5, pool)
            for (k, i) in order.enumerated() { XCTAssertEqual(b.attention[k], a.attention[i], accuracy: 1e-6) }
        }
    }

    /// The chunked, online-softmax prediction of one bag equals the whole-bag forward.
    func testStreamingPredictionEqualsWholeBag() throws {
        let model = try makeModel(pool: "gated_attention", features: 6)
        let x = GradCheck.random([53, 6], seed: 6, scale: 3)
        let whole = try model.forward(x, bags: [0..<53], training: false)
        let streamed = try model.predict(count: 53, chunk: 7) { x.items($0) }
        XCTAssertEqual(streamed.output[0], whole.output.data[0], accuracy: 1e-5)
        for i in 0..<53 { XCTAssertEqual(streamed.attention[i], whole.attention[i], accuracy: 1e-6) }
    }

    /// Bags of instances of four types; a bag is positive when it holds instances of the key type.
    /// Gated attention learns the label (held-out AUC > 0.95) and puts most of its attention on the key.
    func testPlantedSignalIsFoundAndAttended() throws {
        let features = 8
        var rng = Xoshiro256StarStar(seed: 21)
        let centres = (0..<4).map { _ in (0..<features).map { _ in rng.nextNormal() * 2 } }
        func bag(positive: Bool) -> (cells: [Float], key: [Bool]) {
            let n = 20 + Int(rng.next() % 30)
            let keys = positive ? 1 + Int(rng.next() % 4) : 0
            var cells: [Float] = [], key: [Bool] = []
            for i in 0..<n {
                let type = i < keys ? 0 : 1 + Int(rng.next() % 3)
                cells += centres[type].map { $0 + rng.nextNormal() * 0.5 }
                key.append(type == 0)
            }
            return (cells, key)
        }
        let train = (0..<120).map { i in (bag(positive: i % 2 == 0), i % 2 == 0) }
        let test = (0..<60).map { i in (bag(positive: i % 2 == 1), i % 2 == 1) }
        let model = try makeModel(pool: "gated_attention", features: features, layers: "[{dense: 16}, relu]")
        let optimizer = Adam(learningRate: 3e-3)
        for _ in 0..<30 {
            for start in stride(from: 0, to: train.count, by: 4) {
                let batch = train[start..<min(train.count, start + 4)]
                var cells: [Float] = [], bags: [Range<Int>] = []
                for (b, _) in batch {
                    let lower = cells.count / features
                    cells += b.cells
                    bags.append(lower..<(cells.count / features))
                }
                let x = Tensor(shape: [cells.count / features, features], data: cells)
                model.parameters.forEach { $0.zeroGrad() }
                let (output, _) = try model.forward(x, bags: bags, training: true)
                let loss = try Loss.binaryCrossEntropy(logits: output, targets: batch.map { $0.1 ? 1 : 0 })
                try model.backward(loss.gradient)
                optimizer.step(model.parameters)
            }
        }
        var scores: [(Float, Bool)] = [], keyMass: [Float] = []
        for (b, label) in test {
            let n = b.cells.count / features
            let (output, attention) = try model.predict(count: n, chunk: 16) { r in
                Tensor(shape: [r.count, features], data: Array(b.cells[(r.lowerBound * features)..<(r.upperBound * features)]))
            }
            scores.append((output[0], label))
            if label { keyMass.append(zip(attention, b.key).filter { $0.1 }.map { $0.0 }.reduce(0, +)) }
        }
        let positives = scores.filter { $0.1 }.map { $0.0 }, negatives = scores.filter { !$0.1 }.map { $0.0 }
        let auc = Double(positives.map { p in negatives.filter { $0 < p }.count }.reduce(0, +)) / Double(positives.count * negatives.count)
        XCTAssertGreaterThan(auc, 0.95)
        let meanMass = keyMass.reduce(0, +) / Float(keyMass.count)
        XCTAssertGreaterThan(meanMass, 0.5, "attention on the key instances of positive bags (they are 2–20 % of a bag)")
    }

    func testPoolEntryErrorsAreLocated() throws {
        XCTAssertThrowsError(try Architecture.parse(yaml: "input: [4]\nlayers: []\npool: {type: max}\n", file: "mil.yaml")) { error in
            XCTAssertTrue("\(error)".contains("mil.yaml:3"), "\(error)")
            XCTAssertTrue("\(error)".contains("mean, attention or gated_attention"), "\(error)")
        }
    }

    private func makeModel(pool: String, features: Int, layers: String = "[]") throws -> BagModel {
        let arch = try Architecture.parse(yaml: "input: [\(features)]\nlayers: \(layers)\npool: {type: \(pool), hidden: 8}\n", file: "mil.yaml")
        let head = try Architecture.parse(yaml: "layers: [{dense: 1}]\n", file: "head.yaml")
        return try BagModel(architecture: arch, features: features, head: head, seed: 7)
    }
}
