import Foundation
import Stats
import XCTest

/// Values computed once by scipy, scikit-learn, lifelines and scikit-survival
/// (scripts/stats_fixtures.py) on data with ties in scores and times.
final class ReferenceTests: XCTestCase {
    nonisolated(unsafe) static let fixture: [String: Any] = {  // read-only after its one initialisation
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/stats.json")
        let data = try! Data(contentsOf: url)
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    func cases(_ name: String) -> [[String: Any]] { Self.fixture[name] as! [[String: Any]] }
    func doubles(_ v: Any?) -> [Double] { (v as! [NSNumber]).map(\.doubleValue) }
    func bools(_ v: Any?) -> [Bool] { (v as! [Any]).map { ($0 as! NSNumber).boolValue } }
    func ints(_ v: Any?) -> [Int] { (v as! [NSNumber]).map(\.intValue) }
    func number(_ v: Any?) -> Double { (v as! NSNumber).doubleValue }

    func testSpearmanAndPearsonMatchScipy() {
        for c in cases("correlation") {
            let x = doubles(c["x"]), y = doubles(c["y"])
            XCTAssertEqual(Correlation.spearman(x, y)!, number(c["spearman"]), accuracy: 1e-12)
            XCTAssertEqual(Correlation.pearson(x, y)!, number(c["pearson"]), accuracy: 1e-12)
        }
    }

    func testAUCMatchesScikitLearn() {
        for c in cases("auc") {
            XCTAssertEqual(ROC.auc(labels: ints(c["labels"]).map { $0 == 1 }, scores: doubles(c["scores"]))!, number(c["auc"]), accuracy: 1e-12)
        }
        for c in cases("multiclass_auc") {
            let p = (c["probabilities"] as! [[NSNumber]]).map { $0.map(\.doubleValue) }
            XCTAssertEqual(ROC.macroAUC(labels: ints(c["labels"]), probabilities: p)!, number(c["auc"]), accuracy: 1e-12)
        }
    }

    func testConcordanceMatchesScikitSurvivalAndLifelines() {
        for c in cases("concordance") {
            let time = doubles(c["time"]), event = bools(c["event"]), risk = doubles(c["risk"])
            let ours = Survival.concordance(time: time, event: event, risk: risk)!
            let reference = c["sksurv"] as! [String: NSNumber]
            XCTAssertEqual(ours.cindex, reference["cindex"]!.doubleValue, accuracy: 1e-12)
            XCTAssertEqual(ours.concordant, reference["concordant"]!.intValue)
            XCTAssertEqual(ours.discordant, reference["discordant"]!.intValue)
            XCTAssertEqual(ours.tiedRisk, reference["tied_risk"]!.intValue)
            XCTAssertEqual(ours.tiedTime, reference["tied_time"]!.intValue)
            // lifelines takes scores where higher = longer survival.
            XCTAssertEqual(ours.cindex, number(c["lifelines"]), accuracy: 1e-12)
        }
    }

    func testKaplanMeierMatchesLifelines() {
        for c in cases("kaplan_meier") {
            let points = Survival.kaplanMeier(time: doubles(c["time"]), event: bools(c["event"]))
            XCTAssertEqual(points.map(\.time), doubles(c["times"]))
            XCTAssertEqual(points.map(\.atRisk), ints(c["at_risk"]))
            XCTAssertEqual(points.map(\.events), ints(c["events"]))
            for (ours, theirs) in zip(points.map(\.survival), doubles(c["survival"])) { XCTAssertEqual(ours, theirs, accuracy: 1e-12) }
        }
    }

    func testLogRankMatchesLifelines() {
        for c in cases("logrank") {
            let result = Survival.logRank(time: doubles(c["time"]), event: bools(c["event"]), group: ints(c["group"]))!
            XCTAssertEqual(result.statistic, number(c["statistic"]), accuracy: 1e-9 * max(1, number(c["statistic"])))
            XCTAssertEqual(result.pValue, number(c["p_value"]), accuracy: 1e-9)
            XCTAssertEqual(result.degreesOfFreedom, ints([c["df"]!])[0])
        }
    }

    func testCoxOnRossiMatchesScikitSurvival() {
        let rossi = Self.fixture["rossi"] as! [String: Any]
        let x = (rossi["x"] as! [[NSNumber]]).map { $0.map(\.doubleValue) }
        let time = doubles(rossi["time"]), event = bools(rossi["event"])
        let reference = rossi["sksurv_coefficients"] as! [String: [NSNumber]]
        for ties in [CoxRegression.Ties.breslow, .efron] {
            let fit = CoxRegression.fit(x: x, time: time, event: event, ties: ties)!
            for (ours, theirs) in zip(fit.coefficients, reference[ties.rawValue]!.map(\.doubleValue)) {
                XCTAssertEqual(ours, theirs, accuracy: 1e-4, "\(ties)")
            }
        }
        // lifelines fits Efron too; same coefficients.
        let efron = CoxRegression.fit(x: x, time: time, event: event, ties: .efron)!
        for (ours, theirs) in zip(efron.coefficients, doubles(rossi["lifelines_efron_coefficients"])) { XCTAssertEqual(ours, theirs, accuracy: 1e-4) }
        // nic's C-index of the Breslow linear predictor equals lifelines'.
        let breslow = reference["breslow"]!.map(\.doubleValue)
        let risk = x.map { row in zip(row, breslow).reduce(0) { $0 + $1.0 * $1.1 } }
        XCTAssertEqual(Survival.concordance(time: time, event: event, risk: risk)!.cindex, number(rossi["lifelines_cindex_of_breslow_risk"]), accuracy: 1e-12)
    }
}

final class PropertyTests: XCTestCase {
    func testAverageRanks() {
        XCTAssertEqual(Correlation.averageRanks([10, 20, 10, 30, 20, 20]), [1.5, 4, 1.5, 6, 4, 4])
    }

