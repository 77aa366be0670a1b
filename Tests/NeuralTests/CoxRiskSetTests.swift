import XCTest
@testable import Neural

/// The Cox loss over a whole risk set: its value against an outside reference (statsmodels' PHReg and
/// lifelines, computed once; /work notes in the test say how), Breslow and Efron ties, and the
/// gradient a step gives its members when the rest of the fold comes from the risk memory.
/// Ties as documented in README (Patient models, survival): Breslow lets every tied event see the
/// whole risk set; Efron removes the tied events' average share step by step.
final class CoxRiskSetTests: XCTestCase {
    /// 12 patients with tied times (2, 2; 4, 4, 4; 6, 6), tied events and censoring within ties.
    static let time: [Double] = [5, 2, 2, 9, 4, 4, 4, 7, 1, 6, 6, 3]
    static let event = [true, true, false, false, true, true, false, true, true, true, false, true]
    static let risk: [Float] = [0.3, -1.2, 0.8, 0.1, 1.5, -0.4, 0.0, 0.6, -0.9, 2.1, -0.7, 0.25]
    /// Partial log-likelihoods of `risk` (one covariate, coefficient 1) by scripts/cox_reference.py:
    /// `statsmodels.duration.hazard_regression.PHReg(time, f[:, None], status=event, ties=…).loglike([1.0])`
    /// (statsmodels 0.15) for Breslow and Efron, and lifelines 0.30.3's Efron log-likelihood at β = 1
    /// (`SemiParametricPHFitter._get_efron_values_single`), which printed the same Efron value to the last
    /// digit. The loss is −loglik / (number of events = 8).
    static let breslowLogLikelihood = -19.02752737417226
    static let efronLogLikelihood = -18.882586595170793

    func testFullRiskSetLossMatchesStatsmodelsAndLifelines() throws {
        let f = Tensor(shape: [12], data: Self.risk)
        let events = Double(Self.event.filter { $0 }.count)
        let breslow = try Loss.cox(risk: f, time: Self.time, event: Self.event, ties: .breslow)
        let efron = try Loss.cox(risk: f, time: Self.time, event: Self.event, ties: .efron)
        XCTAssertEqual(breslow.value, -Self.breslowLogLikelihood / events, accuracy: 1e-6)
        XCTAssertEqual(efron.value, -Self.efronLogLikelihood / events, accuracy: 1e-6)
        // The step's loss is the same full-set value whichever members are fresh: here every item is.
        let all = try Loss.coxRiskSet(risk: f, members: Array(0..<12), memory: [Float](repeating: 9, count: 12),
                                      time: Self.time, event: Self.event, ties: .efron)
        XCTAssertEqual(all.value, efron.value, accuracy: 1e-9)
        XCTAssertEqual(all.gradient.maxAbsDifference(efron.gradient), 0, accuracy: 1e-7)
    }

    func testMembersTakeTheFullSetGradientScaledToAnEpoch() throws {
        let memory = Self.risk
        // A batch of 4 with one item twice (two crops of a slide) and an item without an event.
        let members = [3, 9, 4, 9]
        let batch: [Float] = [0.5, 1.0, -0.2, 1.4]
        for ties in [CoxTies.breslow, .efron] {
            let r = try Loss.coxRiskSet(risk: Tensor(shape: [4], data: batch), members: members, memory: memory,
                                        time: Self.time, event: Self.event, ties: ties)
            // Value: the full set with 3 ← 0.5, 9 ← mean(1.0, 1.4) = 1.2, 4 ← −0.2.
            var f = memory
            f[3] = 0.5; f[9] = 1.2; f[4] = -0.2
            let full = try Loss.cox(risk: Tensor(shape: [12], data: f), time: Self.time, event: Self.event, ties: ties)
            XCTAssertEqual(r.value, full.value, accuracy: 1e-6)
            // Gradient: d value / d batch by central differences, times items/distinct members = 12/3.
            let h: Float = 1e-2
            for p in 0..<4 {
                var up = batch, down = batch
                up[p] += h; down[p] -= h
                let a = try Loss.coxRiskSet(risk: Tensor(shape: [4], data: up), members: members, memory: memory, time: Self.time, event: Self.event, ties: ties).value
                let b = try Loss.coxRiskSet(risk: Tensor(shape: [4], data: down), members: members, memory: memory, time: Self.time, event: Self.event, ties: ties).value
                let numeric = (a - b) / Double(2 * h) * 12 / 3
                XCTAssertEqual(Double(r.gradient.data[p]), numeric, accuracy: 1e-3, "\(ties) member \(p)")
            }
        }
        // A batch without any event still trains (the fold has events), and a member outside the set is an error.
        let censored = try Loss.coxRiskSet(risk: Tensor(shape: [2], data: [0, 0]), members: [2, 3], memory: memory,
                                           time: Self.time, event: Self.event)
        XCTAssertTrue(censored.gradient.data.allSatisfy { $0 > 0 }, "censored members are only pushed down")
        XCTAssertThrowsError(try Loss.coxRiskSet(risk: Tensor(shape: [1], data: [0]), members: [12], memory: memory, time: Self.time, event: Self.event))
    }

    func testHeadOptionParses() throws {
        func spec(_ loss: String) throws -> LossSpec {
            try LossSpec(try Architecture.parse(yaml: "layers: [{dense: 1}]\nloss: \(loss)\n", file: "head.yaml"))
        }
        XCTAssertEqual(try spec("{type: cox, ties: efron, risk_set: fold}"), .cox(ties: .efron, riskSet: .fold))
        XCTAssertEqual(try spec("{type: cox, ties: efron}"), .cox(ties: .efron, riskSet: .batch), "heads without the option keep the batch risk set")
        XCTAssertThrowsError(try spec("{type: cox, risk_set: everyone}")) { XCTAssertTrue("\($0)".contains("risk_set"), "\($0)") }
    }
}
