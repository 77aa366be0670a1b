import Foundation
import Neural
import XCTest

/// The one training loop: what it promises every training node.
final class TrainerTests: XCTestCase {
    /// y = 3x − 1 by a dense layer: small enough to watch every step.
    func makeLine() throws -> (Network, [Float], [Float]) {
        let net = try Architecture.parse(yaml: "input: [1]\nlayers: [{dense: 1}]", file: "line.yaml").build(seed: 3)
        let xs = (0..<20).map { Float($0) / 10 }
        return (net, xs, xs.map { 3 * $0 - 1 })
    }

    func testVisitsEveryItemOnceAnEpochSkipsLoneBatchesAndLearns() throws {
        let (net, x, y) = try makeLine()
        let optimizer = Adam(learningRate: 0.05)
        let trainer = Trainer(schedule: TrainingSchedule(epochs: 30, batchSize: 6), update: .optimizer(optimizer, parameters: net.parameters))
        var seen: [Int: [Int]] = [:]
        var announced: [Int: [[Int]]] = [:]
        let outcome = try trainer.fit(
            order: Trainer.shuffledEachEpoch(Array(0..<19), seed: 7),  // 19 items: batches 6, 6, 6, 1
            prefetch: { epoch, batches in announced[epoch] = batches },
            step: { batch, epoch in
                seen[epoch, default: []] += batch
                XCTAssertGreaterThanOrEqual(batch.count, 2, "a lone item must wait for the next epoch")
                let out = try net.forward(Tensor(shape: [batch.count, 1], data: batch.map { x[$0] }), training: true)
                let loss = try Loss.meanSquaredError(out, batch.map { y[$0] })
                try net.backward(loss.gradient)
                return StepResult(loss: loss.value, metrics: [("items", Double(batch.count))])
            },
            snapshot: { net.stateDict() })
        XCTAssertEqual(outcome.epochs.count, 30)
        for epoch in 1...30 {
            XCTAssertEqual(seen[epoch]!.count, 18)
            XCTAssertEqual(Set(seen[epoch]!).count, 18, "no item twice in an epoch")
            XCTAssertEqual(announced[epoch]?.flatMap { $0 }, seen[epoch], "a loader hears exactly the batches the steps get, in order")
            XCTAssertEqual(announced[epoch]?.map(\.count), [6, 6, 6])
        }
        XCTAssertNotEqual(seen[1], seen[2], "each epoch has its own order")
        XCTAssertLessThan(outcome.epochs.last!.trainLoss, outcome.epochs.first!.trainLoss / 10)
        XCTAssertEqual(outcome.epochs[0].trainMetrics.first?.1, 6)
        let curves = outcome.curves
        XCTAssertEqual(curves.columns, ["epoch", "learning_rate", "train_loss", "items"])
        XCTAssertEqual(curves.rows.count, 30)
    }

    /// A held-out loss is recorded after every epoch and steers nothing: the learning rates, losses and
    /// best epoch are those of the same run without it, even when it rises while training improves.
    func testAHeldOutLossIsRecordedButNeverMonitored() throws {
        func run(heldOut: Bool) throws -> TrainingOutcome<Void> {
            let (net, x, y) = try makeLine()
            let trainer = Trainer(schedule: TrainingSchedule(epochs: 12, batchSize: 5, plateau: ReduceOnPlateau(factor: 0.5, patience: 1, minLearningRate: 1e-4),
                                                             earlyStopping: 2),
                                  update: .optimizer(Adam(learningRate: 0.05), parameters: net.parameters))
            return try trainer.fit(
                order: Trainer.shuffledEachEpoch(Array(0..<20), seed: 7),
                step: { batch, _ in
                    let out = try net.forward(Tensor(shape: [batch.count, 1], data: batch.map { x[$0] }), training: true)
                    let loss = try Loss.meanSquaredError(out, batch.map { y[$0] })
                    try net.backward(loss.gradient)
                    return StepResult(loss: loss.value)
                },
                heldOut: heldOut ? { epoch in epoch == 3 ? nil : Double(epoch) * 10 } : nil,  // rising: would stop a monitored run at once
                snapshot: { () })
        }
        let plain = try run(heldOut: false), recorded = try run(heldOut: true)
        XCTAssertEqual(recorded.epochs.map(\.trainLoss), plain.epochs.map(\.trainLoss))
        XCTAssertEqual(recorded.epochs.map(\.learningRate), plain.epochs.map(\.learningRate))
        XCTAssertEqual(recorded.best?.epoch, plain.best?.epoch)
        XCTAssertEqual(recorded.stoppedEarly, plain.stoppedEarly)
        XCTAssertEqual(recorded.epochs.map(\.heldOutLoss), recorded.epochs.map { $0.epoch == 3 ? nil : Double($0.epoch) * 10 })
        XCTAssertTrue(plain.epochs.allSatisfy { $0.heldOutLoss == nil })
        XCTAssertEqual(recorded.curves.columns, plain.curves.columns, "curves.csv of a training node is unchanged")
    }

