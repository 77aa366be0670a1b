import Flow
import Foundation
import Neural

/// `grid_readout`: a patient score read off named grid channels with nothing learned — the mean of one
/// channel over a patient's tissue cells (all slides), weighted by another (`weight`: a rate of mitoses
/// among the cells an encoder's tissue head calls tumour), or the ratio of two sums (`per`: dark objects
/// per nucleus). Fed by `head_maps` or `object_count`, it gives the score a table compares learned
/// patient models against: what the patch-level heads or a threshold already know of the patient.
///
/// The value is not on the target's scale (a mean probability, a count per cell), so the evaluator's
/// rank metrics (Spearman, Pearson, C-index) are the ones that mean something; every patient is in
/// fold 0 (no fold: nothing is fitted). `readout.csv` has each patient's sums.
public struct GridReadout: NodeType {
    public static let name = "grid_readout"
    public static let version = 1
    public static let summary = "A patient score from named grid channels, nothing learned: a channel's (weighted) mean over the tissue cells, or a ratio of two channels' sums."
    public static let inputs = [PortSpec("grids", .gridSet, doc: "grids with named channels (head_maps, object_count) or codes, channels by number")]
    public static let outputs = [PortSpec("predictions", .predictions, doc: "task.json + predictions.csv (fold 0), readout.csv")]

    public enum Task: String, ParamChoice { case regression, survival }

    public struct Params: NodeParams {
        @Param(doc: "the channel read (a name of gridset.json's channels, or its number)") var value: String
        @Param(doc: "weight each cell's value by this channel (e.g. tissue:tumour): Σ weight·value / Σ weight; empty: every tissue cell weighs 1") var weight = ""
        @Param(doc: "instead of a mean, Σ value / Σ per-channel over the patient's cells (e.g. per: nuclei)") var per = ""
        @Param(doc: "what the score predicts: regression (higher value = higher label) or survival (higher value = higher risk)") var task: Task = .regression
        @Param(doc: "truth column(s) of labels.csv: one label column, or [time, event] for survival", .count(1, 2)) var target: [String]
        public init() {}
    }

    public init() {}

    public func run(_ context: NodeContext, _ params: Params) throws {
        guard params.weight.isEmpty || params.per.isEmpty else {
            throw NodeError("params 'weight' and 'per' both given: a readout is a weighted mean (weight) or a ratio of sums (per), not both")
        }
        let gridSet = try GridSet(folder: try context.input("grids"))
        let value = try gridSet.channel(params.value, param: "value")
        let weight = params.weight.isEmpty ? nil : try gridSet.channel(params.weight, param: "weight")
        let per = params.per.isEmpty ? nil : try gridSet.channel(params.per, param: "per")
        for column in ["patient"] + params.target where !gridSet.slideSet.labelColumns.contains(column) {
            throw NodeError("param 'target': the cohort's labels.csv has no column '\(column)'; it has \(gridSet.slideSet.labelColumns.joined(separator: ", "))")
        }
        let loss: LossSpec = params.task == .survival ? .cox(ties: .breslow) : .meanSquaredError
        let targets = try PatientTargets(loss: loss, head: "grid_readout", columns: params.target, classes: [],
                                         slides: gridSet.slideSet.slides.map { ($0.stem, $0.labels) })
        targets.reportDropped(context)

        var sums: [String: (slides: Int, cells: Int, numerator: Double, denominator: Double)] = [:]
        for slide in gridSet.slideSet.slides {
            guard let patient = slide.labels["patient"], !patient.isEmpty, gridSet.info.slides.contains(where: { $0.stem == slide.stem }) else { continue }
            let (grid, mask, _, _) = try gridSet.load(slide.stem)
            let c = gridSet.info.codeSize
            var entry = sums[patient] ?? (0, 0, 0, 0)
            entry.slides += 1
            for cell in mask.indices where mask[cell] {
                let v = Double(grid[cell * c + value])
                entry.cells += 1
                if let weight {
                    let w = Double(grid[cell * c + weight])
                    entry.numerator += w * v
                    entry.denominator += w
                } else if let per {
                    entry.numerator += v
                    entry.denominator += Double(grid[cell * c + per])
                } else {
                    entry.numerator += v
                    entry.denominator += 1
                }
            }
            sums[patient] = entry
        }

        var scores: [String: [Double]] = [:]
        var rows: [[String]] = []
        for patient in sums.keys.sorted() {
            let s = sums[patient]!  // invariant: iterating its keys
            let readout = s.denominator > 0 ? s.numerator / s.denominator : nil
            rows.append([patient, "\(s.slides)", "\(s.cells)", "\(s.numerator)", "\(s.denominator)", readout.map { "\($0)" } ?? ""])
            if let readout, readout.isFinite { scores[patient] = [readout] }
        }
        let unscored = targets.patients.filter { scores[$0] == nil }
        if !unscored.isEmpty {
            let names = unscored.prefix(20).joined(separator: ", ") + (unscored.count > 20 ? ", …" : "")
            context.warn("\(unscored.count) labelled patient\(unscored.count == 1 ? "" : "s") without tissue cells\(weight == nil && per == nil ? "" : " of non-zero \(params.weight.isEmpty ? params.per : params.weight)") get no score: \(names)")
        }
        guard !scores.isEmpty else { throw NodeError("no patient has a readout: every patient's \(per == nil ? "weight" : "'per'") sum is 0 or it has no tissue cell") }
        var predictions = targets.predictions(scores: scores, folds: Dictionary(uniqueKeysWithValues: targets.patients.map { ($0, 0) }))
        predictions.folds = predictions.folds.map { _ in 0 }
        predictions.skipped = unscored
        let out = try context.output("predictions")
        try predictions.write(to: out)
        try CSVTable(columns: ["patient", "slides", "cells", "numerator", "denominator", "readout"], rows: rows)
            .write(to: out.appendingPathComponent("readout.csv"))
    }
}
