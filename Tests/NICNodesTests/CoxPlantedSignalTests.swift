import Flow
import Foundation
import NICBasics
import Neural
import Stats
import XCTest
@testable import NICNodes

/// A bag Cox model trained as the patient model trains it (PatientTargets' loss, its fold risk memory,
/// batches of 4 bags) on 30 synthetic patients whose risk is planted in their instances: out of sample
/// it ranks survival almost as well as the true risk does.
final class CoxPlantedSignalTests: XCTestCase {
    struct Patient { var id: String; var risk: Double; var time: Double; var event: Bool; var cells: [Float] }
    static let features = 4, cellsPerBag = 48

    /// A patient's latent risk z ~ N(0, 1) sets the share of "hot" cells (feature 0 around 2, else 0;
    /// the other features noise), so the risk is the mean of a per-cell function, as a mitotic rate is.
    /// Survival: exponential with hazard exp(1.5·z), censored uniformly (about 30 % censored).
    static func cohort(_ n: Int, seed: UInt64, prefix: String) -> [Patient] {
        var rng = Xoshiro256StarStar(seed: seed)
        func normal() -> Double {
            let u = max(1e-12, Double(rng.nextUnitFloat())), v = Double(rng.nextUnitFloat())
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        return (0..<n).map { i in
            let z = normal()
            let hot = 0.1 + 0.6 / (1 + exp(-1.5 * z))
            var cells: [Float] = []
            for _ in 0..<cellsPerBag {
                let isHot = Double(rng.nextUnitFloat()) < hot
                cells.append(Float((isHot ? 2 : 0) + 0.5 * normal()))
                for _ in 1..<features { cells.append(Float(normal())) }
            }
            let t = -log(max(1e-12, Double(rng.nextUnitFloat()))) / exp(1.5 * z)
            let censor = 3 * Double(rng.nextUnitFloat())
            return Patient(id: "\(prefix)\(i)", risk: z, time: min(t, censor), event: t <= censor, cells: cells)
        }
    }

    /// Trains a mean-pooled bag model with `head` on `train` and returns Harrell's C on `test`.
    static func trainAndScore(head: String, train: [Patient], test: [Patient], seed: UInt64) throws -> Double {
        let loss = try LossSpec(try Architecture.parse(yaml: head, file: "head.yaml"))
        let targets = try PatientTargets(loss: loss, head: "head.yaml", columns: ["time", "event"], classes: [],
                                         slides: train.map { ($0.id, ["patient": $0.id, "time": "\($0.time)", "event": $0.event ? "1" : "0"]) })
        let architecture = try Architecture.parse(yaml: "layers: [{dense: 16}, {leaky_relu: 0.2}]\npool: {type: mean}\n", file: "mil.yaml")
        let model = try BagModel(architecture: architecture, features: features, head: try Architecture.parse(yaml: head, file: "head.yaml"), seed: seed)
        let byId = Dictionary(uniqueKeysWithValues: train.map { ($0.id, $0) })
        let items = targets.patients.indices
        func bag(_ item: Int) -> Tensor {
            Tensor(shape: [cellsPerBag, features], data: byId[targets.patients[item]]!.cells)
        }
        var risks = try targets.foldRisks(items: Array(items), patient: { targets.patients[$0] }) { item in
            try model.forward(bag(item), bags: [0..<cellsPerBag], training: false).output.data[0]
        }
        let trainer = Trainer(schedule: TrainingSchedule(epochs: 40, batchSize: 4),
                              update: .optimizer(Adam(learningRate: 3e-3), parameters: model.parameters))
        var rng = SplitMix64(seed: seed &+ 2)
        _ = try trainer.fit(
            order: { _ in PatientModel.epochOrder(Array(items), repeats: 1, rng: &rng) },
            step: { batch, _ in
                let patients = batch.map { targets.patients[$0] }
                guard targets.canTrain(on: patients) else { return nil }
                let x = Tensor(shape: [batch.count * cellsPerBag, features], data: batch.flatMap { bag($0).data })
                let (output, _) = try model.forward(x, bags: batch.indices.map { ($0 * cellsPerBag)..<(($0 + 1) * cellsPerBag) }, training: true)
                let result = try targets.loss(output, patients: patients, items: batch, memory: &risks)
                try model.backward(result.gradient)
                return StepResult(loss: result.value)
            },
            snapshot: { () })
        let predicted = try test.map { p in
            Double(try model.predict(count: cellsPerBag) { range in
                Tensor(shape: [range.count, features], data: Array(p.cells[(range.lowerBound * features)..<(range.upperBound * features)]))
            }.output[0])
        }
        return Survival.concordance(time: test.map(\.time), event: test.map(\.event), risk: predicted)!.cindex
    }

    /// Tolerance: out of sample, on the same 300 test patients, the learned model's C-index is within
    /// 0.08 of the true risk's for each of three training cohorts, and within 0.07 on their average (the
    /// C-index of 300 patients has a standard error of about 0.02, and 30 training patients cannot pin
    /// the per-cell function exactly).
    func testFoldRiskSetLearnsAPlantedRiskFromThirtyPatients() throws {
        let test = Self.cohort(300, seed: 99, prefix: "T")
        let oracle = Survival.concordance(time: test.map(\.time), event: test.map(\.event), risk: test.map(\.risk))!.cindex
        XCTAssertGreaterThan(oracle, 0.7, "the planted risk must rank survival well for the test to mean anything")
        var learned: [Double] = []
        for seed: UInt64 in [1, 2, 3] {
            let train = Self.cohort(30, seed: 10 + seed, prefix: "P")
            let fold = try Self.trainAndScore(head: "layers: [{dense: 1}]\nloss: {type: cox, ties: efron, risk_set: fold}\n", train: train, test: test, seed: seed)
            let batch = try Self.trainAndScore(head: "layers: [{dense: 1}]\nloss: {type: cox, ties: efron, risk_set: batch}\n", train: train, test: test, seed: seed)
            print("planted risk, seed \(seed): true risk C \(oracle), fold risk set \(fold), batch risk set \(batch)")
            XCTAssertGreaterThan(fold, oracle - 0.08, "seed \(seed): learned C \(fold) vs true risk's \(oracle)")
            learned.append(fold)
        }
        XCTAssertGreaterThan(learned.reduce(0, +) / 3, oracle - 0.07, "learned C \(learned) vs true risk's \(oracle)")
    }

    /// A multi-task head's loss: the Cox term on the first output plus weight × the auxiliary loss on
    /// the second (standardised score; a patient without it does not count), and only the risk is predicted.
    func testAuxiliaryTargetAddsItsWeightedLossOnASecondOutput() throws {
        let rows: [[String: String]] = [
            ["patient": "A", "time": "5", "event": "1", "score": "2"],
            ["patient": "B", "time": "3", "event": "1", "score": "4"],
            ["patient": "C", "time": "8", "event": "0", "score": ""],
            ["patient": "D", "time": "1", "event": "1", "score": "9"],
        ]
        let head = try HeadFile.parse(text: "layers: [{dense: 1}]\nloss: {type: cox, ties: efron}\nauxiliary: {target: score, loss: mse, weight: 0.5}\n", file: "h.yaml")
        let auxiliary = try XCTUnwrap(head.auxiliary)
        XCTAssertEqual(auxiliary.column, "score")
        let targets = try PatientTargets(loss: head.loss, head: "h.yaml", columns: ["time", "event"], classes: [],
                                         slides: rows.enumerated().map { ("s\($0.offset)", $0.element) }, auxiliary: auxiliary)
        XCTAssertEqual(targets.networkOutputs, 2)
        let out = Tensor(shape: [4, 2], data: [0.2, 0.1, -0.3, 0.4, 0.5, 7, 1.0, -0.2])
        let r = try targets.loss(out, patients: ["A", "B", "C", "D"])
        let cox = try Loss.cox(risk: Tensor(shape: [4, 1], data: [0.2, -0.3, 0.5, 1.0]), time: [5, 3, 8, 1], event: [true, true, false, true], ties: .efron)
        let m = 5.0, sd = (((2 - m) * (2 - m) + (4 - m) * (4 - m) + (9 - m) * (9 - m)) / 2).squareRoot()
        let z = [2, 4, 9].map { Float(($0 - m) / sd) }
        let mse = try Loss.meanSquaredError(Tensor(shape: [4, 1], data: [0.1, 0.4, 7, -0.2]), [z[0], z[1], .nan, z[2]])
        XCTAssertEqual(r.value, cox.value + 0.5 * mse.value, accuracy: 1e-6)
        for i in 0..<4 {
            XCTAssertEqual(r.gradient.data[2 * i], cox.gradient.data[i], accuracy: 1e-7)
            XCTAssertEqual(r.gradient.data[2 * i + 1], 0.5 * mse.gradient.data[i], accuracy: 1e-7)
        }
        XCTAssertEqual(r.gradient.data[5], 0, "C has no score: the auxiliary output gets no gradient")
        XCTAssertEqual(targets.prediction([0.7, 3]), [0.7], "only the risk is predicted")
        // A column nobody has is an error naming it.
        let missing = try HeadFile.parse(text: "layers: [{dense: 1}]\nloss: {type: cox}\nauxiliary: {target: ki67}\n", file: "h.yaml")
        XCTAssertThrowsError(try PatientTargets(loss: missing.loss, head: "h.yaml", columns: ["time", "event"], classes: [],
                                                slides: rows.enumerated().map { ("s\($0.offset)", $0.element) }, auxiliary: missing.auxiliary)) {
            XCTAssertTrue("\($0)".contains("ki67"), "\($0)")
        }
        XCTAssertThrowsError(try HeadFile.parse(text: "layers: [{dense: 1}]\nloss: mse\nauxiliary: {target: s, loss: hinge}\n", file: "h.yaml")) {
            XCTAssertTrue("\($0)".hasPrefix("h.yaml:3:30: ") && "\($0)".contains("'auxiliary.loss'") && "\($0)".contains("hinge"), "\($0)")
        }
    }

    /// The whole-fold risk set and a multi-task head through the patient_model node, for a bag model
    /// and the CNN (slides as the risk set's items), on a tiny cohort: every patient predicted.
    func testFoldRiskSetAndMultiTaskHeadsInThePatientModel() throws {
        let ws = try CohortWorkspace(patients: 8, size: 768, annotations: 4)
        try ws.copyRepoNodes(["encoders/mean-rgb.yaml", "heads/cox.yaml", "heads/cox-batch.yaml", "heads/cox-score.yaml"])
        try ws.write("nodes/patient/mil.yaml", "layers: [{dense: 8}, relu]\npool: {type: mean}\n")
        try ws.write("nodes/patient/tiny.yaml", "input: [4, 4, 3]\nlayers: [flatten, {dense: 4}, {batchnorm: {}}]\n")
        let summary = try ws.run(CohortWorkspace.meanRGBGrids(pipeline: "cox", previews: 0) + """
          fold:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/mil.yaml, head: nodes/heads/cox.yaml, target: [time, event], folds: 2, epochs: 2, batch_size: 2, seed: 5}
          multitask:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/mil.yaml, head: nodes/heads/cox-score.yaml, target: [time, event], folds: 2, epochs: 2, batch_size: 2, seed: 5}
          cnn:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/tiny.yaml, head: nodes/heads/cox-score.yaml, target: [time, event], folds: 2, epochs: 2, batch_size: 4, test_crops: 1, seed: 5}
          batch:
            type: patient_model
            in: {grids: grids}
            params: {architecture: nodes/patient/mil.yaml, head: nodes/heads/cox-batch.yaml, target: [time, event], folds: 2, epochs: 2, batch_size: 2, seed: 5}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let patients = Set(try CSVTable.read(ws.root.appendingPathComponent("cohort/labels.csv")).column("patient")!).sorted()
        var scores: [String: [Double]] = [:]
        for node in ["fold", "multitask", "cnn", "batch"] {
            let p = try Predictions.read(from: try ws.output(summary, node, "predictions"))
            XCTAssertEqual(p.patients, patients, node)
            XCTAssertTrue(p.scores.allSatisfy { $0.count == 1 && $0[0].isFinite }, node)
            scores[node] = p.scores.map { $0[0] }
        }
        XCTAssertNotEqual(scores["fold"], scores["batch"], "the risk set changes what the model learns")
        XCTAssertNotEqual(scores["fold"], scores["multitask"], "the auxiliary target changes the shared embedding")
    }
}
