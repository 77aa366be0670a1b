import Flow
import Foundation
import Slides
import Synthetic
import XCTest
@testable import NICNodes

/// The compressor's `stain` option: tiles normalised to a reference slide of another site move the
/// cohort's colour (mean-RGB codes over tissue) towards that site's, for Macenko and Reinhard; a
/// normalisation without a reference is an error naming the param.
final class StainCompressionTests: XCTestCase {
    func testNormalisedGridsMoveTowardsTheReferenceSite() throws {
        let ws = try CohortWorkspace(patients: 3, size: 768, annotations: 2)
        try ws.copyRepoNodes(["encoders/mean-rgb.yaml"])
        var options = SyntheticCohort.Options()
        (options.patients, options.size, options.seed, options.secondSlideProbability) = (1, 768, 5, 0)
        options.site = ScannerSite(name: "hospital-c")
        try SyntheticCohort(options).write(to: ws.root.appendingPathComponent("reference"))
        let yaml = CohortWorkspace.meanRGBGrids(pipeline: "stain").replacingOccurrences(of: "inputs:\n", with: """
        inputs:
          reference: {kind: slides, dir: reference/slides, pattern: "*.tif"}

        """) + """
          ref_grids: {type: compressor, in: {slides: reference, encoder: rgb}, params: {min_tissue: 0.3, previews: 0}}
          macenko: {type: compressor, in: {slides: cohort, encoder: rgb}, params: {min_tissue: 0.3, previews: 0, stain: macenko, stain_reference: reference/slides/P001-1.tif}}
          reinhard: {type: compressor, in: {slides: cohort, encoder: rgb}, params: {min_tissue: 0.3, previews: 0, stain: reinhard, stain_reference: reference/slides/P001-1.tif}}

        """
        let summary = try ws.run(yaml)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        func meanColour(_ node: String) throws -> [Double] {
            let gridSet = try GridSet(folder: try ws.output(summary, node, "grids"))
            var sum = [0.0, 0.0, 0.0], n = 0.0
            for slide in gridSet.slideSet.slides {
                let loaded = try gridSet.load(slide.stem)
                for cell in loaded.mask.indices where loaded.mask[cell] {
                    for ch in 0..<3 { sum[ch] += Double(loaded.grid[cell * 3 + ch]) }
                    n += 1
                }
            }
            return sum.map { $0 / n }
        }
        func distance(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() }
        let reference = try meanColour("ref_grids"), raw = try meanColour("grids")
        // Reinhard matches colour statistics, so the mean colour comes close; Macenko matches stain
        // vectors and the 99th percentile of each stain, which moves the mean colour only part of the way.
        for (node, share) in [("macenko", 0.9), ("reinhard", 0.6)] {
            let normalised = try meanColour(node)
            XCTAssertLessThan(distance(normalised, reference), share * distance(raw, reference), "\(node): \(raw) → \(normalised), reference \(reference)")
        }

        // The tile sampler normalises its patches the same way: each patch is the raw patch mapped from
        // its slide's statistics to the reference's.
        let tiles = try ws.run(yaml + """
          raw_tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 3}}
          stained_tiles: {type: tile_sampler, in: {slides: cohort}, params: {mode: grid, max_per_slide: 3, stain: reinhard, stain_reference: reference/slides/P001-1.tif}}

        """)
        XCTAssertTrue(tiles.succeeded, "\(tiles.failures)")
        let rawTiles = try PatchSet(folder: try ws.output(tiles, "raw_tiles", "patches"))
        let stained = try PatchSet(folder: try ws.output(tiles, "stained_tiles", "patches"))
        let target = try StainNormalization.fit(.reinhard, slide: try Slide(url: ws.root.appendingPathComponent("reference/slides/P001-1.tif")))
        XCTAssertEqual(rawTiles.records.count, stained.records.count)
        XCTAssertGreaterThan(rawTiles.records.count, 0)
        for i in 0..<rawTiles.records.count {
            let entry = try XCTUnwrap(GridSet(folder: try ws.output(summary, "grids", "grids")).slideSet[rawTiles.records[i].slide])
            let source = try StainNormalization.fit(.reinhard, slide: try entry.open())
            XCTAssertEqual(try stained.patch(i), try StainNormalization.apply(try rawTiles.patch(i), from: source, to: target))
        }

        // A stain without its reference (or the reference without a stain) is refused at validate, at the param.
        for (params, param) in [("{stain: macenko}", "stain"), ("{stain_reference: reference/slides/P001-1.tif}", "stain_reference")] {
            XCTAssertThrowsError(try ws.run(CohortWorkspace.meanRGBGrids(pipeline: "stain2") + """
              bad: {type: compressor, in: {slides: cohort, encoder: rgb}, params: \(params)}

            """)) { error in
                XCTAssertTrue("\(error)".contains("node 'bad' param '\(param)'") && "\(error)".contains("stain_reference"), "\(error)")
            }
        }
    }
}
