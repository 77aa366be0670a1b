import NICBasics
import Flow
import Foundation
import Neural
import Stats
import Slides
import TensorStore

/// The patient model when its architecture has a `pool` entry: multiple-instance learning over the
/// tissue cells of compressed slides (ABMIL/CLAM-style gated attention, plain attention, or a masked
/// mean). Background cells never enter a bag, so slides of any size and shape are handled whole.
///
/// A bag is a patient (every slide's tissue cells pooled; `aggregation: patient`, the default for bag
/// models) or a slide (`aggregation: slides`: predictions averaged per patient). A training step
/// takes `batch_size` bags, each slide in a random stored orientation (the codes of the rotated
/// patches) and at most `bag_cells` random cells per bag, so a step's memory is bounded whatever the
/// slide size. A Cox head with `risk_set: fold` compares a step's bags with every training bag of the
/// fold (their latest risks, `PatientTargets.FoldRisks`); with `risk_set: batch` the step's bags are
/// its whole risk set. Prediction uses every cell of every slide, chunked
/// with an online softmax (memory: one chunk plus one logit per cell), averaged over orientations.
///
/// Writes `attention/<slide>` (zarr float32 [rows, columns]: each tissue cell's attention weight in
/// its bag, orientation 0, out-of-fold; 0 on background) and `attention/<slide>.png` (the map in
/// colour, beside or over the slide thumbnail when the compressor drew one).
enum BagPatientModel {
    struct Slide {
        var stem: String
        var patient: String
        var rows: Int, columns: Int
        /// Grid index (row-major, orientation 0) of every tissue cell.
        var cellIndex: [Int]
        /// Per orientation: the tissue cells' codes [cells, C], float16 to halve the memory.
        var codes: [[Float16]]
    }