    func testHandComputedConcordance() {
        // times 1(e) 2(e) 3(c) 4(e); risks 4 3 2 1 are perfectly ordered.
        XCTAssertEqual(Survival.concordance(time: [1, 2, 3, 4], event: [true, true, false, true], risk: [4, 3, 2, 1])!.cindex, 1)
        XCTAssertEqual(Survival.concordance(time: [1, 2, 3, 4], event: [true, true, false, true], risk: [1, 2, 3, 4])!.cindex, 0)
        // Two events at the same time are not comparable; the censoring at that time is.
        let c = Survival.concordance(time: [2, 2, 2], event: [true, true, false], risk: [1, 2, 0])!
        XCTAssertEqual(c.concordant, 2)
        XCTAssertEqual(c.tiedTime, 2)
        XCTAssertNil(Survival.concordance(time: [1, 2], event: [false, false], risk: [1, 2]))
    }

    func testChiSquaredSurvival() {
        XCTAssertEqual(SpecialFunctions.chiSquaredSurvival(3.841458820694124, degreesOfFreedom: 1), 0.05, accuracy: 1e-12)
        XCTAssertEqual(SpecialFunctions.chiSquaredSurvival(5.991464547107979, degreesOfFreedom: 2), 0.05, accuracy: 1e-12)
        XCTAssertEqual(SpecialFunctions.chiSquaredSurvival(30, degreesOfFreedom: 4), 4.8943e-06, accuracy: 1e-9)
    }

    func testBootstrapIsSeededAndBracketsTheEstimate() {
        let x = (0..<200).map { Double($0) }
        let y = x.map { $0 + Double(($0 * 7).truncatingRemainder(dividingBy: 13)) * 10 }
        let stat: ([Int]) -> Double? = { idx in Correlation.spearman(idx.map { x[$0] }, idx.map { y[$0] }) }
        let a = Bootstrap.interval(count: 200, resamples: 500, seed: 7, statistic: stat)!
        let b = Bootstrap.interval(count: 200, resamples: 500, seed: 7, statistic: stat)!
        XCTAssertEqual(a, b)
        XCTAssertLessThan(a.low, a.estimate)
        XCTAssertGreaterThan(a.high, a.estimate)
        XCTAssertEqual(a.valid, 500)
        XCTAssertEqual(Bootstrap.quantile([1, 2, 3, 4], 0.5), 2.5)
    }

    func testROCCurveEndpoints() {
        let curve = ROC.curve(labels: [true, false, true, false], scores: [0.9, 0.8, 0.8, 0.1])
        XCTAssertEqual(curve.first!.fpr, 0)
        XCTAssertEqual(curve.last!.fpr, 1)
        XCTAssertEqual(curve.last!.tpr, 1)
        XCTAssertEqual(curve.count, 4)  // +inf, 0.9, 0.8 (tied pair), 0.1
    }
}

final class FoldTests: XCTestCase {
    func testPatientsStayTogetherAndStrataAreBalanced() {
        let patients = (0..<40).map { "p\($0)" }
        let slides = patients.flatMap { [$0, $0] }  // two slides per patient
        let strata = Dictionary(uniqueKeysWithValues: patients.enumerated().map { ($1, $0 % 4 == 0 ? "event" : "censored") })
        let folds = Folds.assign(patients: slides, k: 5, seed: 9, strata: strata)
        XCTAssertEqual(folds.count, 40)
        for fold in 0..<5 {
            let members = patients.filter { folds[$0] == fold }
            XCTAssertEqual(members.count, 8)
            XCTAssertEqual(members.filter { strata[$0] == "event" }.count, 2)
        }
        XCTAssertEqual(folds, Folds.assign(patients: slides.reversed(), k: 5, seed: 9, strata: strata), "order of input must not matter")
        XCTAssertNotEqual(folds, Folds.assign(patients: slides, k: 5, seed: 10, strata: strata))
    }
}
