import Foundation
import ImageTestSupport
import NICBasics
import Stats
import XCTest
@testable import Synthetic

/// The cell model (mitoses and their look-alikes), the mitosis annotations and the patch-count oracle.
final class SyntheticCellTests: XCTestCase {
    /// A small, mostly tumour slide with many mitoses and look-alikes.
    let busy = SyntheticSlideSpec(width: 1024, height: 1024, seed: 12, tumourFraction: 0.9, mitosisRate: 0.03, apoptosisRate: 0.02)

    /// Grey level (mean of R, G, B) of rendered pixels.
    func grey(_ pixels: [UInt8], _ i: Int) -> Double { (Double(pixels[3 * i]) + Double(pixels[3 * i + 1]) + Double(pixels[3 * i + 2])) / 3 }

    /// Measures a nucleus in rendered pixels: the dark pixels (grey < 150, where tumour cytoplasm is ≈190 and
    /// tumour nuclei ≈100) within `radius` of its centre, or within its own ellipse grown by 1 px when
    /// `radius` is nil (neighbours of interphase nuclei may touch it). Returns (count, mean grey of them,
    /// mean grey of the non-dark pixels in the ring 13.5…16 px: the halo).
    func measure(_ slide: SyntheticSlide, _ n: SyntheticNucleus, radius: Double?) -> (area: Int, grey: Double, ring: Double) {
        let x0 = Int(n.x) - 24, y0 = Int(n.y) - 24
        let pixels = slide.render(x: x0, y: y0, width: 48, height: 48)
        var area = 0, darkSum = 0.0, ringSum = 0.0, ringCount = 0
        let ca = cos(n.angle), sa = sin(n.angle)
        for py in 0..<48 {
            for px in 0..<48 {
                let dx = Double(x0 + px) + 0.5 - n.x, dy = Double(y0 + py) + 0.5 - n.y
                let g = grey(pixels, py * 48 + px), d = (dx * dx + dy * dy).squareRoot()
                let inside: Bool
                if let radius {
                    inside = d < radius
                } else {
                    let u = (dx * ca + dy * sa) / (n.a + 1), v = (-dx * sa + dy * ca) / (n.b + 1)
                    inside = u * u + v * v < 1
                }
                if inside && g < 150 { area += 1; darkSum += g }
                if d >= 13.5 && d < 16 && g >= 150 { ringSum += g; ringCount += 1 }
            }
        }
        return (area, area > 0 ? darkSum / Double(area) : 255, ringCount > 0 ? ringSum / Double(ringCount) : 0)
    }

    func testMitoticFiguresAreDarkerAndLargerThanTumourNucleiAndLookAlikesSmaller() {
        let slide = SyntheticSlide(busy)
        let nuclei = slide.nuclei(x0: 40, y0: 40, x1: 984, y1: 984)
        func summary(_ kind: SyntheticNucleus.Kind, radius: Double?) -> (area: Double, grey: Double, ring: Double, count: Int) {
            let chosen = nuclei.filter { $0.kind == kind }.prefix(60)
            let m = chosen.map { measure(slide, $0, radius: radius) }
            let k = Double(max(m.count, 1))
            return (Double(m.reduce(0) { $0 + $1.area }) / k, m.reduce(0) { $0 + $1.grey } / k, m.reduce(0) { $0 + $1.ring } / k, m.count)
        }
        let mitosis = summary(.mitosis, radius: 14.5), tumour = summary(.tumour, radius: nil)
        let apoptotic = summary(.apoptotic, radius: nil), lymphocyte = summary(.lymphocyte, radius: nil)
        XCTAssertGreaterThan(mitosis.count, 15)
        XCTAssertGreaterThan(apoptotic.count, 5)
        XCTAssertGreaterThan(lymphocyte.count, 5)
        let ratio = mitosis.area / tumour.area
        XCTAssertTrue((1.5...2.1).contains(ratio), "mitotic figure / tumour nucleus dark area \(ratio) (\(mitosis.area) vs \(tumour.area) px)")
        XCTAssertLessThan(mitosis.grey, tumour.grey - 40, "mitoses much darker than interphase tumour nuclei")
        XCTAssertGreaterThan(mitosis.ring, tumour.ring + 10, "a clear halo around mitoses")
        // The look-alikes are dark too, but smaller than a tumour nucleus.
        XCTAssertLessThan(apoptotic.grey, tumour.grey - 40)
        XCTAssertLessThan(lymphocyte.grey, tumour.grey - 20)
        XCTAssertLessThan(apoptotic.area, tumour.area * 0.6)
        XCTAssertLessThan(lymphocyte.area, tumour.area * 0.7)
    }

