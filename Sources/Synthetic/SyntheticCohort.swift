import Foundation
import NICBasics
import Slides
import Stats

/// A synthetic cohort with known ground truth, for trying nic before real data arrives and for judging
/// results against the best achievable.
///
/// Generative model (all draws from one seed):
/// - Patient p has two latent variables: proliferation `m ~ U(0, 1)` and tumour burden `u ~ U(0.15, 0.65)`.
/// - Each patient has 1 slide, or 2 with probability `secondSlideProbability`. A slide has tumour
///   fraction `clamp(u + N(0, 0.05²), 0.05, 0.9)` of its tissue, mitotic rate per tumour nucleus
///   `r(m) = 0.002 + 0.04·m^1.5`, stain strengths H, E ~ U(0.75, 1.25) each (a nuisance), a pen mark with
///   probability 0.3.
/// - Patient labels (labels.csv, one row per slide, repeated for a patient's slides):
///   `score = m + N(0, 0.1²)` (continuous, like a proliferation score);
///   `high_grade ~ Bernoulli(σ(3(m − 0.5) + 8(u − 0.4)))`;
///   survival: log-hazard `η = 1.2·z(m) + 0.8·z(u)` (z = standardised by the latent's distribution),
///   `T ~ Exp(rate 0.05·e^η)` months, censoring `C ~ U(0, 72)`, `time = min(T, C)`, `event = T ≤ C`.
/// - Patch tasks (patches.csv, level-0 patch centres, 128 px = 64 µm patches): `tissue` (stroma or
///   tumour, the majority class on an 8×8 lattice of the patch), `mitosis` (1 if a mitotic nucleus
///   centre lies in the patch; half of these annotations are centred near true mitoses, as an annotator
///   would mark them), `nuclei` (number of nucleus centres in the patch). An encoder that learns these
///   tasks sees exactly what drives the labels: mitoses ↔ m, tumour area ↔ u.
/// - Oracle (printed and saved in oracle.json): the metric each label reaches when predicted from the
///   true latents — Spearman(score, m), AUC(high_grade, its true probability), Harrell's C(time, event, η)
///   — the ceiling any model can reach on this cohort.
public struct SyntheticCohort {
    public struct Options: Sendable {
        public var patients = 12
        public var size = 3072
        public var seed: UInt64 = 1
        public var compression: PyramidTIFFWriter.Compression = .jpeg(quality: 90)
        public var annotationsPerTask = 60
        public var secondSlideProbability = 0.35
        public var patchSize = 128
        public init() {}
    }

    public struct PatientTruth: Sendable {
        public let patient: String
        public let proliferation: Double
        public let tumourBurden: Double
        public let logHazard: Double
        public let highGradeProbability: Double
        public let score: Double
        public let highGrade: Int
        public let time: Double
        public let event: Int
        public let slides: [String]
    }

    public struct Oracle: Sendable, Codable {
        public let spearmanScore: Double
        public let aucHighGrade: Double
        public let cIndexSurvival: Double
    }

    public let options: Options
    public let patients: [PatientTruth]
    public let slideSpecs: [(stem: String, patient: String, spec: SyntheticSlideSpec)]

    public init(_ options: Options) {
        self.options = options
        var rng = SplitMix64(seed: options.seed)
        var patients: [PatientTruth] = []
        var specs: [(String, String, SyntheticSlideSpec)] = []
        for p in 0..<options.patients {
            let id = String(format: "P%03d", p + 1)
            let m = rng.unit(), u = rng.uniform(0.15, 0.65)
            let eta = 1.2 * (m - 0.5) / (1 / 12.0).squareRoot() + 0.8 * (u - 0.4) / (0.25 / 12).squareRoot()
            let pHigh = 1 / (1 + exp(-(3 * (m - 0.5) + 8 * (u - 0.4))))
            let score = m + 0.1 * rng.normal()
            let highGrade = rng.bernoulli(pHigh) ? 1 : 0
            let t = -log(max(rng.unit(), 1e-12)) / (0.05 * exp(eta))
            let c = rng.uniform(0, 72)
            let slideCount = rng.bernoulli(options.secondSlideProbability) ? 2 : 1
            var stems: [String] = []
            for s in 0..<slideCount {
                let stem = "\(id)-\(s + 1)"
                stems.append(stem)
                let spec = SyntheticSlideSpec(
                    width: options.size, height: options.size, seed: rng.next(),
                    tumourFraction: min(max(u + 0.05 * rng.normal(), 0.05), 0.9),
                    mitosisRate: 0.002 + 0.04 * pow(m, 1.5),
                    haematoxylin: rng.uniform(0.75, 1.25), eosin: rng.uniform(0.75, 1.25), penMark: rng.bernoulli(0.3))
                specs.append((stem, id, spec))
            }
            patients.append(PatientTruth(patient: id, proliferation: m, tumourBurden: u, logHazard: eta, highGradeProbability: pHigh,
                                         score: score, highGrade: highGrade, time: min(t, c), event: t <= c ? 1 : 0, slides: stems))
        }
        self.patients = patients
        self.slideSpecs = specs
    }