    static func run(_ context: NodeContext, _ params: PatientModel.Params, gridSet: GridSet, architecture: Architecture,
                    targets: PatientTargets, aggregation: PatientModel.Aggregation) throws {
        let headArchitecture = try Heads.architecture(params.head, outputs: targets.networkOutputs)
        let channels = gridSet.info.codeSize
        let (slides, empty) = try load(gridSet, patients: Set(targets.patients))
        if !empty.isEmpty {
            context.logger.warning("\(empty.count) slide(s) without a tissue cell left out (a bag of nothing has no prediction): \(empty.prefix(10).joined(separator: ", "))\(empty.count > 10 ? ", …" : "")")
        }
        guard !slides.isEmpty else { throw NodeError("no labelled slide has a tissue cell: nothing to train on") }
        // A bag: the slides it is made of.
        let bags: [[Int]] = aggregation == .patient
            ? targets.patients.map { p in slides.indices.filter { slides[$0].patient == p } }.filter { !$0.isEmpty }
            : slides.indices.map { [$0] }
        let seed = UInt64(truncatingIfNeeded: params.seed)
        let folds = targets.folds(params.folds, seed: seed)
        let foldCount = params.folds, epochs = params.epochs
        var scores: [String: [Double]] = [:]
        var curves = [[String]](repeating: [], count: epochs), heldOutCurves = curves
        var attention: [Int: [Float]] = [:]  // slide → attention per tissue cell (orientation 0)
        let modelFolder = try context.output("model")
        var members: [TrainedModel.Member] = []

        for fold in 0..<foldCount {
            let trainBags = bags.indices.filter { folds[slides[bags[$0][0]].patient] != fold }
            let heldOutBags = bags.indices.filter { folds[slides[bags[$0][0]].patient] == fold }
            let foldSeed = SeedStream(seed).derive(.fold, fold)
            let model = try BagModel(architecture: architecture, features: channels, head: headArchitecture, seed: foldSeed)
            let scaling = Standardization(slides: Set(trainBags.flatMap { bags[$0] }).sorted().map { slides[$0] }, channels: channels)
            let trainer = PatientModel.trainer(params, parameters: model.parameters, fold: fold, context: context)
            var rng = SplitMix64(seed: SeedStream(foldSeed).derive(.patientModelSampling))
            // Cox over the whole fold: every training bag's risk, first from the untrained model.
            var risks = try targets.foldRisks(items: trainBags, patient: { slides[bags[$0][0]].patient }) { b in
                let x = scaling.apply(sampleCells(bags[b].map { slides[$0] }, limit: params.bagCells, channels: channels, rng: &rng))
                return try model.forward(Tensor(shape: [x.count / channels, channels], data: x), bags: [0..<(x.count / channels)], training: false).output.data[0]
            }
            let outcome = try trainer.fit(
                order: { _ in PatientModel.epochOrder(trainBags, repeats: params.cropsPerSlide, rng: &rng) },
                step: { batch, _ in
                    let patients = batch.map { slides[bags[$0][0]].patient }
                    guard targets.canTrain(on: patients) else { return nil }
                    var cells: [Float] = [], ranges: [Range<Int>] = []
                    for b in batch {
                        let start = cells.count / channels
                        cells += scaling.apply(sampleCells(bags[b].map { slides[$0] }, limit: params.bagCells, channels: channels, rng: &rng))
                        ranges.append(start..<(cells.count / channels))
                    }
                    let x = Tensor(shape: [cells.count / channels, channels], data: cells)
                    let (output, _) = try model.forward(x, bags: ranges, training: true)
                    let result = try targets.loss(output, patients: patients, items: batch, memory: &risks)
                    try model.backward(result.gradient)
                    return StepResult(loss: result.value)
                },
                heldOut: { _ in
                    // The same cells every epoch (their own generator, so training draws as without it),
                    // orientation 0, eval mode; the fold's held-out bags as one batch for the loss.
                    var heldOutRNG = SplitMix64(seed: SeedStream(foldSeed).derive(.patientModelHeldOut))
                    let patients = heldOutBags.map { slides[bags[$0][0]].patient }
                    guard !heldOutBags.isEmpty, targets.canTrain(on: patients) else { return nil }
                    var logits: [Float] = []
                    for b in heldOutBags {
                        let x = scaling.apply(sampleCells(bags[b].map { slides[$0] }, limit: params.bagCells, channels: channels, rng: &heldOutRNG, orientation: 0))
                        logits += try model.forward(Tensor(shape: [x.count / channels, channels], data: x), bags: [0..<(x.count / channels)], training: false).output.data
                    }
                    return try targets.loss(Tensor(shape: [heldOutBags.count, targets.networkOutputs], data: logits), patients: patients).value
                },
                snapshot: { () })
            PatientModel.record(outcome, into: &curves, heldOut: &heldOutCurves)

            for bag in bags.indices where folds[slides[bags[bag][0]].patient] == fold {
                try context.checkCancellation()
                let (sum, weights) = try predictBag(model, members: bags[bag].map { slides[$0] }, scaling: scaling, channels: channels, mapping: targets.mapping)
                var offset = 0
                for slide in bags[bag] {
                    let count = slides[slide].cellIndex.count
                    attention[slide] = Array(weights[offset..<(offset + count)])
                    offset += count
                }
                let patient = slides[bags[bag][0]].patient
                // With one bag per slide a patient's slides are averaged.
                let share = Double(bags.filter { slides[$0[0]].patient == patient }.count)
                scores[patient] = zip(scores[patient] ?? [Double](repeating: 0, count: sum.count), sum).map { $0 + $1 / share }
            }
            let weights = "fold\(fold + 1).safetensors"
            try model.save(to: modelFolder.appendingPathComponent(weights))
            members.append(TrainedModel.Member(fold: fold + 1, weights: weights, trainPatients: Set(trainBags.map { slides[bags[$0][0]].patient }).count,
                                               codeMean: scaling.mean, codeScale: scaling.scale))
        }

        let predictions = targets.predictions(scores: scores, folds: folds)
        let out = try PatientModel.writePredictions(predictions, curves: curves, heldOut: heldOutCurves, context: context)
        try writeAttention(attention, slides: slides, gridSet: gridSet, to: out.appendingPathComponent("attention"), context: context)
        try PatientModel.writeModel(kind: .bag, params, members: members, crop: nil, aggregation: aggregation, gridSet: gridSet, targets: targets,
                                    predictions: predictions,
                                    standardisation: "per code channel, (code − code_mean) · code_scale with each member's training-fold statistics over its tissue cells (every orientation)",
                                    to: modelFolder, context: context)
    }

