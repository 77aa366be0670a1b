import XCTest
@testable import Neural

final class LossTests: XCTestCase {
    func testCoxBreslowHandComputedNoTies() throws {
        // f = 0: each event's risk set has |R| members, term = log|R|. Times 1,2,3 all events:
        // (log 3 + log 2 + log 1)/3.
        let r = try Loss.cox(risk: Tensor(zeros: [3]), time: [1, 2, 3], event: [true, true, true])
        XCTAssertEqual(r.value, log(6.0) / 3, accuracy: 1e-12)
        // Censoring: times 1,2,3 with events at 1 and 3 only, f = (ln 2, 0, ln 3):
        // i=1: −(ln2 − ln(2+1+3)); i=3: −(ln3 − ln3) → (ln 6 − ln 2)/2 = ln(3)/2
        let c = try Loss.cox(risk: Tensor(shape: [3], data: [Float(log(2.0)), 0, Float(log(3.0))]), time: [1, 2, 3], event: [true, false, true])
        XCTAssertEqual(c.value, log(3.0) / 2, accuracy: 1e-6)
        // gradient: dL/df_k = (1/|D|)[exp(f_k)·Σ_{i∈D, t_i ≤ t_k} 1/S_i − δ_k], S_1 = 6, S_3 = 3
        XCTAssertEqual(Double(c.gradient.data[0]), (2.0 / 6 - 1) / 2, accuracy: 1e-6)
        XCTAssertEqual(Double(c.gradient.data[1]), (1.0 / 6) / 2, accuracy: 1e-6)
        XCTAssertEqual(Double(c.gradient.data[2]), (3.0 / 6 + 3.0 / 3 - 1) / 2, accuracy: 1e-6)
    }

    func testCoxTiesBreslowVersusEfron() throws {
        // f = 0, times (1, 1, 2), all events. Breslow: both tied events see S = 3 → (2 ln 3 + ln 1)/3.
        // Efron: ln 3 + ln(3 − ½·2) for the tie → (ln 3 + ln 2)/3.
        let f = Tensor(zeros: [3])
        XCTAssertEqual(try Loss.cox(risk: f, time: [1, 1, 2], event: [true, true, true], ties: .breslow).value, 2 * log(3.0) / 3, accuracy: 1e-12)
        XCTAssertEqual(try Loss.cox(risk: f, time: [1, 1, 2], event: [true, true, true], ties: .efron).value, log(6.0) / 3, accuracy: 1e-12)
        // Unsorted input gives the same value (the batch is sorted inside), and without ties both agree.
        let g = Tensor(shape: [4], data: [0.3, -1.2, 0.8, 0.1])
        let a = try Loss.cox(risk: g, time: [5, 2, 9, 4], event: [true, true, false, true], ties: .breslow)
        let b = try Loss.cox(risk: g, time: [5, 2, 9, 4], event: [true, true, false, true], ties: .efron)
        XCTAssertEqual(a.value, b.value, accuracy: 1e-12)
        // Efron by hand with scores: f = (ln 2, ln 1, ln 3) at times (1, 1, 2), events (1, 1, 0):
        // tie group: S = 6, H = 3 → −[ln2 + 0] + ln 6 + ln(6 − 3/2); one... |D| = 2.
        let e = try Loss.cox(risk: Tensor(shape: [3], data: [Float(log(2.0)), 0, Float(log(3.0))]), time: [1, 1, 2], event: [true, true, false], ties: .efron)
        XCTAssertEqual(e.value, (-log(2.0) + log(6.0) + log(4.5)) / 2, accuracy: 1e-6)
    }

    func testCoxIsStableForLargeScores() throws {
        // Shifting every score by a constant leaves the partial likelihood unchanged; exp(1000) would overflow.
        let base: [Float] = [0.5, -0.2, 1.0, 0.3]
        let t: [Double] = [3, 1, 2, 2]
        let ev = [true, true, false, true]
        for ties in [CoxTies.breslow, .efron] {
            let a = try Loss.cox(risk: Tensor(shape: [4], data: base), time: t, event: ev, ties: ties)
            let b = try Loss.cox(risk: Tensor(shape: [4], data: base.map { $0 + 1000 }), time: t, event: ev, ties: ties)
            XCTAssertEqual(a.value, b.value, accuracy: 1e-3)
            XCTAssertEqual(a.gradient.maxAbsDifference(b.gradient), 0, accuracy: 1e-3)
        }
        XCTAssertThrowsError(try Loss.cox(risk: Tensor(zeros: [2]), time: [1, 2], event: [false, false]))
    }