    public var oracle: Oracle {
        // The same statistics the evaluator node reports (module Stats), so oracle and results compare.
        Oracle(spearmanScore: Correlation.spearman(patients.map(\.score), patients.map(\.proliferation)) ?? .nan,
               aucHighGrade: ROC.auc(labels: patients.map { $0.highGrade == 1 }, scores: patients.map(\.highGradeProbability)) ?? .nan,
               cIndexSurvival: Survival.concordance(time: patients.map(\.time), event: patients.map { $0.event == 1 },
                                                    risk: patients.map(\.logHazard))?.cindex ?? .nan)
    }

    /// Writes slides/, labels.csv, patches.csv, truth.csv, oracle.json and README.md into `folder`.
    /// `progress` is called after each slide with (done, total).
    public func write(to folder: URL, progress: (Int, Int) -> Void = { _, _ in }) throws {
        let slidesFolder = folder.appendingPathComponent("slides")
        do {
            try FileManager.default.createDirectory(at: slidesFolder, withIntermediateDirectories: true)
        } catch {
            throw SlideError(.writeFailed, path: folder.path, "cannot create the cohort folder: \(error.localizedDescription)")
        }
        var patchRows: [String] = ["slide,x,y,task,label"]
        for (k, entry) in slideSpecs.enumerated() {
            let slide = SyntheticSlide(entry.spec)
            try slide.write(to: slidesFolder.appendingPathComponent("\(entry.stem).tif"), compression: options.compression)
            patchRows += annotations(slide, stem: entry.stem)
            progress(k + 1, slideSpecs.count)
        }
        func number(_ v: Double) -> String { String(format: "%.4f", v) }
        var labels = ["slide,patient,score,high_grade,time,event"]
        var truth = ["patient,proliferation,tumour_burden,log_hazard,p_high_grade,slides"]
        for p in patients {
            for s in p.slides { labels.append("\(s),\(p.patient),\(number(p.score)),\(p.highGrade),\(number(p.time)),\(p.event)") }
            truth.append("\(p.patient),\(number(p.proliferation)),\(number(p.tumourBurden)),\(number(p.logHazard)),\(number(p.highGradeProbability)),\(p.slides.joined(separator: " "))")
        }
        let o = oracle
        let oracleJSON = """
        {"spearman_score": \(number(o.spearmanScore)), "auc_high_grade": \(number(o.aucHighGrade)), "cindex_survival": \(number(o.cIndexSurvival)), \
        "patients": \(patients.count), "slides": \(slideSpecs.count), "seed": \(options.seed), "size": \(options.size), "mpp": 0.5}

        """
        do {
            try (labels.joined(separator: "\n") + "\n").write(to: folder.appendingPathComponent("labels.csv"), atomically: true, encoding: .utf8)
            try (patchRows.joined(separator: "\n") + "\n").write(to: folder.appendingPathComponent("patches.csv"), atomically: true, encoding: .utf8)
            try (truth.joined(separator: "\n") + "\n").write(to: folder.appendingPathComponent("truth.csv"), atomically: true, encoding: .utf8)
            try oracleJSON.write(to: folder.appendingPathComponent("oracle.json"), atomically: true, encoding: .utf8)
            try SyntheticCohort.readme(options, o).write(to: folder.appendingPathComponent("README.md"), atomically: true, encoding: .utf8)
        } catch {
            throw SlideError(.writeFailed, path: folder.path, "cannot write cohort tables: \(error.localizedDescription)")
        }
    }

