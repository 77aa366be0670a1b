import Flow
import Foundation
import NICNodes
import Slides
import Synthetic
import XCTest

final class TileSamplerTests: XCTestCase {
    func testTrainingGridAndAugmenterOnSyntheticCohort() throws {
        let ws = try CohortWorkspace()
        let summary = try ws.run("""
        pipeline: sampler
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
          tasks:  {kind: table, path: cohort/patches.csv}
        nodes:
          train: {type: tile_sampler, in: {slides: cohort, annotations: tasks}, params: {mode: training, per_task: 12, regression: [nuclei], seed: 3}}
          shifted: {type: tile_sampler, in: {slides: cohort, annotations: tasks}, params: {mode: training, per_task: 12, regression: [nuclei], jitter: 0.3, seed: 3}}
          grid:  {type: tile_sampler, in: {slides: cohort}, params: {mode: grid}}
          aug:   {type: augmenter, in: {patches: train}, params: {recipe: nodes/augment/heavy.yaml, seed: 5, preview: 3}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")

        // The slide set joins labels.csv.
        let set = try SlideSet.read(from: try ws.output(summary, "cohort", "slides"))
        XCTAssertEqual(set.slides.map(\.stem), ws.cohort.slideSpecs.map(\.stem).sorted())
        XCTAssertEqual(set.slides.map(\.mpp), Array(repeating: 0.5, count: set.slides.count))
        XCTAssertEqual(Set(set.slides.compactMap { $0.labels["patient"] }), Set(ws.cohort.patients.map(\.patient)))

        // Training: 12 per task, classes balanced, pixels equal to direct reads centred on the annotation.
        let train = try PatchSet(folder: try ws.output(summary, "train", "patches"))
        XCTAssertEqual(train.count, 36)
        XCTAssertEqual(train.info.tasks.map(\.name), ["mitosis", "nuclei", "tissue"])
        XCTAssertEqual(train.info.tasks.first { $0.name == "tissue" }?.classes, ["stroma", "tumour"])
        XCTAssertEqual(train.info.tasks.first { $0.name == "nuclei" }?.kind, .regression)
        for task in ["mitosis", "tissue"] {
            let labels = try train.labels(task).filter { !$0.isNaN }
            XCTAssertEqual(labels.count, 12)
            XCTAssertEqual(labels.filter { $0 == 0 }.count, 6, "\(task) balanced")
        }
        let cache = SlideCache(set)
        for i in [0, 17, 35] {
            let r = train.records[i]
            let direct = try cache.slide(r.slide).readRegion(x: r.x - 64, y: r.y - 64, width: 128, height: 128, mpp: 0.5)
            XCTAssertEqual(try train.patch(i).pixels, direct.pixels, "patch \(i)")
        }
        // Labels agree with the synthetic ground truth.
        for (i, r) in train.records.enumerated() where r.labels["nuclei"] != nil {
            let slide = SyntheticSlide(ws.cohort.slideSpecs.first { $0.stem == r.slide }!.spec)
            let count = slide.nuclei(x0: Double(r.x - 64), y0: Double(r.y - 64), x1: Double(r.x + 64), y1: Double(r.y + 64)).count
            XCTAssertEqual(try train.labels("nuclei")[i], Float(count))
        }

        // Jitter: the same draw, classification patches shifted by at most 0.3 × 128 px in x and y
        // (the slides are at 0.5 µm/px, the patches too), regression patches (counts) never, and the
        // binary mitosis task's negatives never (a shift could move them onto an unannotated mitosis).
        // A shifted positive still holds its mitosis.
        let shifted = try PatchSet(folder: try ws.output(summary, "shifted", "patches"))
        XCTAssertEqual(shifted.records.map(\.labels), train.records.map(\.labels))
        var moved = 0
        for (a, b) in zip(train.records, shifted.records) {
            XCTAssertEqual(a.slide, b.slide)
            if a.labels["nuclei"] != nil {
                XCTAssertEqual([a.x, a.y], [b.x, b.y], "a count belongs to the exact patch")
            } else if a.labels["mitosis"] == "0" {
                XCTAssertEqual([a.x, a.y], [b.x, b.y], "a negative stays where it was checked")
            } else {
                if a.labels["mitosis"] == "1" {
                    let slide = SyntheticSlide(ws.cohort.slideSpecs.first { $0.stem == b.slide }!.spec)
                    let inside = slide.nuclei(x0: Double(b.x - 64), y0: Double(b.y - 64), x1: Double(b.x + 64), y1: Double(b.y + 64))
                    XCTAssertTrue(inside.contains { $0.kind == .mitosis }, "a shifted positive keeps its mitosis")
                }
                XCTAssertLessThanOrEqual(max(abs(a.x - b.x), abs(a.y - b.y)), 39)
                if a.x != b.x || a.y != b.y { moved += 1 }
            }
        }
        XCTAssertGreaterThan(moved, 12, "most of the 18 movable patches (12 tissue, 6 mitosis positives) move")

        // Grid: every cell is more than 60% tissue by the synthetic ground truth too.
        let grid = try PatchSet(folder: try ws.output(summary, "grid", "patches"))
        XCTAssertGreaterThan(grid.count, 20)
        XCTAssertEqual(grid.info.mode, "grid")
        var truthTissue: [Double] = []
        for r in grid.records {
            let slide = SyntheticSlide(ws.cohort.slideSpecs.first { $0.stem == r.slide }!.spec)
            var inside = 0
            for j in 0..<8 { for k in 0..<8 {
                let cls = slide.tissueClass(x: Double(r.x - 64) + (Double(k) + 0.5) * 16, y: Double(r.y - 64) + (Double(j) + 0.5) * 16)
                if cls == .tumour || cls == .stroma { inside += 1 }
            } }
            truthTissue.append(Double(inside) / 64)
            XCTAssertEqual((r.x - 64) % 128, 0)
        }
        XCTAssertGreaterThan(truthTissue.min() ?? 0, 0.3)
        XCTAssertGreaterThan(truthTissue.reduce(0, +) / Double(truthTissue.count), 0.9)

        // Augmenter: same patches, recipe attached, reproducible per (epoch, index), preview written.
        let augmented = try PatchSet(folder: try ws.output(summary, "aug", "patches"))
        XCTAssertEqual(augmented.records, train.records)
        XCTAssertEqual(try augmented.patches(0..<36), try train.patches(0..<36))
        let augmenter = try XCTUnwrap(try augmented.augmenter())
        XCTAssertEqual(augmenter.recipe.name, "heavy")
        XCTAssertEqual(augmenter.recipe.ops.count, 10)
        let p = try augmented.patch(4)
        XCTAssertEqual(augmenter.apply(to: p, epoch: 1, index: 4), try XCTUnwrap(try augmented.augmenter()).apply(to: p, epoch: 1, index: 4))
        XCTAssertNotEqual(augmenter.apply(to: p, epoch: 1, index: 4).pixels, augmenter.apply(to: p, epoch: 2, index: 4).pixels)
        XCTAssertNil(try train.augmenter())
        XCTAssertTrue(FileManager.default.fileExists(atPath: try ws.output(summary, "aug", "patches").appendingPathComponent("preview.png").path))
    }

    func testGridOnCMUSlideIsInsideTissue() throws {
        let ws = try CohortWorkspace(patients: 1, size: 512, annotations: 2)
        let folder = ws.root.appendingPathComponent("aperio")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("CMU-1-Small-Region.svs"), withDestinationURL: try testDataSlide())
        let summary = try ws.run("""
        pipeline: cmu
        inputs:
          cohort: {kind: slides, dir: aperio}
        nodes:
          grid: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, mpp: 0.5, size: 128}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let grid = try PatchSet(folder: try ws.output(summary, "grid", "patches"))
        // 2220 × 2967 px at 0.499 µm/px: 17 × 23 cells of 128 px at 0.5 µm/px (0.499 is read natively).
        let table = try CSVTable.read(try ws.output(summary, "grid", "patches").appendingPathComponent("grid.csv"))
        XCTAssertEqual(table.rows.first.map { [$0[1], $0[2]] }, ["17", "23"])
        XCTAssertGreaterThan(grid.count, 60)
        XCTAssertLessThan(grid.count, 17 * 23 / 2)
        // Independently of the mask: each kept patch is mostly stained tissue, not glass (a pixel is
        // stained when some channel is below 220; CMU's glass is ≈ 240 grey).
        for i in 0..<grid.count {
            let patch = try grid.patch(i)
            var stained = 0
            for p in 0..<(128 * 128) where min(patch.pixels[p * 3], patch.pixels[p * 3 + 1], patch.pixels[p * 3 + 2]) < 220 { stained += 1 }
            XCTAssertGreaterThan(Double(stained) / Double(128 * 128), 0.4, "grid patch \(i) at (\(grid.records[i].x), \(grid.records[i].y)) looks like glass")
        }
    }