    func testCoxGradients() throws {
        let f = GradCheck.random([7], seed: 3, scale: 2)
        let t: [Double] = [4, 2, 2, 7, 2, 5, 4]
        let ev = [true, true, true, false, false, true, true]
        for ties in [CoxTies.breslow, .efron] {
            try GradCheck.checkLoss(f) { p in let r = try Loss.cox(risk: p, time: t, event: ev, ties: ties); return (r.value, r.gradient) }
        }
    }

    func testRegressionAndClassificationLosses() throws {
        let p = GradCheck.random([6], seed: 1, scale: 2)
        let y: [Float] = [0.5, .nan, -1, 2, 0, 1]
        let mse = try Loss.meanSquaredError(p, y)
        let expected = zip(p.data, y).filter { !$1.isNaN }.map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +) / 5
        XCTAssertEqual(mse.value, expected, accuracy: 1e-6)
        XCTAssertEqual(mse.gradient.data[1], 0)
        try GradCheck.checkLoss(p) { q in let r = try Loss.meanSquaredError(q, y); return (r.value, r.gradient) }

        let t: [Float] = [1, 0, .nan, 1, 0, 0.3]
        let bce = try Loss.binaryCrossEntropy(logits: Tensor(shape: [6], data: [0, 0, 5, 0, 0, 0]), targets: t)
        XCTAssertEqual(bce.value, log(2.0), accuracy: 1e-9)  // every labelled logit is 0 → ln 2
        try GradCheck.checkLoss(p) { q in let r = try Loss.binaryCrossEntropy(logits: q, targets: t, positiveWeight: 2); return (r.value, r.gradient) }
        // stable at extreme logits
        XCTAssertEqual(try Loss.binaryCrossEntropy(logits: Tensor(shape: [1], data: [-200]), targets: [1]).value, 200, accuracy: 1e-9)

        let logits = GradCheck.random([4, 3], seed: 2, scale: 2)
        let labels = [2, -1, 0, 2]
        let w: [Float] = [1, 2, 0.5]
        let ce = try Loss.softmaxCrossEntropy(logits: logits, labels: labels, classWeights: w)
        var num = 0.0, den = 0.0
        for (i, l) in labels.enumerated() where l >= 0 {
            let row = (0..<3).map { Double(logits.data[i * 3 + $0]) }
            num += Double(w[l]) * (log(row.map(exp).reduce(0, +)) - row[l])
            den += Double(w[l])
        }
        XCTAssertEqual(ce.value, num / den, accuracy: 1e-6)
        XCTAssertEqual(Array(ce.gradient.data[3..<6]), [0, 0, 0], "missing label contributes nothing")
        try GradCheck.checkLoss(logits) { q in let r = try Loss.softmaxCrossEntropy(logits: q, labels: labels, classWeights: w); return (r.value, r.gradient) }
        XCTAssertThrowsError(try Loss.softmaxCrossEntropy(logits: logits, labels: [3, 0, 0, 0]))
    }

    func testKLGANAndContrastive() throws {
        let stats = GradCheck.random([3, 4], seed: 4)
        let kl = try Loss.gaussianKL(stats, weight: 5e-5)
        XCTAssertEqual(try Loss.gaussianKL(Tensor(zeros: [2, 6])).value, 0, accuracy: 1e-12)  // N(0, 1) costs nothing
        XCTAssertGreaterThan(kl.value, 0)
        try GradCheck.checkLoss(stats) { q in let r = try Loss.gaussianKL(q, weight: 0.7); return (r.value, r.gradient) }

        let real = GradCheck.random([4, 1], seed: 5, scale: 2), fake = GradCheck.random([4, 1], seed: 6, scale: 2)
        try GradCheck.checkLoss(real) { q in let r = try Loss.ganDiscriminator(realLogits: q, fakeLogits: fake); return (r.value, r.real) }
        try GradCheck.checkLoss(fake) { q in let r = try Loss.ganDiscriminator(realLogits: real, fakeLogits: q); return (r.value, r.fake) }
        try GradCheck.checkLoss(fake) { q in let r = try Loss.ganGenerator(fakeLogits: q); return (r.value, r.gradient) }

        let a = GradCheck.random([4, 3], seed: 7), b = GradCheck.random([4, 3], seed: 8)
        let same = [true, false, false, true]
        try GradCheck.checkLoss(a) { q in let r = try Loss.contrastive(q, b, same: same, margin: 1.5); return (r.value, r.a) }
        try GradCheck.checkLoss(b) { q in let r = try Loss.contrastive(a, q, same: same, margin: 1.5); return (r.value, r.b) }
    }
}