    /// The patch-level annotations of one slide (rows of patches.csv).
    public func annotations(_ slide: SyntheticSlide, stem: String) -> [String] {
        var rng = SplitMix64(seed: slide.spec.seed ^ 0xA11C_E5ED)
        let half = Double(options.patchSize) / 2
        let w = Double(slide.spec.width), h = Double(slide.spec.height)
        func truth(_ cx: Double, _ cy: Double) -> (TissueClass, Bool, Int) {
            var tumour = 0, stroma = 0
            for j in 0..<8 {
                for i in 0..<8 {
                    switch slide.tissueClass(x: cx - half + (Double(i) + 0.5) * half / 4, y: cy - half + (Double(j) + 0.5) * half / 4) {
                    case .tumour: tumour += 1
                    case .stroma: stroma += 1
                    default: break
                    }
                }
            }
            let nuclei = slide.nuclei(x0: cx - half, y0: cy - half, x1: cx + half, y1: cy + half)
            let cls: TissueClass = tumour + stroma < 32 ? .background : (tumour > stroma ? .tumour : .stroma)
            return (cls, nuclei.contains { $0.kind == .mitosis }, nuclei.count)
        }
        // Random tissue positions (rejection sampling, patches entirely inside the slide).
        var tissuePoints: [(Double, Double)] = []
        var attempts = 0
        while tissuePoints.count < options.annotationsPerTask * 3 && attempts < options.annotationsPerTask * 200 {
            attempts += 1
            let cx = rng.uniform(half, w - half).rounded(), cy = rng.uniform(half, h - half).rounded()
            let cls = slide.tissueClass(x: cx, y: cy)
            if cls == .tumour || cls == .stroma { tissuePoints.append((cx, cy)) }
        }
        var rows: [String] = []
        let n = options.annotationsPerTask
        for (cx, cy) in tissuePoints.prefix(n) {
            let (cls, _, _) = truth(cx, cy)
            if cls != .background { rows.append("\(stem),\(Int(cx)),\(Int(cy)),tissue,\(cls.rawValue)") }
        }
        for (cx, cy) in tissuePoints.dropFirst(n).prefix(n) {
            rows.append("\(stem),\(Int(cx)),\(Int(cy)),nuclei,\(truth(cx, cy).2)")
        }
        // Mitosis: half near true mitoses (found by scanning the lattice), half random tissue positions.
        let mitoses = slide.nuclei(x0: half, y0: half, x1: w - half, y1: h - half).filter { $0.kind == .mitosis }
        var mitosisRows = 0
        for m in mitoses.shuffled(using: &rng).prefix(n / 2) {
            let cx = min(max((m.x + rng.uniform(-30, 30)).rounded(), half), w - half), cy = min(max((m.y + rng.uniform(-30, 30)).rounded(), half), h - half)
            rows.append("\(stem),\(Int(cx)),\(Int(cy)),mitosis,\(truth(cx, cy).1 ? 1 : 0)")
            mitosisRows += 1
        }
        for (cx, cy) in tissuePoints.dropFirst(2 * n).prefix(n - mitosisRows) {
            rows.append("\(stem),\(Int(cx)),\(Int(cy)),mitosis,\(truth(cx, cy).1 ? 1 : 0)")
        }
        return rows
    }

    static func readme(_ options: Options, _ oracle: Oracle) -> String {
        """
        # Synthetic NIC cohort (nic synth)

        \(options.patients) patients, \(options.size)×\(options.size) px slides at 0.5 µm/px (pyramidal tiled TIFF, seed \(options.seed)).

        - `slides/*.tif` — H&E-like slides: glass, stroma (pink, fibrous, sparse elongated nuclei), tumour
          (purple, dense round nuclei), mitoses (dark clumped figures), per-slide stain strength, some pen marks.
        - `labels.csv` — slide, patient, score (continuous), high_grade (0/1), time (months), event (1 = observed).
        - `patches.csv` — slide, x, y (patch centre, level-0 px), task, label; tasks: tissue (stroma|tumour),
          mitosis (0|1), nuclei (count in the 128 px patch).
        - `truth.csv` — the latent variables per patient (do not train on them).
        - `oracle.json` — best achievable metrics from the true latents.

        Generative model: proliferation m ~ U(0,1) and tumour burden u ~ U(0.15,0.65) per patient; slides show
        tumour fraction ≈ u and a mitotic rate 0.002 + 0.04·m^1.5 per tumour nucleus; score = m + N(0, 0.1²);
        high_grade ~ Bernoulli(σ(3(m−0.5) + 8(u−0.4))); log-hazard η = 1.2·z(m) + 0.8·z(u),
        T ~ Exp(0.05·e^η), censoring U(0, 72), time = min(T, C), event = T ≤ C.

        Oracle on this cohort: Spearman(score) \(String(format: "%.3f", oracle.spearmanScore)), \
        AUC(high_grade) \(String(format: "%.3f", oracle.aucHighGrade)), C-index(survival) \(String(format: "%.3f", oracle.cIndexSurvival)).

        """
    }
}