    /// One bag's prediction by one model: every cell of every member slide, averaged over the
    /// orientations all members have; and each cell's attention weight in orientation 0.
    static func predictBag(_ model: BagModel, members: [Slide], scaling: Standardization, channels: Int, mapping: OutputMapping) throws -> (prediction: [Double], attention: [Float]) {
        let total = members.reduce(0) { $0 + $1.cellIndex.count }
        var sum: [Double] = []
        var attention: [Float] = []
        let orientations = members.map(\.codes.count).min() ?? 1
        for k in 0..<orientations {
            let (output, weights) = try model.predict(count: total) { range in
                Tensor(shape: [range.count, channels], data: scaling.apply(gather(members, orientation: k, range: range, channels: channels)))
            }
            let prediction = mapping.prediction(output.map(Double.init))
            if sum.isEmpty { sum = [Double](repeating: 0, count: prediction.count) }
            for j in sum.indices { sum[j] += prediction[j] / Double(orientations) }
            if k == 0 { attention = weights }
        }
        return (sum, attention)
    }

    /// Codes standardised per channel with the mean and standard deviation of the training fold's
    /// tissue cells (every orientation), as the probe standardises its features: encoders give codes
    /// of any scale (mean-RGB 0–255, a network's codes ±0.1), and one learning rate must suit them all.
    struct Standardization {
        var mean: [Float], scale: [Float]

        init(mean: [Float], scale: [Float]) { (self.mean, self.scale) = (mean, scale) }

        init(slides: [Slide], channels: Int) {
            var sum = [Double](repeating: 0, count: channels), squares = sum, n = 0.0
            for slide in slides {
                for view in slide.codes {
                    for j in 0..<(view.count / channels) {
                        for ch in 0..<channels {
                            let v = Double(view[j * channels + ch])
                            sum[ch] += v
                            squares[ch] += v * v
                        }
                    }
                    n += Double(view.count / channels)
                }
            }
            mean = sum.map { Float($0 / max(1, n)) }
            scale = (0..<channels).map { ch in
                let variance = squares[ch] / max(1, n) - (sum[ch] / max(1, n)) * (sum[ch] / max(1, n))
                return variance > 1e-12 ? Float(1 / variance.squareRoot()) : 1  // a constant channel stays as it is
            }
        }

        func apply(_ cells: [Float]) -> [Float] {
            let channels = mean.count
            var out = cells
            for i in out.indices { out[i] = (out[i] - mean[i % channels]) * scale[i % channels] }
            return out
        }
    }

    /// Every labelled slide's tissue cells in each stored orientation.
    /// Slides without a tissue cell (a TRIDENT slide with no tissue) are left out and listed in `empty`.
    static func load(_ gridSet: GridSet, patients: Set<String>, patientOf: (SlideEntry) -> String? = { $0.labels["patient"] }) throws -> (slides: [Slide], empty: [String]) {
        var slides: [Slide] = []
        var empty: [String] = []
        let c = gridSet.info.codeSize
        for entry in gridSet.slideSet.slides {
            guard let patient = patientOf(entry), patients.contains(patient) else { continue }
            var codes: [[Float16]] = []
            var cellIndex: [Int] = [], rows = 0, columns = 0
            for k in 0..<gridSet.info.orientations {
                let loaded = try gridSet.load(entry.stem, orientation: k)
                let tissue = loaded.mask.indices.filter { loaded.mask[$0] }
                if k == 0 { (cellIndex, rows, columns) = (tissue, loaded.rows, loaded.columns) }
                var view = [Float16](repeating: 0, count: tissue.count * c)
                for (j, i) in tissue.enumerated() {
                    for ch in 0..<c {
                        let value = loaded.grid[i * c + ch]
                        // Held as float16 to halve the memory: a larger code must not become infinite silently.
                        guard abs(value) <= Float(Float16.greatestFiniteMagnitude) else {
                            throw NodeError("slide '\(entry.stem)': code channel \(ch) of cell \(i % loaded.columns), \(i / loaded.columns) is \(value), beyond the ±65504 a bag model holds (float16); scale the features")
                        }
                        view[j * c + ch] = Float16(value)
                    }
                }
                codes.append(view)
            }
            guard !cellIndex.isEmpty else { empty.append(entry.stem); continue }
            slides.append(Slide(stem: entry.stem, patient: patient, rows: rows, columns: columns, cellIndex: cellIndex, codes: codes))
        }
        return (slides, empty)
    }

