import NICBasics
import Flow
import Foundation
import Neural
import Slides

/// Unsupervised encoder training by contrast (NIC's contrastive encoder): the same encoder on two
/// patches (Siamese), the codes into a small head (`nodes/encoders/contrastive-head.yaml`) that says
/// whether they come from neighbouring places of one slide (75% of pairs) or from different slides
/// (25%), trained with binary cross-entropy. Neighbours are grid neighbours (grid-mode PatchSets) or
/// patches whose centres lie within 1.5 patch widths (training-mode PatchSets); a patch without one
/// pairs with a second augmentation of itself.
enum ContrastiveTraining {
    static func run(_ context: NodeContext, _ params: EncoderNode.Params, patchSet: PatchSet, encoder: Network, info startInfo: EncoderModel.Info,
                    out: URL, seed: UInt64) throws {
        var info = startInfo
        let codeSize = encoder.outputShape.reduce(1, *)
        guard let headURL = params.contrastiveHead?.url else {
            throw NodeError("training 'contrastive' needs param 'contrastive_head' (e.g. nodes/encoders/contrastive-head.yaml)")
        }
        let head = try Architecture.load(file: headURL.path).build(seed: seed &+ 31, inputShapes: [[codeSize], [codeSize]], prefix: "head")
        let records = patchSet.records
        let slides = Set(records.map(\.slide))
        guard slides.count >= 2 else { throw NodeError("training 'contrastive' needs patches from at least 2 slides (negatives come from another slide)") }
        // Neighbours of every patch.
        var bySlide: [String: [Int]] = [:]
        for (i, r) in records.enumerated() { bySlide[r.slide, default: []].append(i) }
        let reach = Double(patchSet.info.size) * 1.5 * 2  // level-0 px at ~0.25 µm/px worst case; grids use cells
        var neighbours = [[Int]](repeating: [], count: records.count)
        for members in bySlide.values {
            for i in members {
                for j in members where j != i {
                    if let c1 = records[i].column, let r1 = records[i].row, let c2 = records[j].column, let r2 = records[j].row {
                        if max(abs(c1 - c2), abs(r1 - r2)) == 1 { neighbours[i].append(j) }
                    } else {
                        let dx = Double(records[i].x - records[j].x), dy = Double(records[i].y - records[j].y)
                        if (dx * dx + dy * dy).squareRoot() <= reach { neighbours[i].append(j) }
                    }
                }
            }
        }
        let images = try (0..<patchSet.count).map { try patchSet.patch($0) }
        let augmenter = try patchSet.augmenter()
        let (train, validation) = EncoderNode.holdOut(images.count, fraction: params.validation, seed: seed ^ 0xC0DE)
        let slideList = Array(slides).sorted()

        /// (anchor, partner, same) pairs for these anchors, drawn with `pairRng`.
        func pairs(_ anchors: [Int], _ pairRng: inout Xoshiro256StarStar) -> [(Int, Int, Bool)] {
            anchors.map { a in
                if pairRng.nextUnitFloat() < 0.75 {
                    let options = neighbours[a]
                    return (a, options.isEmpty ? a : options[Int(pairRng.next() % UInt64(options.count))], true)
                }
                let others = slideList.filter { $0 != records[a].slide }
                let slide = others[Int(pairRng.next() % UInt64(others.count))]
                let members = bySlide[slide]!  // invariant: slide taken from bySlide.keys
                return (a, members[Int(pairRng.next() % UInt64(members.count))], false)
            }
        }

        let optimizer = Adam(learningRate: Float(params.learningRate), weightDecay: Float(params.weightDecay))
        let d = info.downsample

        func step(_ batch: [(Int, Int, Bool)], epoch: Int, training: Bool) throws -> (loss: Double, correct: Int) {
            // Partners that are the anchor itself get a different augmentation draw (index offset).
            let a = batch.map { p in training ? augmenter?.apply(to: images[p.0], epoch: epoch, index: p.0) ?? images[p.0] : images[p.0] }
            let b = batch.map { p in
                training ? augmenter?.apply(to: images[p.1], epoch: epoch, index: p.1 == p.0 ? p.1 + images.count : p.1) ?? images[p.1] : images[p.1]
            }
            let x = EncoderModel.preprocess(a + b, downsample: d)
            let codes = try encoder.forward(x, training: training).reshaped([2 * batch.count, codeSize])
            let codeA = codes.items(0..<batch.count), codeB = codes.items(batch.count..<(2 * batch.count))
            let logits = try head.forward([codeA, codeB], training: training)
            let result = try Loss.binaryCrossEntropy(logits: logits, targets: batch.map { $0.2 ? 1 : 0 })
            let correct = zip(logits.data, batch).filter { ($0.0 > 0) == $0.1.2 }.count
            if training {
                let grads = try head.backward(result.gradient)
                let joined = Tensor(shape: [2 * batch.count, codeSize], data: grads[0].data + grads[1].data)
                try encoder.backward(joined.reshaped([2 * batch.count] + encoder.outputShape))
            }
            return (result.value, correct)
        }

        // Each epoch pairs its shuffled anchors with the same generator that shuffled them.
        var epochPairs: [(Int, Int, Bool)] = []
        let trainer = Trainer(schedule: params.schedule, update: .optimizer(optimizer, parameters: encoder.parameters + head.parameters), context: context)
        let outcome = try trainer.fit(
            order: { epoch in
                var pairRng = Xoshiro256StarStar(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
                let anchors = pairRng.permutation(train.count).map { train[$0] }
                epochPairs = pairs(anchors, &pairRng)
                return Array(epochPairs.indices)
            },
            step: { batch, epoch in StepResult(loss: try step(batch.map { epochPairs[$0] }, epoch: epoch, training: true).loss) },
            validate: { _ in
                var validationRng = Xoshiro256StarStar(seed: seed &+ 0xFACE)
                let validationPairs = pairs(validation.isEmpty ? train : validation, &validationRng)
                var valLoss = 0.0, correct = 0, batches = 0
                for start in stride(from: 0, to: validationPairs.count, by: 128) {
                    let batch = Array(validationPairs[start..<min(validationPairs.count, start + 128)])
                    let r = try step(batch, epoch: 0, training: false)
                    valLoss += r.loss
                    correct += r.correct
                    batches += 1
                }
                return ValidationResult(loss: valLoss / Double(max(1, batches)),
                                        metrics: [("accuracy", Double(correct) / Double(max(1, validationPairs.count)))])
            },
            snapshot: { (encoder: encoder.stateDict(), head: head.stateDict()) })
        info.training = "contrastive"
        info.trainPatches = train.count
        info.validationPatches = validation.count
        try EncoderNode.writeTrained(outcome, info: info, weights: { [("encoder.safetensors", $0.encoder), ("heads.safetensors", $0.head)] },
                                     definitions: [(headURL, "contrastive-head.yaml")], to: out)
    }
}
