/// Every seed nic derives from another seed, by name: `SeedStream(seed).derive(.vaeDecoder)`, or
/// with an index for one stream per epoch, fold or task: `.derive(.epochShuffle, epoch)`.
///
/// The derivations are the hand offsets each call site used before the streams had names (`seed &+ 17`,
/// `seed ^ 0x5EED`, …), written down once here. They are kept exactly — NICBasicsTests pins each name
/// to its old expression — because every trained weight, fold and synthetic slide, and so every cache
/// key downstream of them, depends on these numbers. A new stream gets a new name here; an existing
/// one never changes its derivation without a node version bump.
public struct SeedStream: Sendable {
    public let seed: UInt64
    public init(_ seed: UInt64) { self.seed = seed }

    /// The seed of the stream `name`.
    public func derive(_ name: SeedName) -> UInt64 { name.derivation(seed) }
    /// The seed of item `index` (an epoch, a fold, a task, a metric) of the indexed stream `name`.
    public func derive(_ name: IndexedSeedName, _ index: Int) -> UInt64 { name.derivation(seed, index) }
}

/// A named stream derived from a seed.
public struct SeedName: Sendable, CustomStringConvertible {
    public let description: String
    let derivation: @Sendable (UInt64) -> UInt64
    init(_ name: String, _ derivation: @escaping @Sendable (UInt64) -> UInt64) {
        description = name
        self.derivation = derivation
    }
}

/// A named family of streams, one per index.
public struct IndexedSeedName: Sendable, CustomStringConvertible {
    public let description: String
    let derivation: @Sendable (UInt64, Int) -> UInt64
    init(_ name: String, _ derivation: @escaping @Sendable (UInt64, Int) -> UInt64) {
        description = name
        self.derivation = derivation
    }
}

// MARK: The table

extension IndexedSeedName {
    /// A training epoch's shuffle (the trainer's and the patch loader's order).
    public static let epochShuffle = IndexedSeedName("epoch.shuffle") { seed, epoch in seed &+ UInt64(epoch) &* 0x9E37_79B9 }
    /// A contrastive epoch's pairs. The same numbers as `epochShuffle` (as they always were): the pairs
    /// are drawn by another generator from the order, so the coincidence is kept rather than changing every contrastive encoder.
    public static let contrastivePairs = IndexedSeedName("encoder.contrastive.pairs") { seed, epoch in seed &+ UInt64(epoch) &* 0x9E37_79B9 }
    /// A supervised encoder's head for task `index` (in the order of param 'tasks').
    public static let taskHead = IndexedSeedName("encoder.supervised.head") { seed, task in seed &+ UInt64(task + 1) &* 7919 }
    /// A patient model's (or probe's) fold: the seed its `patientModel*` streams derive from.
    public static let fold = IndexedSeedName("patient_model.fold") { seed, fold in seed &+ UInt64(fold + 1) &* 1_000_003 }
    /// The bootstrap of an evaluator's metric `index`.
    public static let metricBootstrap = IndexedSeedName("evaluator.bootstrap") { seed, metric in seed &+ UInt64(metric) }
}

extension SeedName {
    // Encoder training (from the node's seed; the encoder itself is built at the seed).
    /// The slides a supervised encoder holds out.
    public static let supervisedValidation = SeedName("encoder.supervised.validation") { $0 ^ 0x5EED }
    public static let vaeDecoder = SeedName("encoder.vae.decoder") { $0 &+ 17 }
    /// The VAE's reparameterisation noise ε.
    public static let vaeSample = SeedName("encoder.vae.sample") { $0 &+ 29 }
    /// The patches a VAE holds out (the same numbers as the supervised slides', as they always were).
    public static let vaeValidation = SeedName("encoder.vae.validation") { $0 ^ 0x5EED }
    public static let contrastiveHead = SeedName("encoder.contrastive.head") { $0 &+ 31 }
    public static let contrastiveValidation = SeedName("encoder.contrastive.validation") { $0 ^ 0xC0DE }
    /// The fixed pairs of the contrastive validation.
    public static let contrastiveValidationPairs = SeedName("encoder.contrastive.validation_pairs") { $0 &+ 0xFACE }
    public static let biganGenerator = SeedName("encoder.bigan.generator") { $0 &+ 41 }
    public static let biganDiscriminator = SeedName("encoder.bigan.discriminator") { $0 &+ 43 }
    /// The generator's z.
    public static let biganNoise = SeedName("encoder.bigan.noise") { $0 &+ 47 }

    // Patient models (from a fold's seed, `IndexedSeedName.fold`).
    public static let patientModelHead = SeedName("patient_model.head") { $0 &+ 1 }
    /// The crops and cells drawn for training.
    public static let patientModelSampling = SeedName("patient_model.sampling") { $0 &+ 2 }
    /// The test crops of a prediction (mixed with the patient's name).
    public static let patientModelPrediction = SeedName("patient_model.prediction") { $0 &+ 3 }
    /// The crops of the held-out curve.
    public static let patientModelHeldOut = SeedName("patient_model.held_out") { $0 &+ 4 }

    // Bag (MIL) models (from the model's seed).
    public static let bagHead = SeedName("bag.head") { $0 &+ 1 }
    public static let bagPooling = SeedName("bag.pooling") { $0 &+ 11 }
    public static let bagAfterPooling = SeedName("bag.after") { $0 &+ 13 }
    /// Attention pooling's dropout (from the pooling's seed).
    public static let bagPoolingDropout = SeedName("bag.pooling.dropout") { $0 &+ 1 }

    // Synthetic cohorts (from a slide's seeds).
    /// Lymphocytes, from the slide's cell seed.
    public static let syntheticLymphocytes = SeedName("synthetic.lymphocytes") { SplitMix64.mix($0 ^ 0x1E0C_7E5B_A11D_0001) }
    /// The chromatin grain of the cells, from the texture seed.
    public static let syntheticGrain = SeedName("synthetic.grain") { $0 &+ 11 }
    /// The stroma's fibres, from the texture seed.
    public static let syntheticFibre = SeedName("synthetic.fibre") { $0 &+ 7 }
    /// The annotated patches, from the slide's seed.
    public static let syntheticAnnotations = SeedName("synthetic.annotations") { $0 ^ 0xA11C_E5ED }
    /// The annotator's marks, from the slide's seed.
    public static let syntheticAnnotationMarks = SeedName("synthetic.annotation_marks") { $0 ^ 0x5BA2_5E00_0000_0027 }
}
