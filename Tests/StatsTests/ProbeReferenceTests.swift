import NICBasics
import Foundation
import Stats
import XCTest

/// The linear probe's fits against scikit-learn (`Ridge`, `LogisticRegression`, binary and
/// multinomial) and lifelines (`CoxPHFitter(penalizer:, l1_ratio: 0)`), computed once by
/// scripts/probe_fixture.py, which states the penalty conventions matched here.
final class ProbeReferenceTests: XCTestCase {
    nonisolated(unsafe) static let fixture: [String: Any] = {  // read-only after its one initialisation
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/probe.json")
        return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }()

    func cases(_ name: String) -> [[String: Any]] { Self.fixture[name] as! [[String: Any]] }
    func doubles(_ v: Any?) -> [Double] { (v as! [NSNumber]).map(\.doubleValue) }
    func matrix(_ v: Any?) -> [[Double]] { (v as! [[NSNumber]]).map { $0.map(\.doubleValue) } }
    func ints(_ v: Any?) -> [Int] { (v as! [NSNumber]).map(\.intValue) }
    func number(_ v: Any?) -> Double { (v as! NSNumber).doubleValue }

    func assertClose(_ ours: [Double], _ theirs: [Double], _ tolerance: Double, _ what: String, line: UInt = #line) {
        XCTAssertEqual(ours.count, theirs.count, what, line: line)
        let scale = max(1, theirs.map(abs).max() ?? 1)
        let worst = zip(ours, theirs).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(worst, tolerance * scale, "\(what): max |ours − reference| = \(worst)", line: line)
    }

    func testRidgeMatchesScikitLearn() throws {
        for c in cases("ridge") {
            let model = try XCTUnwrap(LinearProbe.fit(x: matrix(c["x"]), target: .regression(doubles(c["y"])), penalty: number(c["penalty"])))
            assertClose(model.rawWeights[0], doubles(c["raw_weights"]), 1e-9, "ridge weights")
            assertClose(matrix(c["x_test"]).map { model.predict($0)[0] }, doubles(c["predictions"]), 1e-9, "ridge predictions")
        }
    }

    func testLogisticMatchesScikitLearn() throws {
        for c in cases("logistic") {
            let model = try XCTUnwrap(LinearProbe.fit(x: matrix(c["x"]), target: .binary(ints(c["y"]).map { $0 == 1 }), penalty: number(c["penalty"])))
            // lbfgs stops at its tolerance; Newton goes to machine precision.
            assertClose(model.rawWeights[0], doubles(c["raw_weights"]), 1e-6, "logistic weights")
            assertClose(matrix(c["x_test"]).map { model.predict($0)[0] }, doubles(c["predictions"]), 1e-6, "logistic P(positive)")
        }
    }

    func testMultinomialMatchesScikitLearn() throws {
        for c in cases("multinomial") {
            let model = try XCTUnwrap(LinearProbe.fit(x: matrix(c["x"]), target: .multiclass(ints(c["y"]), classes: 3), penalty: number(c["penalty"])))
            let ours = matrix(c["x_test"]).flatMap { model.predict($0) }
            assertClose(ours, matrix(c["probabilities"]).flatMap { $0 }, 1e-6, "multinomial probabilities")
        }
    }

    func testPenalisedCoxMatchesLifelines() throws {
        for c in cases("cox") {
            for name in c["ties"] as! [String] {
                let ties = try XCTUnwrap(CoxRegression.Ties(rawValue: name))
                let target = LinearProbe.Target.survival(time: doubles(c["time"]), event: ints(c["event"]).map { $0 == 1 }, ties: ties)
                let model = try XCTUnwrap(LinearProbe.fit(x: matrix(c["x"]), target: target, penalty: number(c["penalty"])))
                assertClose(model.rawWeights[0], doubles(c["raw_weights"]), 1e-8, "cox \(name), \(doubles(c["time"]).count) subjects")
            }
        }
    }

    /// Penalty 0 is the plain partial likelihood, and the penalty shrinks: ‖β‖ falls as λ grows.
    func testCoxPenaltyZeroIsUnpenalisedAndLargerPenaltiesShrink() throws {
        let c = cases("cox")[0]
        let x = matrix(c["x"]), time = doubles(c["time"]), event = ints(c["event"]).map { $0 == 1 }
        let plain = try XCTUnwrap(CoxRegression.fit(x: x, time: time, event: event))
        let zero = try XCTUnwrap(CoxRegression.fit(x: x, time: time, event: event, penalty: 0))
        XCTAssertEqual(plain.coefficients, zero.coefficients)
        var previous = Double.infinity
        for penalty in [0.01, 0.1, 1.0] {
            let fit = try XCTUnwrap(CoxRegression.fit(x: x, time: time, event: event, penalty: penalty))
            let norm = fit.coefficients.reduce(0) { $0 + $1 * $1 }
            XCTAssertLessThan(norm, previous)
            XCTAssertLessThan(fit.logLikelihood, plain.logLikelihood)
            previous = norm
        }
    }

    /// Inner cross-validation prefers a small penalty when the signal is strong and a large one on
    /// noise, and is seeded.
    func testPenaltySelectionFollowsTheSignal() throws {
        var rng = SplitMix64(seed: 5)
        func normal() -> Double {
            let u = Double(rng.next() >> 11) * 0x1p-53 + 1e-12, v = Double(rng.next() >> 11) * 0x1p-53
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        let x = (0..<60).map { _ in (0..<20).map { _ in normal() } }
        let signal = x.map { 2 * $0[0] - $0[1] + 0.1 * normal() }, noise = x.map { _ in normal() }
        let grid = [0.001, 0.01, 0.1, 1, 10, 100]
        let strong = try XCTUnwrap(LinearProbe.select(x: x, target: .regression(signal), penalties: grid, folds: 4, seed: 1))
        let none = try XCTUnwrap(LinearProbe.select(x: x, target: .regression(noise), penalties: grid, folds: 4, seed: 1))
        XCTAssertLessThanOrEqual(strong.penalty, 0.01)
        XCTAssertGreaterThanOrEqual(none.penalty, 10)
        XCTAssertEqual(strong.deviance.count, grid.count)
        let again = try XCTUnwrap(LinearProbe.select(x: x, target: .regression(signal), penalties: grid, folds: 4, seed: 1))
        XCTAssertEqual(again.deviance, strong.deviance)
    }
}