    /// Any region renders to the same pixels in one call, in another call, and assembled from irregular
    /// tiles rendered concurrently — mitotic halos and apoptotic rims crossing tile borders included.
    func testRegionRendersIdenticallyAcrossCallsAndTilings() {
        let slide = SyntheticSlide(SyntheticSlideSpec(width: 700, height: 560, seed: 31, tumourFraction: 0.8, mitosisRate: 0.08, apoptosisRate: 0.05))
        XCTAssertGreaterThan(slide.nuclei(x0: 0, y0: 0, x1: 700, y1: 560).filter { $0.kind == .mitosis }.count, 20)
        let x0 = 37, y0 = 21, w = 600, h = 500
        let whole = slide.render(x: x0, y: y0, width: w, height: h)
        XCTAssertEqual(slide.render(x: x0, y: y0, width: w, height: h), whole)
        let xs = [0, 97, 250, 251, 600], ys = [0, 131, 389, 500]
        let tiles = (0..<(xs.count - 1)).flatMap { i in (0..<(ys.count - 1)).map { j in (i, j) } }
        let rendered = Locked([[UInt8]](repeating: [], count: tiles.count))
        DispatchQueue.concurrentPerform(iterations: tiles.count) { k in
            let (i, j) = tiles[k]
            let pixels = slide.render(x: x0 + xs[i], y: y0 + ys[j], width: xs[i + 1] - xs[i], height: ys[j + 1] - ys[j])
            rendered.withLock { $0[k] = pixels }
        }
        var assembled = [UInt8](repeating: 0, count: w * h * 3)
        let pieces = rendered.current
        for (k, (i, j)) in tiles.enumerated() {
            let tw = xs[i + 1] - xs[i]
            for r in 0..<(ys[j + 1] - ys[j]) {
                for c in 0..<(tw * 3) { assembled[((ys[j] + r) * w + xs[i]) * 3 + c] = pieces[k][(r * tw) * 3 + c] }
            }
        }
        XCTAssertEqual(assembled, whole)
    }

    func testMitosisNegativesAreHardInTheStatedProportion() throws {
        for fraction in [0.5, 0.25] {
            var options = SyntheticCohort.Options()
            options.patients = 3
            options.size = 1024
            options.seed = 5
            options.annotationsPerTask = 20
            options.hardNegativeFraction = fraction
            let cohort = SyntheticCohort(options)
            for entry in cohort.slideSpecs {
                let slide = SyntheticSlide(entry.spec)
                let rows = cohort.annotations(slide, stem: entry.stem).filter { $0.task == "mitosis" }
                XCTAssertEqual(rows.count, 20, entry.stem)
                let negatives = rows.filter { $0.label == "0" }, hard = negatives.filter { $0.source == .hardNegative }
                XCTAssertEqual(hard.count, Int((fraction * Double(negatives.count)).rounded()), "\(entry.stem) at \(fraction)")
                for r in rows {
                    let x = Double(r.x), y = Double(r.y)
                    let inPatch = slide.nuclei(x0: x - 64, y0: y - 64, x1: x + 64, y1: y + 64)
                    if r.label == "1" {
                        XCTAssertEqual(r.source, .mitosis)
                        XCTAssertTrue(inPatch.contains { $0.kind == .mitosis && abs($0.x - x) < 1 && abs($0.y - y) < 1 }, "positive centred on a mitosis")
                    } else {
                        XCTAssertFalse(inPatch.contains { $0.kind == .mitosis }, "negative without a mitosis")
                    }
                }
                for r in hard {
                    // Tumour at the centre and the patch's majority tissue class, by the ground truth's class map.
                    XCTAssertEqual(slide.tissueClass(x: Double(r.x), y: Double(r.y)), .tumour)
                    var tumour = 0, stroma = 0
                    for j in 0..<8 { for i in 0..<8 {
                        switch slide.tissueClass(x: Double(r.x - 64 + 8 + 16 * i), y: Double(r.y - 64 + 8 + 16 * j)) {
                        case .tumour: tumour += 1
                        case .stroma: stroma += 1
                        default: break
                        }
                    } }
                    XCTAssertGreaterThan(tumour, stroma, "more tumour than stroma, as the tissue task labels a tumour patch")
                    XCTAssertGreaterThanOrEqual(tumour + stroma, 32)
                }
            }
        }
    }

