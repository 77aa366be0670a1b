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
final class ContrastiveTraining: EncoderTrainingMode {
    struct Params: NodeParams {
        @Param(doc: "the pair head", schema: Architecture.self) var contrastiveHead: Reference? = Reference("nodes/encoders/contrastive-head.yaml")
        init() {}
    }

    let setup: EncoderTrainingSetup
    let headReference: Reference
    let encoder: Network
    let head: Network
    let codeSize: Int
    let records: [PatchRecord]
    let bySlide: [String: [Int]]
    let slideList: [String]
    /// Per patch, the patches of its slide next to it.
    let neighbours: [[Int]]
    /// The pairs of the epoch being trained, by anchor (drawn when the trainer asks for its order).
    var epochPairs: [Int: Pair] = [:]

    init(_ setup: EncoderTrainingSetup, _ params: Params) throws {
        self.setup = setup
        encoder = setup.encoder
        codeSize = encoder.outputShape.reduce(1, *)
        guard let headReference = params.contrastiveHead else {
            throw NodeError("training 'contrastive' needs param 'contrastive_head' (e.g. nodes/encoders/contrastive-head.yaml)")
        }
        self.headReference = headReference
        head = try Architecture(headReference).build(seed: SeedStream(setup.seed).derive(.contrastiveHead), inputShapes: [[codeSize], [codeSize]], prefix: "head")
        records = setup.patchSet.records
        let slides = Set(records.map(\.slide))
        guard slides.count >= 2 else { throw NodeError("training 'contrastive' needs patches from at least 2 slides (negatives come from another slide)") }
        var bySlide: [String: [Int]] = [:]
        for (i, r) in records.enumerated() { bySlide[r.slide, default: []].append(i) }
        self.bySlide = bySlide
        slideList = Array(slides).sorted()
        neighbours = Self.neighbours(records, bySlide: bySlide, patchSize: setup.patchSet.info.size)
    }

    /// Grid neighbours (8-connected) when patches have cells, else patches of the slide within reach.
    static func neighbours(_ records: [PatchRecord], bySlide: [String: [Int]], patchSize: Int) -> [[Int]] {
        let reach = Double(patchSize) * 1.5 * 2  // level-0 px at ~0.25 µm/px worst case; grids use cells
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
        return neighbours
    }

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

    /// The pairs of `anchors` taken `batchSize` at a time (negatives come from the same batch), by anchor.
    func pairBatches(_ anchors: [Int], batchSize: Int, _ pairRng: inout Xoshiro256StarStar) -> [Int: Pair] {
        var all: [Int: Pair] = [:]
        for start in stride(from: 0, to: anchors.count, by: batchSize) {
            for pair in pairs(Array(anchors[start..<min(anchors.count, start + batchSize)]), &pairRng) { all[pair.anchor] = pair }
        }
        return all
    }