    func testSameSeedSameOrderAndEveryItemOnce() {
        let a = Trainer.shuffledEachEpoch(Array(10..<60), seed: 5), b = Trainer.shuffledEachEpoch(Array(10..<60), seed: 5)
        for epoch in 1...3 {
            XCTAssertEqual(a(epoch), b(epoch))
            XCTAssertEqual(a(epoch).sorted(), Array(10..<60))
        }
    }

    func testPlateauLowersTheRateAndBestSnapshotAndEarlyStopping() throws {
        let optimizer = SGD(learningRate: 1)
        var schedule = TrainingSchedule(epochs: 20, batchSize: 2, plateau: ReduceOnPlateau(factor: 0.5, patience: 1, minLearningRate: 0.01))
        schedule.earlyStopping = 4
        let trainer = Trainer(schedule: schedule, update: .optimizer(optimizer, parameters: []))
        // Validation improves until epoch 3, then gets worse.
        let validation: [Double] = [5, 4, 3, 3.5, 3.6, 3.7, 3.8, 3.9, 4, 4.1]
        let outcome = try trainer.fit(order: { _ in [0, 1] }, step: { _, _ in StepResult(loss: 1) },
                                      validate: { epoch in ValidationResult(loss: validation[epoch - 1], metrics: [("auc", 0.5)]) },
                                      snapshot: { optimizer.learningRate })
        XCTAssertEqual(outcome.best?.epoch, 3)
        XCTAssertEqual(outcome.best?.loss, 3)
        XCTAssertTrue(outcome.stoppedEarly)
        XCTAssertEqual(outcome.epochs.count, 7, "4 epochs without improvement after epoch 3")
        XCTAssertEqual(outcome.epochs.map(\.learningRate), [1, 1, 1, 1, 1, 0.5, 0.5])
        XCTAssertEqual(outcome.curves.columns, ["epoch", "learning_rate", "train_loss", "val_loss", "val_auc"])
    }

    /// Two tasks' validation losses: task a improves steadily, task b spikes 15-fold for one epoch
    /// (epoch 3) and then improves again. Watching the sum, the spike and its slow settling end the
    /// run and lower the rate; watching each part, the run goes on while either task improves, the
    /// rate stays, and the best epoch is the one with the lowest mean relative loss.
    func testEachPartMonitorIsNotStoppedByOneTasksSpike() throws {
        let a: [Double] = [1, 0.9, 0.85, 0.8, 0.78, 0.77, 0.76, 0.76, 0.76, 0.76, 0.76, 0.76, 0.76, 0.76]
        let b: [Double] = [0.3, 0.25, 4.5, 0.6, 0.5, 0.4, 0.3, 0.24, 0.2, 0.21, 0.22, 0.23, 0.24, 0.25]
        func run(_ monitor: TrainingSchedule.Monitor) throws -> TrainingOutcome<Int> {
            let optimizer = SGD(learningRate: 1)
            let schedule = TrainingSchedule(epochs: a.count, batchSize: 2, plateau: ReduceOnPlateau(factor: 0.1, patience: 2, minLearningRate: 0.001),
                                            earlyStopping: 3, monitor: monitor)
            let trainer = Trainer(schedule: schedule, update: .optimizer(optimizer, parameters: []))
            var epochNow = 0
            return try trainer.fit(order: { epoch in epochNow = epoch; return [0, 1] }, step: { _, _ in StepResult(loss: 1) },
                                   validate: { epoch in ValidationResult(loss: a[epoch - 1] + b[epoch - 1], parts: [a[epoch - 1], b[epoch - 1]]) },
                                   snapshot: { epochNow })
        }
        let sum = try run(.total)
        XCTAssertTrue(sum.stoppedEarly)
        XCTAssertEqual(sum.best?.epoch, 2, "the sum's best is before the spike")
        XCTAssertEqual(sum.epochs.count, 5, "3 epochs after the spike without a better sum")

        let each = try run(.eachPart)
        XCTAssertEqual(each.epochs.map(\.learningRate), Array(repeating: 1, count: each.epochs.count), "one task improving keeps the rate")
        // Epoch 9: a 0.76/1 and b 0.2/0.3 give the lowest mean relative loss (0.713).
        XCTAssertEqual(each.best?.epoch, 9)
        XCTAssertEqual(each.best?.snapshot, 9)
        XCTAssertEqual(each.best?.loss ?? 0, (0.76 / 1 + 0.2 / 0.3) / 2, accuracy: 1e-12)
        XCTAssertTrue(each.stoppedEarly)
        XCTAssertEqual(each.epochs.count, 12, "a last improves at epoch 7, b at 9: 3 more epochs end it at 12 of 14")

        // Without parts, each-part watching is the total's.
        let optimizer = SGD(learningRate: 1)
        let trainer = Trainer(schedule: TrainingSchedule(epochs: a.count, batchSize: 2, earlyStopping: 3, monitor: .eachPart),
                              update: .optimizer(optimizer, parameters: []))
        let noParts = try trainer.fit(order: { _ in [0, 1] }, step: { _, _ in StepResult(loss: 1) },
                                      validate: { epoch in ValidationResult(loss: a[epoch - 1] + b[epoch - 1]) }, snapshot: { () })
        XCTAssertEqual(noParts.best?.epoch, sum.best?.epoch)
        XCTAssertEqual(noParts.epochs.count, sum.epochs.count)
    }