    /// The patch oracle written to oracle.json is recomputed from the written files: patch_truth.csv
    /// recounted against the slides' nuclei, summed per patient through labels.csv.
    func testPatchOracleEqualsRecountFromWrittenFiles() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = SyntheticCohort.Options()
        options.patients = 8
        options.size = 768
        options.seed = 3
        options.annotationsPerTask = 4
        options.secondSlideProbability = 0.5
        let cohort = SyntheticCohort(options)
        let summary = try cohort.write(to: dir)
        func table(_ name: String) throws -> [[String]] {
            try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8).split(separator: "\n").dropFirst().map { $0.split(separator: ",").map(String.init) }
        }
        var patientOf: [String: String] = [:], score: [String: Double] = [:]
        for f in try table("labels.csv") { patientOf[f[0]] = f[1]; score[f[1]] = Double(f[2])! }
        var mitoses: [String: Int] = [:], tumour: [String: Double] = [:], tissue: [String: Double] = [:], slideMitoses: [String: Int] = [:]
        let slides = Dictionary(uniqueKeysWithValues: cohort.slideSpecs.map { ($0.stem, SyntheticSlide($0.spec)) })
        for f in try table("patch_truth.csv") {
            let p = patientOf[f[0]]!, x = Double(f[1])!, y = Double(f[2])!
            let inPatch = slides[f[0]]!.nuclei(x0: x - 64, y0: y - 64, x1: x + 64, y1: y + 64)
            let byKind = Dictionary(grouping: inPatch, by: \.kind).mapValues(\.count)
            XCTAssertEqual([Int(f[5]), Int(f[6]), Int(f[7]), Int(f[8]), Int(f[9])],
                           [byKind[.mitosis] ?? 0, byKind[.tumour] ?? 0, byKind[.apoptotic] ?? 0, byKind[.lymphocyte] ?? 0, byKind[.stroma] ?? 0])
            mitoses[p, default: 0] += Int(f[5])!
            slideMitoses[f[0], default: 0] += Int(f[5])!
            tissue[p, default: 0] += Double(f[3])! * 0.004096
            tumour[p, default: 0] += Double(f[4])! * 0.004096
        }
        // The grid covers the whole slide (768 = 6 × 128): every mitosis of the slide is in some patch.
        for (stem, slide) in slides {
            XCTAssertEqual(slideMitoses[stem] ?? 0, slide.nuclei(x0: 0, y0: 0, x1: 768, y1: 768).filter { $0.kind == .mitosis }.count)
            XCTAssertEqual(summary.mitosesPerSlide[stem], slideMitoses[stem] ?? 0)
        }
        let ids = cohort.patients.map(\.patient)
        XCTAssertGreaterThan(Set(ids.map { mitoses[$0] ?? 0 }).count, 4, "patients differ in mitosis counts")
        let density = ids.map { Double(mitoses[$0] ?? 0) / tumour[$0]! }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("oracle.json"))) as! [String: Any]
        let spearman = try XCTUnwrap(Correlation.spearman(ids.map { score[$0]! }, density))
        XCTAssertEqual(json["patch_spearman_score"] as! Double, spearman, accuracy: 1e-4)
        XCTAssertEqual(summary.patchOracle.spearmanScore, spearman, accuracy: 1e-9)
        let counts = ids.map { SyntheticCohort.PatientCounts(patient: $0, mitoses: mitoses[$0] ?? 0, tumourArea: tumour[$0]!, tissueArea: tissue[$0]!) }
        let recount = SyntheticCohort.PatchOracle(patients: cohort.patients, counts: counts)
        XCTAssertEqual(json["patch_auc_high_grade"] as! Double, recount.aucHighGrade, accuracy: 1e-4)
        XCTAssertEqual(json["patch_cindex_survival"] as! Double, recount.cIndexSurvival, accuracy: 1e-4)
        XCTAssertEqual(json["spearman_score"] as! Double, summary.oracle.spearmanScore, accuracy: 1e-4)
    }
}