    /// The input of a batch of pairs: anchors then partners. A partner that is not in the batch is
    /// read on its own (neighbours mostly share the anchor's chunk, which stays decoded); a partner
    /// that is the anchor itself gets another augmentation draw (index offset).
    func assemble(_ pairsOf: [Int: Pair], augmenter: Augmenter?, epoch: Int) -> PatchLoader<Tensor>.Assemble {
        let (d, patchSet, count) = (setup.info.downsample, setup.patchSet, setup.patchSet.count)
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

    /// A training pair: an anchor patch, its partner, and whether they are neighbours.
    struct Pair {
        var anchor: Int
        var partner: Int
        var same: Bool
    }

    /// What the forward pass keeps for the backward one.
    struct Forward {
        var loss: LossResult
        var correct: Int
    }

    /// x (anchors then partners) → encoder → codes (a, b) → head → "same place" logits; binary cross-entropy.
    func forward(_ batch: [Pair], x: Tensor, training: Bool) throws -> Forward {
        let codes = try encoder.forward(x, training: training).reshaped([2 * batch.count, codeSize])
        let codeA = codes.items(0..<batch.count), codeB = codes.items(batch.count..<(2 * batch.count))
        let logits = try head.forward([codeA, codeB], training: training)
        let loss = try Loss.binaryCrossEntropy(logits: logits, targets: batch.map { $0.same ? 1 : 0 })
        let correct = zip(logits.data, batch).filter { ($0.0 > 0) == $0.1.same }.count
        return Forward(loss: loss, correct: correct)
    }

    /// Back through the head to both codes, and through the encoder (once, for anchors and partners).
    func backward(_ forward: Forward, pairs: Int) throws {
        let grads = try head.backward(forward.loss.gradient)
        let joined = Tensor(shape: [2 * pairs, codeSize], data: grads[0].data + grads[1].data)
        try encoder.backward(joined.reshaped([2 * pairs] + encoder.outputShape))
    }

    /// Validation on fixed pairs (one draw for every epoch), 128 anchors a batch, without augmentation.
    func validate(_ anchors: [Int], inputs: EncoderInputs) throws -> ValidationResult {
        var validationRng = Xoshiro256StarStar(seed: SeedStream(setup.seed).derive(.contrastiveValidationPairs))
        let validationPairs = pairBatches(anchors, batchSize: 128, &validationRng)
        var valLoss = 0.0, correct = 0, batches = 0
        return try inputs.validate(anchors, batchSize: 128, assemble: assemble(validationPairs, augmenter: nil, epoch: 0), { batch, x in
            try setup.context.checkCancellation()
            let pass = try forward(batch.compactMap { validationPairs[$0] }, x: x, training: false)
            valLoss += pass.loss.value
            correct += pass.correct
            batches += 1
        }, result: {
            ValidationResult(loss: valLoss / Double(max(1, batches)), metrics: [("accuracy", Double(correct) / Double(max(1, anchors.count)))])
        })
    }

    func train() throws {
        let (context, params, patchSet) = (setup.context, setup.params, setup.patchSet)
        var info = setup.info
        let inputs = try setup.inputs()
        let (train, validation) = EncoderNode.holdOut(patchSet.count, fraction: params.validation, seed: SeedStream(setup.seed).derive(.contrastiveValidation))
        let optimizer = Adam(learningRate: Float(params.learningRate), weightDecay: Float(params.weightDecay))
        let batchSize = max(1, params.batchSize)
        let order = inputs.order(train)
        let trainer = Trainer.encoder(schedule: params.schedule, update: .optimizer(optimizer, parameters: encoder.parameters + head.parameters), context: context)
        let outcome = try trainer.fit(
            order: { epoch in
                // Each epoch pairs the anchors of each batch with a generator fixed by (seed, epoch).
                let anchors = order(epoch)
                var pairRng = Xoshiro256StarStar(seed: SeedStream(self.setup.seed).derive(.contrastivePairs, epoch))
                self.epochPairs = self.pairBatches(anchors, batchSize: batchSize, &pairRng)
                return anchors
            },
            prefetch: { epoch, batches in
                inputs.loader.start(batches, augment: nil, assemble: self.assemble(self.epochPairs, augmenter: inputs.augmenter, epoch: epoch))
            },
            step: { batch, _ in
                try inputs.step(batch) { x in
                    let pairs = batch.compactMap { self.epochPairs[$0] }
                    let pass = try self.forward(pairs, x: x, training: true)
                    try self.backward(pass, pairs: pairs.count)
                    return StepResult(loss: pass.loss.value)
                }
            },
            validate: { _ in try self.validate((validation.isEmpty ? train : validation).sorted(), inputs: inputs) },
            snapshot: { (encoder: self.encoder.stateDict(), head: self.head.stateDict()) })
        info.training = "contrastive"
        info.trainPatches = train.count
        info.validationPatches = validation.count
        try EncoderNode.writeTrained(outcome, info: info, time: inputs.time, context: context, weights: { [("encoder.safetensors", $0.encoder), ("heads.safetensors", $0.head)] },
                                     definitions: [(try headReference.keyedText(), "contrastive-head.yaml")], to: setup.out)
    }
}
