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
                    out: URL, seed: UInt64, started: Stopwatch) throws {
        var info = startInfo
        let codeSize = encoder.outputShape.reduce(1, *)
        guard let headReference = params.contrastiveHead else {
            throw NodeError("training 'contrastive' needs param 'contrastive_head' (e.g. nodes/encoders/contrastive-head.yaml)")
        }
        let head = try Architecture(headReference).build(seed: seed &+ 31, inputShapes: [[codeSize], [codeSize]], prefix: "head")
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
        let inputs = try EncoderInputs(patchSet: patchSet, downsample: info.downsample, params: params, context: context, started: started)
        let (train, validation) = EncoderNode.holdOut(patchSet.count, fraction: params.validation, seed: seed ^ 0xC0DE)
        let slideList = Array(slides).sorted()
        let count = patchSet.count

        /// (anchor, partner, same) pairs for one batch of anchors, drawn with `pairRng`. A negative is
        /// another anchor of the batch from another slide (its patch is at hand), or when the batch has
        /// none, any patch of another slide.
        func pairs(_ anchors: [Int], _ pairRng: inout Xoshiro256StarStar) -> [Pair] {
            anchors.map { a in
                if pairRng.nextUnitFloat() < 0.75 {
                    let options = neighbours[a]
                    return Pair(anchor: a, partner: options.isEmpty ? a : options[Int(pairRng.next() % UInt64(options.count))], same: true)
                }
                let inBatch = anchors.filter { records[$0].slide != records[a].slide }
                if !inBatch.isEmpty { return Pair(anchor: a, partner: inBatch[pairRng.int(below: inBatch.count)], same: false) }
                let others = slideList.filter { $0 != records[a].slide }
                let slide = others[Int(pairRng.next() % UInt64(others.count))]
                let members = bySlide[slide]!  // invariant: slides come from bySlide's keys
                return Pair(anchor: a, partner: members[Int(pairRng.next() % UInt64(members.count))], same: false)
            }
        }

        /// The input of a batch of pairs: anchors then partners. A partner that is not in the batch is
        /// read on its own (neighbours mostly share the anchor's chunk, which stays decoded); a partner
        /// that is the anchor itself gets another augmentation draw (index offset).
        func assemble(_ pairsOf: [Int: Pair], augmenter: Augmenter?, epoch: Int) -> PatchLoader<Tensor>.Assemble {
            let d = info.downsample
            return { anchors, patches in
                let at = Dictionary(zip(anchors, patches), uniquingKeysWith: { a, _ in a })
                let partners = try anchors.map { a -> RGBImage in
                    let p = pairsOf[a]!.partner  // invariant: every anchor of the epoch was paired
                    if let patch = at[p] { return patch }
                    return try patchSet.patch(p)
                }
                let all = patches + partners
                let keys = anchors + anchors.map { a in pairsOf[a]!.partner == a ? a + count : pairsOf[a]!.partner }  // invariant: as above
                let augmented = try augmenter.map { augmenter in
                    try concurrentMap(all.count, workers: CurrentCompute.context.threads) { augmenter.apply(to: all[$0], epoch: epoch, index: keys[$0]) }
                } ?? all
                return EncoderModel.preprocess(augmented, downsample: d)
            }
        }

        let optimizer = Adam(learningRate: Float(params.learningRate), weightDecay: Float(params.weightDecay))

        func step(_ batch: [Pair], x: Tensor, training: Bool) throws -> (loss: Double, correct: Int) {
            let codes = try encoder.forward(x, training: training).reshaped([2 * batch.count, codeSize])
            let codeA = codes.items(0..<batch.count), codeB = codes.items(batch.count..<(2 * batch.count))
            let logits = try head.forward([codeA, codeB], training: training)
            let result = try Loss.binaryCrossEntropy(logits: logits, targets: batch.map { $0.same ? 1 : 0 })
            let correct = zip(logits.data, batch).filter { ($0.0 > 0) == $0.1.same }.count
            if training {
                let grads = try head.backward(result.gradient)
                let joined = Tensor(shape: [2 * batch.count, codeSize], data: grads[0].data + grads[1].data)
                try encoder.backward(joined.reshaped([2 * batch.count] + encoder.outputShape))
            }
            return (result.value, correct)
        }

        // Each epoch pairs the anchors of each batch with a generator fixed by (seed, epoch).
        var epochPairs: [Int: Pair] = [:]
        let batchSize = max(1, params.batchSize)
        func pairBatches(_ anchors: [Int], _ pairRng: inout Xoshiro256StarStar) -> [Int: Pair] {
            var all: [Int: Pair] = [:]
            for start in stride(from: 0, to: anchors.count, by: batchSize) {
                for pair in pairs(Array(anchors[start..<min(anchors.count, start + batchSize)]), &pairRng) { all[pair.anchor] = pair }
            }
            return all
        }
        let order = inputs.order(train)
        let trainer = Trainer.encoder(schedule: params.schedule, update: .optimizer(optimizer, parameters: encoder.parameters + head.parameters), context: context)
        let outcome = try trainer.fit(
            order: { epoch in
                let anchors = order(epoch)
                var pairRng = Xoshiro256StarStar(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
                epochPairs = pairBatches(anchors, &pairRng)
                return anchors
            },
            prefetch: { epoch, batches in
                inputs.loader.start(batches, augment: nil, assemble: assemble(epochPairs, augmenter: inputs.augmenter, epoch: epoch))
            },
            step: { batch, _ in
                try inputs.step(batch) { x in StepResult(loss: try step(batch.compactMap { epochPairs[$0] }, x: x, training: true).loss) }
            },
            validate: { _ in
                let anchors = (validation.isEmpty ? train : validation).sorted()
                var validationRng = Xoshiro256StarStar(seed: seed &+ 0xFACE)
                var validationPairs: [Int: Pair] = [:]
                for start in stride(from: 0, to: anchors.count, by: 128) {
                    for pair in pairs(Array(anchors[start..<min(anchors.count, start + 128)]), &validationRng) { validationPairs[pair.anchor] = pair }
                }
                var valLoss = 0.0, correct = 0, batches = 0
                return try inputs.validate(anchors, batchSize: 128, assemble: assemble(validationPairs, augmenter: nil, epoch: 0), { batch, x in
                    try context.checkCancellation()
                    let r = try step(batch.compactMap { validationPairs[$0] }, x: x, training: false)
                    valLoss += r.loss
                    correct += r.correct
                    batches += 1
                }, result: {
                    ValidationResult(loss: valLoss / Double(max(1, batches)), metrics: [("accuracy", Double(correct) / Double(max(1, anchors.count)))])
                })
            },
            snapshot: { (encoder: encoder.stateDict(), head: head.stateDict()) })
        info.training = "contrastive"
        info.trainPatches = train.count
        info.validationPatches = validation.count
        try EncoderNode.writeTrained(outcome, info: info, time: inputs.time, context: context, weights: { [("encoder.safetensors", $0.encoder), ("heads.safetensors", $0.head)] },
                                     definitions: [(try headReference.keyedText(), "contrastive-head.yaml")], to: out)
    }
}

/// A contrastive training pair: an anchor patch, its partner, and whether they are neighbours.
private struct Pair {
    var anchor: Int
    var partner: Int
    var same: Bool
}