    func testBadAnnotationsAndLabelsAreClearErrors() throws {
        let ws = try CohortWorkspace(patients: 1, size: 768, annotations: 4)
        let stem = ws.cohort.slideSpecs[0].stem
        try ws.write("bad/outside.csv", "slide,x,y,task,label\n\(stem),300,300,tissue,stroma\n\(stem),760,300,tissue,tumour\n")
        try ws.write("bad/unknown.csv", "slide,x,y,task,label\n\(stem),300,300,tissue,stroma\nP999-1,300,300,tissue,tumour\n")
        try ws.write("bad/labels.csv", "slide,patient,score\n\(stem),P001,0.5\nP404-1,P404,0.1\n")
        func failure(_ yaml: String) throws -> String {
            let summary = try ws.run(yaml)
            XCTAssertFalse(summary.succeeded)
            return summary.failures.map(\.message).joined(separator: "\n")
        }
        let outside = try failure("""
        pipeline: bad1
        inputs:
          cohort: {kind: slides, dir: cohort/slides}
          tasks: {kind: table, path: bad/outside.csv}
        nodes:
          t: {type: tile_sampler, in: {slides: cohort, annotations: tasks}, params: {mode: training, per_task: 2}}
        """)
        XCTAssertTrue(outside.contains("annotations (patches.csv):3: patch outside the slide"), outside)
        let unknown = try failure("""
        pipeline: bad2
        inputs:
          cohort: {kind: slides, dir: cohort/slides}
          tasks: {kind: table, path: bad/unknown.csv}
        nodes:
          t: {type: tile_sampler, in: {slides: cohort, annotations: tasks}, params: {mode: training, per_task: 2}}
        """)
        XCTAssertTrue(unknown.contains("annotations (patches.csv):3:1: unknown slide 'P999-1'"), unknown)
        let labels = try failure("""
        pipeline: bad3
        inputs:
          cohort: {kind: slides, dir: cohort/slides, labels: bad/labels.csv}
        nodes:
          t: {type: tile_sampler, in: {slides: cohort}}
        """)
        XCTAssertTrue(labels.contains("bad/labels.csv:3:1: unknown slide 'P404-1'"), labels)
        try ws.write("bad/slides/notes.svs", "not a slide\n")
        let text = try failure("""
        pipeline: bad4
        inputs:
          cohort: {kind: slides, dir: bad/slides}
        nodes:
          t: {type: tile_sampler, in: {slides: cohort}}
        """)
        XCTAssertTrue(text.contains("notes.svs: not a slide format OpenSlide"), text)
        try ws.write("nodes/augment/typo.yaml", "name: typo\nops:\n  - {op: hde, p: 1, range: [0, 0.1]}\n")
        // A recipe is checked with the pipeline, before anything runs, at its line in its file.
        XCTAssertThrowsError(try ws.run("""
        pipeline: bad5
        inputs:
          cohort: {kind: slides, dir: cohort/slides}
        nodes:
          t: {type: tile_sampler, in: {slides: cohort}, params: {max_per_slide: 4}}
          a: {type: augmenter, in: {patches: t}, params: {recipe: nodes/augment/typo.yaml}}
        """)) { error in
            XCTAssertTrue("\(error)".contains("typo.yaml:3:10: error: node 'a' param 'recipe': 'ops[1].op': unknown op 'hde' (did you mean 'hed'?)"), "\(error)")
        }
    }