    func testDivergenceAndSkippedStepsAndCancellation() throws {
        let optimizer = SGD(learningRate: 1)
        var trainer = Trainer(schedule: TrainingSchedule(epochs: 3, batchSize: 2), update: .optimizer(optimizer, parameters: []))
        XCTAssertThrowsError(try trainer.fit(order: { _ in [0, 1, 2, 3] }, step: { _, epoch in StepResult(loss: epoch == 2 ? .nan : 1) },
                                             snapshot: { () })) { error in
            XCTAssertTrue("\(error)".contains("epoch 2 step 1"), "\(error)")
        }
        // A run in which no batch could be used trained nothing: an error, never a cached model.
        XCTAssertThrowsError(try trainer.fit(order: { _ in [0, 1] }, step: { _, _ in nil }, snapshot: { () })) { error in
            XCTAssertTrue("\(error)".contains("no update in 3 epoch"), "\(error)")
        }
        XCTAssertThrowsError(try trainer.fit(order: { _ in [0] }, step: { _, _ in StepResult(loss: 1) }, snapshot: { () }),
                             "one item makes no batch of two")

        // An encoder's trainer keeps the best finite epoch when a later one diverges (a NaN loss, a
        // non-finite loss gradient thrown by a loss, a NaN validation) and says so; with nothing to
        // keep yet it still fails.
        var keeping = trainer
        keeping.keepBestOnDivergence = true
        let validation: [Double] = [3, 2, 1]
        for (name, divergesIn) in [("loss", 3), ("thrown", 3), ("validation", 3)] {
            var stepsRun = 0
            let outcome = try keeping.fit(order: { _ in [0, 1] }, step: { _, epoch in
                stepsRun += 1
                if name == "thrown" && epoch == divergesIn { throw NeuralError.nonFinite(layer: "loss 'kl'", what: "gradient") }
                return StepResult(loss: name == "loss" && epoch == divergesIn ? .infinity : 1)
            }, validate: { epoch in ValidationResult(loss: name == "validation" && epoch == divergesIn ? .nan : validation[epoch - 1]) },
               snapshot: { stepsRun })
            XCTAssertEqual(outcome.best?.epoch, 2, name)
            XCTAssertEqual(outcome.best?.snapshot, 2, "\(name): the snapshot taken after epoch 2")
            XCTAssertEqual(outcome.epochs.count, divergesIn - 1, "\(name): the diverged epoch is not recorded")
            XCTAssertTrue(outcome.divergence?.contains("epoch \(divergesIn)") == true && outcome.divergence?.contains("kept the best epoch 2") == true,
                          "\(name): \(outcome.divergence ?? "nil")")
        }
        XCTAssertThrowsError(try keeping.fit(order: { _ in [0, 1] }, step: { _, _ in StepResult(loss: .nan) }, snapshot: { () }),
                             "a first epoch that diverges leaves nothing to keep")

        struct Stop: Error {}
        var steps = 0
        trainer.checkCancellation = { if steps == 2 { throw Stop() } }
        XCTAssertThrowsError(try trainer.fit(order: { _ in [0, 1, 2, 3] }, step: { _, _ in steps += 1; return StepResult(loss: 1) }, snapshot: { () }))
        XCTAssertEqual(steps, 2)
    }
}
