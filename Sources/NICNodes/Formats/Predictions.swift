import Flow
import Foundation

public extension PortType {
    /// Out-of-fold patient-level predictions: `task.json` + `predictions.csv` (see `Predictions`).
    static let predictions: PortType = "Predictions"
}

/// Patient-level predictions and the truth they are judged against.
///
/// On disk (a `Predictions` port folder), readable with pandas:
/// - `task.json`: `{"task": "regression"|"binary"|"multiclass"|"survival", "target": [...columns], "classes": [...]}`,
///   plus `"external": true` for a kept model applied to a cohort (`apply`: fold 0, only labelled patients)
///   and, when `apply` could not predict some patients (no tissue cell on any slide), `"skipped": [...patients]`
/// - `predictions.csv`: `patient`, `fold`, the target columns (`time`,`event` for survival; one label
///   column otherwise), then `prediction` (regression: the value; binary: P(classes[1]); survival: a
///   risk score, higher = shorter survival) or, for multiclass, one `p_<class>` column per class.
public struct Predictions: Equatable {
    public enum Task: String, ParamChoice, Codable { case regression, binary, multiclass, survival }

    public var task: Task
    public var targetColumns: [String]
    public var classes: [String]
    public var patients: [String]
    public var folds: [Int]
    /// Regression value or class label (as written) per patient; for survival, unused.
    public var labels: [String]
    public var time: [Double]
    public var event: [Bool]
    /// One score per patient (regression, binary, survival) or one row of class probabilities (multiclass).
    public var scores: [[Double]]
    /// Made by a kept model on a cohort it was not trained on (`apply`), not out of fold.
    public var external = false
    /// Patients `apply` gave no prediction (no tissue cell on any slide: no evidence), so that an
    /// evaluator can say who is missing from its n instead of scoring a made-up value.
    public var skipped: [String] = []

    public var count: Int { patients.count }

    struct TaskFile: Codable {
        var task: Task
        var target: [String]
        var classes: [String]
        /// Absent (not false) for out-of-fold predictions, so their files stay as they were.
        var external: Bool?
        /// Absent when no patient was skipped, so files without skipped patients stay as they were.
        var skipped: [String]?
    }

    /// Refuses non-finite scores (a diverged model) so that no node caches them as a result.
    public func write(to folder: URL) throws {
        if let i = scores.firstIndex(where: { !$0.allSatisfy(\.isFinite) }) {
            throw NodeError("the prediction for patient '\(patients[i])' (fold \(folds[i])) is \(scores[i].map { "\($0)" }.joined(separator: ", ")): the model diverged (lower the learning rate or check the labels); nothing cached")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(TaskFile(task: task, target: targetColumns, classes: classes, external: external ? true : nil,
                                        skipped: skipped.isEmpty ? nil : skipped)).write(to: folder.appendingPathComponent("task.json"))
        var columns = ["patient", "fold"] + targetColumns
        columns += task == .multiclass ? classes.map { "p_\($0)" } : ["prediction"]
        var rows: [[String]] = []
        for i in 0..<count {
            var row = [patients[i], String(folds[i])]
            row += task == .survival ? [Self.format(time[i]), event[i] ? "1" : "0"] : [labels[i]]
            row += scores[i].map(Self.format)
            rows.append(row)
        }
        try CSVTable(columns: columns, rows: rows).write(to: folder.appendingPathComponent("predictions.csv"))
    }

    static func format(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)"
    }

    public static func read(from folder: URL) throws -> Predictions {
        let taskURL = folder.appendingPathComponent("task.json")
        let meta: TaskFile
        do { meta = try JSONDecoder().decode(TaskFile.self, from: Data(contentsOf: taskURL)) }
        catch { throw NodeError("\(taskURL.path): not a valid task description (\(error))") }
        let file = folder.appendingPathComponent("predictions.csv")
        let table = try CSVTable.read(file)
        let scoreColumns = meta.task == .multiclass ? meta.classes.map { "p_\($0)" } : ["prediction"]
        var predictions = try parse(table, file: file.path, task: meta.task, patientColumn: "patient", foldColumn: "fold",
                                    targetColumns: meta.target, scoreColumns: scoreColumns, classes: meta.classes)
        predictions.external = meta.external ?? false
        predictions.skipped = meta.skipped ?? []
        return predictions
    }

    /// Builds predictions from any table, checking every value; errors name the file, line and column.
    public static func parse(_ table: CSVTable, file: String, task: Task, patientColumn: String, foldColumn: String?,
                             targetColumns: [String], scoreColumns: [String], classes: [String]) throws -> Predictions {
        func index(_ name: String) throws -> Int {
            guard let i = table.columnIndex(name) else {
                throw NodeError("\(file):1: missing column '\(name)'; found \(table.columns.joined(separator: ", "))")
            }
            return i
        }
        let expectedTargets = task == .survival ? 2 : 1
        guard targetColumns.count == expectedTargets else {
            throw NodeError("a \(task.rawValue) task takes \(expectedTargets == 2 ? "two target columns (time, event)" : "one target column"), got \(targetColumns.count)")
        }
        let p = try index(patientColumn)
        let f = try foldColumn.flatMap { table.columnIndex($0) == nil ? nil : try index($0) }
        let targets = try targetColumns.map(index)
        let scoreIndices = try scoreColumns.map(index)
        var result = Predictions(task: task, targetColumns: targetColumns, classes: classes, patients: [], folds: [],
                                 labels: [], time: [], event: [], scores: [])
        var seen = Set<String>()
        for (r, row) in table.rows.enumerated() {
            let line = r + 2
            func number(_ column: Int) throws -> Double {
                guard let v = Double(row[column].trimmingCharacters(in: .whitespaces)), v.isFinite else {
                    throw NodeError("\(file):\(line): column '\(table.columns[column])' must be a number, found '\(row[column])'")
                }
                return v
            }
            let patient = row[p]
            guard !patient.isEmpty else { throw NodeError("\(file):\(line): empty '\(patientColumn)'") }
            guard seen.insert(patient).inserted else { throw NodeError("\(file):\(line): patient '\(patient)' appears twice; predictions are one row per patient") }
            result.patients.append(patient)
            result.folds.append(try f.map { Int(try number($0)) } ?? 0)
            switch task {
            case .survival:
                let t = try number(targets[0])
                guard t >= 0 else { throw NodeError("\(file):\(line): column '\(targetColumns[0])' must be a time ≥ 0, found \(t)") }
                let e = row[targets[1]].trimmingCharacters(in: .whitespaces).lowercased()
                guard ["0", "1", "true", "false"].contains(e) else {
                    throw NodeError("\(file):\(line): column '\(targetColumns[1])' must be 1 (event observed) or 0 (censored), found '\(row[targets[1]])'")
                }
                result.time.append(t)
                result.event.append(e == "1" || e == "true")
                result.labels.append("")
            case .regression:
                _ = try number(targets[0])
                result.labels.append(row[targets[0]])
            case .binary, .multiclass:
                guard classes.contains(row[targets[0]]) else {
                    throw NodeError("\(file):\(line): label '\(row[targets[0]])' is not one of the classes \(classes.joined(separator: ", "))")
                }
                result.labels.append(row[targets[0]])
            }
            result.scores.append(try scoreIndices.map(number))
        }
        return result
    }
}
