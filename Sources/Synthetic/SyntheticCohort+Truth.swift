import Foundation
import NICBasics
import Stats

/// What a perfect patch encoder could see: the true content of every patch of a slide's 128 px grid, and
/// the patient-level metrics reachable from it.
extension SyntheticCohort {
    /// The true content of one patch (a row of patch_truth.csv).
    public struct PatchTruth: Sendable, Equatable {
        /// The patch centre, level-0 pixels.
        public let x: Int, y: Int
        /// Fractions of an 8×8 lattice of points over the patch (8 px apart) that are tissue and tumour:
        /// k/64, written exactly.
        public let tissue: Double, tumour: Double
        /// Nuclei by kind, counted by centre in the patch.
        public let mitoses: Int, tumourNuclei: Int, apoptotic: Int, lymphocytes: Int, fibroblasts: Int

        static let csvHeader = "slide,x,y,tissue,tumour,mitoses,tumour_nuclei,apoptotic,lymphocytes,fibroblasts"

        func csvRow(slide: String) -> String {
            "\(slide),\(x),\(y),\(String(format: "%.6f", tissue)),\(String(format: "%.6f", tumour)),\(mitoses),\(tumourNuclei),\(apoptotic),\(lymphocytes),\(fibroblasts)"
        }

        /// The majority class of the patch as the tissue task labels it (background if under half tissue).
        public var tissueClass: TissueClass { tissue < 0.5 ? .background : (tumour > tissue - tumour ? .tumour : .stroma) }
        public var nuclei: Int { mitoses + tumourNuclei + apoptotic + lymphocytes + fibroblasts }
    }

    /// The content of the patch (`options.patchSize`) centred at (cx, cy).
    public func patchContent(_ slide: SyntheticSlide, x cx: Int, y cy: Int) -> PatchTruth {
        let size = Double(options.patchSize), half = size / 2, step = size / 8
        var tissue = 0, tumour = 0
        for j in 0..<8 {
            for i in 0..<8 {
                switch slide.tissueClass(x: Double(cx) - half + (Double(i) + 0.5) * step, y: Double(cy) - half + (Double(j) + 0.5) * step) {
                case .tumour: tumour += 1; tissue += 1
                case .stroma: tissue += 1
                case .background, .ink: break
                }
            }
        }
        var count: [SyntheticNucleus.Kind: Int] = [:]
        for n in slide.nuclei(x0: Double(cx) - half, y0: Double(cy) - half, x1: Double(cx) + half, y1: Double(cy) + half) { count[n.kind, default: 0] += 1 }
        return PatchTruth(x: cx, y: cy, tissue: Double(tissue) / 64, tumour: Double(tumour) / 64, mitoses: count[.mitosis] ?? 0,
                          tumourNuclei: count[.tumour] ?? 0, apoptotic: count[.apoptotic] ?? 0, lymphocytes: count[.lymphocyte] ?? 0,
                          fibroblasts: count[.stroma] ?? 0)
    }

    /// Every patch of the slide's grid (origin 0, stride = patch size, whole patches only, as the grid
    /// sampler tiles a slide) that holds any tissue, rows computed in parallel.
    public func patchTruth(_ slide: SyntheticSlide) -> [PatchTruth] {
        let size = options.patchSize, columns = slide.spec.width / size, rows = slide.spec.height / size
        let result = Locked([[PatchTruth]](repeating: [], count: rows))
        DispatchQueue.concurrentPerform(iterations: rows) { r in
            let row = (0..<columns).map { c in patchContent(slide, x: c * size + size / 2, y: r * size + size / 2) }.filter { $0.tissue > 0 }
            result.withLock { $0[r] = row }
        }
        return result.current.flatMap { $0 }
    }

    /// A patient's totals over the patch truth of their slides.
    public struct PatientCounts: Sendable, Equatable {
        public let patient: String
        public let mitoses: Int
        /// Tumour and tissue area in mm² (each patch: its fraction × (patch size × 0.5 µm)²).
        public let tumourArea: Double, tissueArea: Double

        /// Tumour cells per mm² of tumour if the mitotic index were 0: one lattice cell of 8 µm × 8 µm per
        /// 64 µm², 80 % of them with a nucleus.
        public static let tumourCellDensity = SyntheticSlide.tumourCellularity / pow(Double(SyntheticSlide.cell) * 0.5e-3, 2)

        /// Mitoses per mm² of tumour (the clinical "mitotic count per area").
        public var mitoticDensity: Double { tumourArea > 0 ? Double(mitoses) / tumourArea : 0 }
        /// The proliferation m read back from the counts: mitotic index = density ÷ tumour cell density, then
        /// the inverse of `mitosisRate`.
        public var proliferationEstimate: Double { SyntheticCohort.proliferation(mitosisRate: mitoticDensity / PatientCounts.tumourCellDensity) }
        /// The tumour burden u read back as the tumour fraction of the tissue.
        public var tumourBurdenEstimate: Double { tissueArea > 0 ? tumourArea / tissueArea : 0 }
    }

    /// Sums the patch truth of each patient's slides.
    public func patientCounts(_ truth: [String: [PatchTruth]]) -> [PatientCounts] {
        let patchArea = pow(Double(options.patchSize) * 0.5e-3, 2)
        return patients.map { p in
            let rows = p.slides.flatMap { truth[$0] ?? [] }
            return PatientCounts(patient: p.patient, mitoses: rows.reduce(0) { $0 + $1.mitoses },
                                 tumourArea: rows.reduce(0) { $0 + $1.tumour } * patchArea, tissueArea: rows.reduce(0) { $0 + $1.tissue } * patchArea)
        }
    }

    /// The metrics reachable from the true patch counts — what a perfect patch encoder (exact mitosis and
    /// tumour/tissue read-outs per patch) followed by the right patient-level model could give:
    /// - score: Spearman(score, mitoses per mm² of tumour);
    /// - high_grade: AUC(high_grade, 3(m̂ − 0.5) + 8(û − 0.4)) with m̂ the proliferation read back from the
    ///   mitotic density and û the tumour fraction of the tissue;
    /// - survival: Harrell's C(time, event, 1.2·z(m̂) + 0.8·z(û)).
    /// Below the latent oracle by the counting noise (a few hundred mitoses per patient at most) and the
    /// slide-to-slide scatter of the tumour fraction around u.
    public struct PatchOracle: Sendable, Codable {
        public let spearmanScore: Double
        public let aucHighGrade: Double
        public let cIndexSurvival: Double

        public init(patients: [PatientTruth], counts: [PatientCounts]) {
            let m = counts.map(\.proliferationEstimate), u = counts.map(\.tumourBurdenEstimate)
            spearmanScore = Correlation.spearman(patients.map(\.score), counts.map(\.mitoticDensity)) ?? .nan
            aucHighGrade = ROC.auc(labels: patients.map { $0.highGrade == 1 }, scores: zip(m, u).map { SyntheticCohort.highGradeLogit(m: $0, u: $1) }) ?? .nan
            cIndexSurvival = Survival.concordance(time: patients.map(\.time), event: patients.map { $0.event == 1 },
                                                  risk: zip(m, u).map { SyntheticCohort.logHazard(m: $0, u: $1) })?.cindex ?? .nan
        }
    }
}