    /// A training bag: each slide in a random orientation, at most `limit` cells drawn without replacement.
    static func sampleCells(_ members: [Slide], limit: Int, channels: Int, rng: inout SplitMix64, orientation: Int? = nil) -> [Float] {
        let views = members.map { $0.codes[orientation ?? Int(rng.next() % UInt64($0.codes.count))] }
        var refs: [(view: Int, cell: Int)] = []
        for (v, view) in views.enumerated() { for j in 0..<(view.count / channels) { refs.append((v, j)) } }
        if refs.count > limit {
            for i in 0..<limit { refs.swapAt(i, i + Int(rng.next() % UInt64(refs.count - i))) }
            refs.removeLast(refs.count - limit)
        }
        var out = [Float](repeating: 0, count: refs.count * channels)
        for (i, ref) in refs.enumerated() {
            let view = views[ref.view]
            for ch in 0..<channels { out[i * channels + ch] = Float(view[ref.cell * channels + ch]) }
        }
        return out
    }

    /// Cells `range` of the bag made of `members` (their cells one slide after another), orientation k.
    static func gather(_ members: [Slide], orientation k: Int, range: Range<Int>, channels: Int) -> [Float] {
        var out = [Float](repeating: 0, count: range.count * channels)
        var offset = 0, written = 0
        for slide in members {
            let n = slide.cellIndex.count
            let lower = max(range.lowerBound, offset), upper = min(range.upperBound, offset + n)
            if lower < upper {
                let view = slide.codes[k]
                for j in (lower - offset)..<(upper - offset) {
                    for ch in 0..<channels { out[written * channels + ch] = Float(view[j * channels + ch]) }
                    written += 1
                }
            }
            offset += n
        }
        return out
    }

    static func writeAttention(_ attention: [Int: [Float]], slides: [Slide], gridSet: GridSet, to folder: URL, context: NodeContext) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let entries = Dictionary(gridSet.slideSet.slides.map { ($0.stem, $0) }, uniquingKeysWith: { a, _ in a })
        let cellMicrons = Double(gridSet.info.size) * gridSet.info.mpp
        var unreadable: [String] = []
        // The report shows a few maps beside the compressor's false-colour grid of the same slide.
        let preview = folder.deletingLastPathComponent().appendingPathComponent("preview")
        var captions: [String: String] = [:]
        for (index, weights) in attention.sorted(by: { $0.key < $1.key }) {
            try context.checkCancellation()
            let slide = slides[index]
            var map = [Float](repeating: 0, count: slide.rows * slide.columns)
            for (j, cell) in slide.cellIndex.enumerated() { map[cell] = weights[j] }
            try ZarrArrayWriter(at: folder.appendingPathComponent(slide.stem), shape: [slide.rows, slide.columns],
                                chunkShape: [slide.rows, slide.columns], dataType: .float32).write(map)
            let thumbnail = entries[slide.stem].flatMap { AttentionMaps.thumbnail($0, cellMicrons: cellMicrons, rows: slide.rows, columns: slide.columns) }
            if thumbnail == nil { unreadable.append(slide.stem) }
            let png = folder.appendingPathComponent("\(slide.stem).png")
            try PNG.write(AttentionMaps.image(map, rows: slide.rows, columns: slide.columns, tissue: slide.cellIndex, thumbnail: thumbnail), to: png)
            let falseColour = gridSet.folder.appendingPathComponent("preview/\(slide.stem)-pca.png")
            if captions.count < 8, FileManager.default.fileExists(atPath: falseColour.path) {
                try FileManager.default.createDirectory(at: preview, withIntermediateDirectories: true)
                try FileManager.default.copyItem(at: png, to: preview.appendingPathComponent("\(slide.stem)-attention.png"))
                try FileManager.default.copyItem(at: falseColour, to: preview.appendingPathComponent("\(slide.stem)-pca.png"))
                captions["\(slide.stem)-attention.png"] = "\(slide.stem) (patient \(slide.patient)): attention, out of fold (blue low, red high)"
                captions["\(slide.stem)-pca.png"] = "\(slide.stem): codes in false colour"
            }
        }
        if !captions.isEmpty {
            try JSONSerialization.data(withJSONObject: captions, options: [.sortedKeys]).write(to: preview.appendingPathComponent("captions.json"))
        }
        if !unreadable.isEmpty {
            context.logger.warning("attention maps drawn without a thumbnail: slides not readable any more (\(unreadable.prefix(5).joined(separator: ", "))\(unreadable.count > 5 ? ", …" : ""))")
        }
    }
}
