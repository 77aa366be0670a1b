import Foundation
import Flow
import Neural

extension Trainer {
    /// A trainer that reports to and stops with the node running it.
    init(schedule: TrainingSchedule, update: ParameterUpdate, context: NodeContext) {
        self.init(schedule: schedule, update: update)
        progress = { p in
            context.progress((p.epoch - 1) * p.steps + p.step, of: p.epochs * p.steps, unit: "steps",
                             stage: "epoch \(p.epoch)/\(p.epochs)", metrics: p.metrics)
        }
        checkCancellation = { try context.checkCancellation() }
    }
}

extension EncoderNode.Params {
    /// Epochs, batches and the validation-loss plateau every encoder training shares.
    var schedule: TrainingSchedule {
        TrainingSchedule(epochs: epochs, batchSize: batchSize,
                         plateau: ReduceOnPlateau(factor: 0.1, patience: patience, minLearningRate: Float(minLearningRate)))
    }
}

extension TrainingOutcome {
    func writeCurves(to url: URL) throws {
        let table = curves
        try CSVTable(columns: table.columns, rows: table.rows).write(to: url)
    }
}
