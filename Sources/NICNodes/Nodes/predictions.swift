import Flow
import Foundation

/// Reads predictions made elsewhere (a CSV) so nic's evaluators and report can judge them.
public struct PredictionsSource: NodeType {
    public static let name = "predictions"
    public static let version = 1
    public static let summary = "Reads patient-level predictions from a CSV (one row per patient) as Predictions."
    public static let outputs = [PortSpec("predictions", .predictions, doc: "task.json + predictions.csv")]
    public struct Params: NodeParams {
        @Param(doc: "the CSV") var path: FileParam
        @Param(doc: "what is predicted") var task: Predictions.Task
        @Param(doc: "truth column(s): one label column, or [time, event] for survival", .count(1, 2)) var target: [String]
        @Param(doc: "score column(s): one (regression value, binary P(positive), survival risk) or one per class", .count(1))
        var prediction = ["prediction"]
        @Param(doc: "class labels in order (binary: [negative, positive]); default: sorted labels") var classes: [String] = []
        @Param(doc: "patient id column") var patient = "patient"
        @Param(doc: "cross-validation fold column (optional in the file)") var fold = "fold"
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        let url = params.path.url
        let table = try CSVTable.read(url)
        let task = params.task
        let target = params.target
        var classes = params.classes
        if classes.isEmpty && (task == .binary || task == .multiclass), let i = table.columnIndex(target.first ?? "") {
            classes = Array(Set(table.rows.map { $0[i] })).sorted { (Double($0) ?? .infinity, $0) < (Double($1) ?? .infinity, $1) }
        }
        if task == .binary && classes.count != 2 {
            throw NodeError("\(url.path): a binary task needs exactly 2 classes, found \(classes.count) (\(classes.joined(separator: ", ")))")
        }
        let predictions = try Predictions.parse(table, file: url.path, task: task, patientColumn: params.patient,
                                                foldColumn: params.fold, targetColumns: target,
                                                scoreColumns: params.prediction, classes: classes)
        if task == .multiclass && predictions.scores.first?.count != classes.count {
            throw NodeError("param 'prediction': a multiclass task needs one score column per class (\(classes.count))")
        }
        try predictions.write(to: try context.output("predictions"))
    }
}