    /// A slide without µm/px fails with a message that names the file and the `mpp` param; with the
    /// param it opens, and tile_sampler reads it at that resolution.
    func testMPPParamForSlidesWithoutResolution() throws {
        let ws = try CohortWorkspace(patients: 1, size: 512, annotations: 2)
        let folder = ws.root.appendingPathComponent("plain")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // Large enough in µm at 0.25 µm/px for the detector's minimum tissue area.
        let (w, h) = (2048, 1536)
        let synthetic = SyntheticSlide(SyntheticSlideSpec(width: w, height: h, seed: 8))
        let pixels = synthetic.render(x: 0, y: 0, width: w, height: h)
        try PyramidTIFFWriter(url: folder.appendingPathComponent("plain.tif"), width: w, height: h, compression: .deflate, mpp: nil)
            .write(RGBImage(width: w, height: h, pixels: pixels))
        let without = try ws.run("""
        pipeline: nompp
        inputs:
          cohort: {kind: slides, dir: plain}
        nodes:
          t: {type: tile_sampler, in: {slides: cohort}}
        """)
        let message = without.failures.map(\.message).joined(separator: "\n")
        XCTAssertTrue(message.contains("plain.tif: no µm/px in the file") && message.contains("'mpp' param"), message)
        let with = try ws.run("""
        pipeline: withmpp
        inputs:
          cohort: {kind: slides, dir: plain, mpp: 0.25}
        nodes:
          t: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, mpp: 0.5, size: 64, min_tissue: 0.5}}
        """)
        XCTAssertTrue(with.succeeded, "\(with.failures)")
        let set = try SlideSet.read(from: try ws.output(with, "cohort", "slides"))
        XCTAssertEqual(set.slides.first?.mppSource, "override")
        XCTAssertEqual(set.slides.first?.mpp, 0.25)
        // 64 px at 0.5 µm/px from a 0.25 µm/px slide: 128 level-0 px per cell, area-averaged 2:1.
        let grid = try PatchSet(folder: try ws.output(with, "t", "patches"))
        XCTAssertGreaterThan(grid.count, 0)
        let r = try XCTUnwrap(grid.records.first)
        XCTAssertEqual((r.x - 64) % 128, 0)
        let full = RGBImage(width: w, height: h, pixels: pixels).crop(x: r.x - 64, y: r.y - 64, width: 128, height: 128)
        let patch = try grid.patch(0)
        var maxDiff = 0
        for y in 0..<64 { for x in 0..<64 { for c in 0..<3 {
            var sum = 0
            for dy in 0..<2 { for dx in 0..<2 { sum += Int(full.pixels[((2 * y + dy) * 128 + 2 * x + dx) * 3 + c]) } }
            maxDiff = max(maxDiff, abs(Int(patch.pixels[(y * 64 + x) * 3 + c]) - Int((Double(sum) / 4).rounded())))
        } } }
        XCTAssertLessThanOrEqual(maxDiff, 1)
    }
}
