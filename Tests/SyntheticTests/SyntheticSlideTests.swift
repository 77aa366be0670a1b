import Foundation
import Slides
import ImageTestSupport
import XCTest
@testable import Synthetic

final class SyntheticSlideTests: XCTestCase {
    func testDeflateSlideReadsBackExactlyAndReportsHalfMicron() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let spec = SyntheticSlideSpec(width: 1100, height: 900, seed: 5, tumourFraction: 0.5, mitosisRate: 0.05, penMark: true)
        let synthetic = SyntheticSlide(spec)
        let url = dir.appendingPathComponent("s.tif")
        try synthetic.write(to: url, compression: .deflate)
        let slide = try Slide(url: url)
        XCTAssertEqual(slide.vendor, "generic-tiff")
        // OpenSlide 3.4 has no mpp for generic TIFFs; the reader takes it from the TIFF resolution tags.
        XCTAssertTrue([.tiffResolution, .metadata].contains(slide.resolutionSource))
        XCTAssertEqual(slide.mpp, 0.5, accuracy: 1e-9)
        XCTAssertEqual(slide.levels.map(\.width), [1100, 550, 275, 138])
        let expected = RGBImage(width: 1100, height: 900, pixels: synthetic.render(x: 0, y: 0, width: 1100, height: 900))
        assertSameImage(try slide.readLevelRegion(level: 0, x: 0, y: 0, width: 1100, height: 900), expected)
        // Rendering is position-independent: a sub-rectangle renders to the same pixels.
        assertSameImage(RGBImage(width: 300, height: 200, pixels: synthetic.render(x: 400, y: 333, width: 300, height: 200)),
                        expected.crop(x: 400, y: 333, width: 300, height: 200))
        // A read at 2 µm/px uses level 2 (exactly 2 µm/px) natively.
        XCTAssertEqual(slide.level(forMPP: 2).index, 2)
        let coarse = try slide.readRegion(x: 0, y: 0, width: 275, height: 225, mpp: 2)
        assertSameImage(coarse, try slide.readLevelRegion(level: 2, x: 0, y: 0, width: 275, height: 225))
    }

    func testJPEGSlideIsWithinJPEGTolerance() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let synthetic = SyntheticSlide(SyntheticSlideSpec(width: 800, height: 600, seed: 9))
        let url = dir.appendingPathComponent("s.tif")
        try synthetic.write(to: url, compression: .jpeg(quality: 90))
        let back = try Slide(url: url).readLevelRegion(level: 0, x: 0, y: 0, width: 800, height: 600)
        let expected = synthetic.render(x: 0, y: 0, width: 800, height: 600)
        let meanError = Double(zip(back.pixels, expected).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }) / Double(expected.count)
        XCTAssertLessThan(meanError, 4, "quality-90 JPEG of textured tissue")
        XCTAssertGreaterThan(meanError, 0, "JPEG is lossy: identical pixels would mean it was not compressed")
    }

    /// The synthetic ground truth knows where tissue is: the detector must agree on nearly every mask
    /// pixel, and must not call the pen mark tissue.
    func testTissueDetectionAgreesWithGroundTruth() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let synthetic = SyntheticSlide(SyntheticSlideSpec(width: 2048, height: 2048, seed: 21, tumourFraction: 0.4, penMark: true))
        let url = dir.appendingPathComponent("s.tif")
        try synthetic.write(to: url, compression: .jpeg(quality: 90))
        let mask = try TissueDetector().detect(try Slide(url: url))
        var intersection = 0, union = 0, inkCalledTissue = 0, inkPixels = 0
        for my in 0..<mask.height {
            for mx in 0..<mask.width {
                let cls = synthetic.tissueClass(x: (Double(mx) + 0.5) * mask.scaleX, y: (Double(my) + 0.5) * mask.scaleY)
                let truth = cls == .tumour || cls == .stroma
                let found = mask.values[my * mask.width + mx] == 1
                if truth && found { intersection += 1 }
                if truth || found { union += 1 }
                if cls == .ink { inkPixels += 1; if found { inkCalledTissue += 1 } }
            }
        }
        XCTAssertGreaterThan(inkPixels, 50, "the spec asked for a pen mark")
        XCTAssertGreaterThan(Double(intersection) / Double(union), 0.9)
        XCTAssertLessThan(Double(inkCalledTissue) / Double(inkPixels), 0.1)
    }

    func testCohortTablesAndOracle() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = SyntheticCohort.Options()
        options.patients = 4
        options.size = 768
        options.seed = 3
        options.annotationsPerTask = 6
        options.secondSlideProbability = 0.5
        let cohort = SyntheticCohort(options)
        try cohort.write(to: dir)
        let labels = try String(contentsOf: dir.appendingPathComponent("labels.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(labels.first, "slide,patient,score,high_grade,time,event")
        XCTAssertEqual(labels.count - 1, cohort.slideSpecs.count)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("slides").path).sorted()
        XCTAssertEqual(files, cohort.slideSpecs.map { "\($0.stem).tif" }.sorted())
        // Every patch annotation is recomputed from the ground truth.
        let rows = try String(contentsOf: dir.appendingPathComponent("patches.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
        XCTAssertFalse(rows.isEmpty)
        var tasks = Set<String>()
        for row in rows {
            let f = row.split(separator: ",").map(String.init)
            tasks.insert(f[3])
            let spec = cohort.slideSpecs.first { $0.stem == f[0] }!.spec
            let slide = SyntheticSlide(spec)
            let x = Double(f[1])!, y = Double(f[2])!
            XCTAssertTrue(x >= 64 && y >= 64 && x <= 768 - 64 && y <= 768 - 64, "patch inside the slide")
            if f[3] == "nuclei" { XCTAssertEqual(Int(f[4]), slide.nuclei(x0: x - 64, y0: y - 64, x1: x + 64, y1: y + 64).count) }
            if f[3] == "mitosis" {
                XCTAssertEqual(f[4] == "1", slide.nuclei(x0: x - 64, y0: y - 64, x1: x + 64, y1: y + 64).contains { $0.kind == .mitosis })
            }
        }
        XCTAssertEqual(tasks, ["tissue", "mitosis", "nuclei"])
        let oracle = cohort.oracle, patchOracle = PatchOracleProbe.read(dir)
        XCTAssertEqual(patchOracle.count, 3)
        for v in [oracle.spearmanScore, oracle.aucHighGrade, oracle.cIndexSurvival] + patchOracle { XCTAssertTrue((-1...1).contains(v) || v.isNaN) }
        for name in ["patch_truth.csv", "truth.csv", "oracle.json", "README.md"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path), name)
        }
        // Same seed, same cohort.
        XCTAssertEqual(SyntheticCohort(options).patients.map(\.score), cohort.patients.map(\.score))
    }
}

/// The patch-oracle figures of a written cohort's oracle.json.
enum PatchOracleProbe {
    static func read(_ dir: URL) -> [Double] {
        guard let data = try? Data(contentsOf: dir.appendingPathComponent("oracle.json")),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [] }
        // A metric undefined on a tiny cohort is null (NaN here).
        return ["patch_spearman_score", "patch_auc_high_grade", "patch_cindex_survival"].compactMap { key in
            json[key].map { ($0 as? Double) ?? .nan }
        }
    }
}
