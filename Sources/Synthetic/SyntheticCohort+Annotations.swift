import Foundation
import NICBasics

/// The patch-level annotations of patches.csv (level-0 patch centres, 128 px = 64 µm patches), drawn as an
/// annotation set of real slides would be:
/// - `tissue`: stroma or tumour (the majority class on the patch's 8×8 lattice) at random tissue positions;
/// - `nuclei`: the number of nucleus centres in the patch, at other random tissue positions;
/// - `mitosis`: positives centred on true mitoses (up to half the slide's rows, as an annotator clicks on
///   figures); negatives fill the rest, `hardNegativeFraction` of them (default 50 %) from tumour without a
///   mitosis in the patch — the hard cases, often holding apoptotic bodies and lymphocytes — and the
///   others from random tissue positions without a mitosis. Without hard negatives the task would be a
///   tumour detector: random negatives are mostly stroma, since tumour of a proliferative slide rarely
///   lacks a mitosis over 64 µm.
///
/// `AnnotationStyle.sparse` annotates the mitosis task as pathologists' point sets are made (TUPAC16's
/// auxiliary set, AMIDA13, MIDOG): each true figure of the slide (patch inside the slide) is marked with
/// probability `fraction`, as a point displaced from the figure's centre by a uniform draw in a disc of
/// radius `noise` px (a click is not on the exact centre), label "1"; no negatives at all. A patch
/// without a mark may still hold a figure nobody marked. Tissue and nuclei rows are as in the exhaustive style.
extension SyntheticCohort {
    public enum AnnotationStyle: Sendable, Equatable {
        /// Positives centred on true figures, negatives known to hold none (only a generator can know that).
        case exhaustive
        /// A `fraction` of the figures marked as points with up to `noise` px of placement error; no negatives.
        case sparse(fraction: Double, noise: Double)

        public var description: String {
            switch self {
            case .exhaustive: return "exhaustive"
            case let .sparse(fraction, noise): return String(format: "sparse (%.0f %% of figures marked, placement noise up to %g px, no negatives)", fraction * 100, noise)
            }
        }
    }

    public struct PatchAnnotation: Sendable, Equatable {
        /// Why the patch was chosen (not written to patches.csv; for tests and summaries).
        public enum Source: String, Sendable { case random, mitosis, hardNegative }
        public let slide: String
        public let x: Int, y: Int
        public let task: String
        public let label: String
        public let source: Source

        var csvRow: String { "\(slide),\(x),\(y),\(task),\(label)" }
    }

    /// The patch annotations of one slide.
    public func annotations(_ slide: SyntheticSlide, stem: String) -> [PatchAnnotation] {
        var rng = SplitMix64(seed: SeedStream(slide.spec.seed).derive(.syntheticAnnotations))
        let half = Double(options.patchSize) / 2
        let w = Double(slide.spec.width), h = Double(slide.spec.height)
        let n = options.annotationsPerTask
        // Random positions (patches entirely inside the slide) whose centre is of an accepted class and whose
        // patch passes `keep`, by rejection sampling with a bounded number of attempts.
        func sample(_ count: Int, centre: Set<TissueClass>, keep: (PatchTruth) -> Bool = { _ in true }) -> [PatchTruth] {
            var out: [PatchTruth] = []
            var attempts = 0
            while out.count < count && attempts < max(count, 1) * 200 {
                attempts += 1
                let cx = rng.uniform(half, w - half).rounded(), cy = rng.uniform(half, h - half).rounded()
                guard centre.contains(slide.tissueClass(x: cx, y: cy)) else { continue }
                let truth = patchContent(slide, x: Int(cx), y: Int(cy))
                if keep(truth) { out.append(truth) }
            }
            return out
        }
        func row(_ t: PatchTruth, _ task: String, _ label: String, _ source: PatchAnnotation.Source) -> PatchAnnotation {
            PatchAnnotation(slide: stem, x: t.x, y: t.y, task: task, label: label, source: source)
        }
        var rows: [PatchAnnotation] = []
        rows += sample(n, centre: [.tumour, .stroma]).filter { $0.tissueClass != .background }.map { row($0, "tissue", $0.tissueClass.rawValue, .random) }
        rows += sample(n, centre: [.tumour, .stroma]).map { row($0, "nuclei", "\($0.nuclei)", .random) }
        if case let .sparse(fraction, noise) = options.annotation {
            // Its own stream, so the tissue and nuclei rows above are those of the exhaustive style.
            var marks = SplitMix64(seed: SeedStream(slide.spec.seed).derive(.syntheticAnnotationMarks))
            for m in slide.nuclei(x0: half, y0: half, x1: w - half, y1: h - half) where m.kind == .mitosis {
                let chosen = marks.unit() < fraction
                let r = noise * marks.unit().squareRoot(), t = 2 * Double.pi * marks.unit()
                guard chosen else { continue }
                let x = min(max((m.x + r * cos(t)).rounded(.down), half), w - half), y = min(max((m.y + r * sin(t)).rounded(.down), half), h - half)
                rows.append(PatchAnnotation(slide: stem, x: Int(x), y: Int(y), task: "mitosis", label: "1", source: .mitosis))
            }
            return rows
        }
        // Mitosis positives: patches centred on true mitoses, at most half the task's rows.
        let mitoses = slide.nuclei(x0: half, y0: half, x1: w - half, y1: h - half).filter { $0.kind == .mitosis }
        let positives = mitoses.shuffled(using: &rng).prefix(n / 2).map { m in
            patchContent(slide, x: Int(m.x.rounded(.down)), y: Int(m.y.rounded(.down)))
        }
        rows += positives.map { row($0, "mitosis", "1", .mitosis) }
        let negatives = n - positives.count
        let hard = sample(Int((options.hardNegativeFraction * Double(negatives)).rounded()), centre: [.tumour]) {
            $0.mitoses == 0 && $0.tissueClass == .tumour
        }
        rows += hard.map { row($0, "mitosis", "0", .hardNegative) }
        rows += sample(negatives - hard.count, centre: [.tumour, .stroma]) { $0.mitoses == 0 }.map { row($0, "mitosis", "0", .random) }
        return rows
    }
}
