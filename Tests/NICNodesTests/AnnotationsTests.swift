import Flow
import Foundation
import NICNodes
import Synthetic
import XCTest

/// QuPath GeoJSON and ASAP XML annotations against what shapely computes for the same geometry
/// (scripts/annotation_fixtures.py): region majority with holes and multipolygons, points within a
/// radius, counts, hard-negative sampling, and bad geometry.
final class AnnotationsTests: XCTestCase {
    static let fixtures = InteropWorkspace.fixtures.appendingPathComponent("annotations")

    func read(_ name: String) throws -> SlideAnnotations {
        try SlideAnnotations.read(Self.fixtures.appendingPathComponent(name), width: 2048, height: 2048)
    }

    /// Lattice sampling (32 × 32 points) against shapely's exact areas: the covered fraction within
    /// 0.04, the majority class equal wherever the leader is ahead by more than 0.1 of the patch.
    func testRegionMajorityWithHolesAndMultiPolygonsMatchesShapely() throws {
        let annotations = try read("regions.geojson")
        XCTAssertEqual(annotations.regions.count, 5, "tumour, two stroma, necrosis as two parts")
        XCTAssertEqual(annotations.regions.filter { $0.className == "necrosis" }.map(\.feature), [3, 3])
        XCTAssertTrue(annotations.warnings.contains { $0.contains("feature 4 (id 00000000-0000-0000-0000-000000000005): LineString geometry") }, "\(annotations.warnings)")
        // In the tumour's hole, off the stroma island: no region.
        XCTAssertFalse(annotations.inRegion(PlanePoint(850, 550), of: ["tumour", "stroma"]))
        XCTAssertTrue(annotations.inRegion(PlanePoint(750, 650), of: ["stroma"]))

        let expected = try CSVTable.read(Self.fixtures.appendingPathComponent("regions.expected.csv"))
        var judged = 0
        var byCentre: [String: (coverage: Double, label: String, margin: Double)] = [:]
        for row in expected.rows {
            let centre = PlanePoint(Double(row[0])!, Double(row[1])!)
            let coverage = Double(row[2])!, margin = Double(row[4])!
            byCentre["\(row[0]),\(row[1])"] = (coverage, row[3], margin)
            let (label, measured) = annotations.regionLabel(centre: centre, side: 128, classes: [], samples: 32)
            XCTAssertEqual(measured, coverage, accuracy: 0.04, "\(row)")
            if margin > 0.1 { XCTAssertEqual(label, row[3], "\(row)"); judged += 1 }
        }
        XCTAssertGreaterThan(judged, 100)

        // The region task: exactly shapely's patches with coverage ≥ 0.5 (bar the borderline ones).
        let tasks = AnnotationTasks(patchUM: 64, samples: 32, tasks: [.init(name: "tissue", kind: .region(classes: [], minCoverage: 0.5, strideUM: 64, maxPerClass: 0))])
        let (patches, _) = try tasks.patches(annotations, width: 2048, height: 2048, mpp: 0.5, seed: 1, slideIndex: 0)
        let derived = Dictionary(uniqueKeysWithValues: patches.map { ("\($0.x),\($0.y)", $0.label) })
        for (centre, truth) in byCentre where abs(truth.coverage - 0.5) > 0.04 {
            XCTAssertEqual(derived[centre] != nil, truth.coverage >= 0.5, centre)
            if let label = derived[centre], truth.margin > 0.1 { XCTAssertEqual(label, truth.label, centre) }
        }
        XCTAssertTrue(Set(derived.keys).isSubset(of: Set(byCentre.keys)), "no patch where shapely finds no annotation")
        XCTAssertEqual(Set(derived.values), ["tumour", "stroma", "necrosis"])
    }

    /// The fixture's first 8 mitoses are detections (`objectType: detection`, a detector's output), the
    /// other 7 annotations: kept apart, and merged here where a task would take both (`objects:`).
    func readPoints() throws -> SlideAnnotations {
        var annotations = try read("points.geojson")
        XCTAssertEqual(annotations.points["mitosis"]?.count, 7)
        XCTAssertEqual(annotations.detections["mitosis"]?.count, 8)
        annotations.points["mitosis", default: []] += annotations.detections["mitosis"] ?? []
        annotations.detections["mitosis"] = nil
        return annotations
    }

    func testPointsWithinRadiusAndCountsMatchShapely() throws {
        let annotations = try readPoints()
        XCTAssertEqual(annotations.points["mitosis"]?.count, 15)
        XCTAssertEqual(annotations.points["nucleus"]?.count, 400)
        XCTAssertTrue(annotations.warnings.contains { $0.contains("feature 11: no properties.classification.name") }, "\(annotations.warnings)")
        let expected = try CSVTable.read(Self.fixtures.appendingPathComponent("points.expected.csv"))
        for row in expected.rows {
            let centre = PlanePoint(Double(row[0])!, Double(row[1])!)
            XCTAssertEqual(annotations.hasPoint("mitosis", within: 16, of: centre), row[2] == "1", "\(row)")
            XCTAssertEqual(annotations.count("nucleus", centre: centre, side: 128), Int(row[3])!, "\(row)")
        }
        XCTAssertTrue(expected.rows.contains { $0[2] == "1" } && expected.rows.contains { $0[3] != "0" })
    }

    func testHardNegativesAreDrawnInsideTheRegionAtTheStatedRatio() throws {
        let annotations = try readPoints()
        let tasks = AnnotationTasks(patchUM: 64, tasks: [
            .init(name: "mitosis", kind: .points(className: "mitosis", radiusUM: 8, negativesInside: ["tumour"], ratio: 2), objects: ["annotation", "detection"]),
            .init(name: "nuclei", kind: .count(className: "nucleus", inside: ["tumour"], strideUM: 64, maxPerSlide: 20)),
        ])
        let (patches, dropped) = try tasks.patches(annotations, width: 2048, height: 2048, mpp: 0.5, seed: 3, slideIndex: 0)
        let mitoses = annotations.points["mitosis"]!
        let whole = mitoses.filter { $0.x >= 64 && $0.y >= 64 && $0.x <= 1984 && $0.y <= 1984 }
        XCTAssertEqual(dropped["mitosis"], mitoses.count - whole.count)
        XCTAssertGreaterThanOrEqual(dropped["mitosis"] ?? 0, 1, "the fixture's point 30 px from the edge")
        let positives = patches.filter { $0.task == "mitosis" && $0.label == "1" }
        let negatives = patches.filter { $0.task == "mitosis" && $0.label == "0" }
        XCTAssertEqual(positives.count, whole.count)
        XCTAssertEqual(negatives.count, 2 * whole.count)
        for n in negatives {
            let c = PlanePoint(Double(n.x), Double(n.y))
            XCTAssertTrue(annotations.inRegion(c, of: ["tumour"]))
            XCTAssertTrue(mitoses.allSatisfy { ($0.x - c.x) * ($0.x - c.x) + ($0.y - c.y) * ($0.y - c.y) > 16 * 16 }, "\(n)")
        }
        let counts = patches.filter { $0.task == "nuclei" }
        XCTAssertEqual(counts.count, 20)
        for p in counts { XCTAssertEqual(Int(p.label), annotations.count("nucleus", centre: PlanePoint(Double(p.x), Double(p.y)), side: 128)) }
        // Seeded: the same seed, the same patches; another seed, other negatives.
        XCTAssertEqual(try tasks.patches(annotations, width: 2048, height: 2048, mpp: 0.5, seed: 3, slideIndex: 0).patches, patches)
        XCTAssertNotEqual(try tasks.patches(annotations, width: 2048, height: 2048, mpp: 0.5, seed: 4, slideIndex: 0).patches.filter { $0.label == "0" }, negatives)
    }

    func testBadGeometryIsAnErrorNamingFileAndFeature() throws {
        let cases = [
            "bad_selfintersect.geojson": "bad_selfintersect.geojson: feature 1 (id 00000000-0000-0000-0000-000000000018) (class tumour): ring 0 crosses itself",
            "bad_unclosed.geojson": "bad_unclosed.geojson: feature 0 (id 00000000-0000-0000-0000-000000000019) (Polygon, class tumour): ring 0 is not closed",
            "bad_point_outside.geojson": "bad_point_outside.geojson: a point of class 'mitosis' at (2500.0, 30.0) lies outside the 2048 × 2048 slide",
            "bad_short_ring.geojson": "bad_short_ring.geojson: feature 2 (id 00000000-0000-0000-0000-000000000023) (Polygon, class tumour): ring 0 has 3 positions",
        ]
        for (file, message) in cases.sorted(by: { $0.key < $1.key }) {
            XCTAssertThrowsError(try read(file), file) { error in
                XCTAssertTrue("\(error)".contains(message), "\(file): \(error)")
            }
        }
    }

    func testASAPXMLPolygonsAndDots() throws {
        let annotations = try read("asap.xml")
        XCTAssertEqual(annotations.regions.count, 1)
        XCTAssertEqual(annotations.regions[0].className, "tumor")
        XCTAssertEqual(annotations.regions[0].area, 800 * 800, "coordinates in Order, the ring closed implicitly")
        XCTAssertEqual(annotations.points["mitosis"], [PlanePoint(500.5, 400), PlanePoint(300, 300), PlanePoint(700, 650)])
    }

    /// A task file reads as written: defaults (samples 16, min_coverage 0.5, stride_um = patch_um,
    /// ratio 1, 0 = all), a single class name as a one-item list, object types in any case, and the
    /// tasks in the file's order.
    func testTaskFileReadsAsWritten() throws {
        let shipped = try AnnotationTasks.read(NICPipelineTests.repo.appendingPathComponent("nodes/tasks/qupath-synthetic.yaml"))
        XCTAssertEqual(shipped.patchUM, 64)
        XCTAssertEqual(shipped.samples, 16)
        XCTAssertEqual(shipped.exclude, [])
        XCTAssertEqual(shipped.tasks, [
            .init(name: "tissue", kind: .region(classes: ["tumour", "stroma"], minCoverage: 0.5, strideUM: 64, maxPerClass: 40)),
            .init(name: "mitosis", kind: .points(className: "mitosis", radiusUM: 8, negativesInside: ["tumour"], ratio: 1)),
            .init(name: "nuclei", kind: .count(className: "nucleus", inside: ["tumour", "stroma"], strideUM: 64, maxPerSlide: 60)),
        ])
        let ws = try InteropWorkspace()
        let written = try AnnotationTasks.read(try ws.write("tasks.yaml", """
        patch_um: 32.5
        samples: 8
        exclude: Ignore*
        tasks:
          zeta: {kind: count, class: "*", inside: tumour, stride_um: 16, objects: [Cell, detection]}
          alpha: {kind: region, classes: tumour}
          beta: {kind: points, class: mitosis, radius_um: 4, negatives: {inside: stroma, ratio: 2.5}, objects: annotation}
        """))
        XCTAssertEqual(written.patchUM, 32.5)
        XCTAssertEqual(written.samples, 8)
        XCTAssertEqual(written.exclude, ["Ignore*"])
        XCTAssertEqual(written.tasks, [
            .init(name: "zeta", kind: .count(className: "*", inside: ["tumour"], strideUM: 16, maxPerSlide: 0), objects: ["cell", "detection"]),
            .init(name: "alpha", kind: .region(classes: ["tumour"], minCoverage: 0.5, strideUM: 32.5, maxPerClass: 0)),
            .init(name: "beta", kind: .points(className: "mitosis", radiusUM: 4, negativesInside: ["stroma"], ratio: 2.5), objects: ["annotation"]),
        ])
    }

    func testTaskFileErrorsNameFileAndLine() throws {
        let ws = try InteropWorkspace()
        let url = try ws.write("tasks.yaml", """
        patch_um: 64
        tasks:
          tissue: {kind: region, classes: [tumour], min_coverag: 0.5}
        """)
        XCTAssertThrowsError(try AnnotationTasks.read(url)) { error in
            XCTAssertTrue("\(error)".contains("tasks.yaml:3:45: error: unknown key 'min_coverag' in 'tasks.tissue' (did you mean 'min_coverage'?)"), "\(error)")
        }
        let points = try ws.write("points.yaml", """
        patch_um: 64
        tasks:
          mitosis: {kind: points, class: mitosis, radius_um: 8}
        """)
        XCTAssertThrowsError(try AnnotationTasks.read(points)) { error in
            XCTAssertTrue("\(error)".contains("points.yaml:3:12: error: 'tasks.mitosis': missing 'negatives'"), "\(error)")
        }
        // A misspelt required key is reported as the typo, where it is written.
        let typo = try ws.write("typo.yaml", """
        patch_um: 64
        tasks:
          mitosis: {kind: points, class: mitosis, radius_um: 8, negatives: {insde: [tumour]}}
        """)
        XCTAssertThrowsError(try AnnotationTasks.read(typo)) { error in
            XCTAssertTrue("\(error)".contains("typo.yaml:3:69: error: 'tasks.mitosis.negatives': missing 'inside' ('insde' is written: a typo?)"), "\(error)")
        }
    }
}

/// The synthetic cohort's ground truth written as QuPath GeoJSON (`nic synth --geojson`) read back by
/// the `annotations` node: at every patches.csv position, the tasks derived from the GeoJSON give
/// patches.csv's label — exactly for mitosis and nuclei (the same points), and for the tissue class
/// in at least 95 % of rows (118 of 118 with this cohort; polygons are the class map sampled every
/// 16 px, patches.csv's label an 8 × 8 lattice of the exact map: they can disagree only where a
/// boundary halves a patch).
final class SyntheticGeoJSONTests: XCTestCase {
    func testGeoJSONAnnotationsReproducePatchesCSVAndFeedTheTileSampler() throws {
        let ws = try CohortWorkspace(patients: 3, size: 1024, annotations: 30)
        let annotationsFolder = ws.root.appendingPathComponent("cohort/annotations")
        try ws.cohort.writeGeoJSON(to: annotationsFolder)
        let tasksURL = ws.root.appendingPathComponent("nodes/tasks/qupath-synthetic.yaml")
        try FileManager.default.createDirectory(at: tasksURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: NICPipelineTests.repo.appendingPathComponent("nodes/tasks/qupath-synthetic.yaml"), to: tasksURL)
        let tasks = try AnnotationTasks.read(tasksURL)

        let table = try CSVTable.read(ws.root.appendingPathComponent("cohort/patches.csv"))
        var read: [String: SlideAnnotations] = [:]
        var tissueRows = 0, tissueAgree = 0, pointRows = 0
        for row in table.rows {
            let (stem, x, y, task, label) = (row[0], Double(row[1])!, Double(row[2])!, row[3], row[4])
            if read[stem] == nil { read[stem] = try SlideAnnotations.read(annotationsFolder.appendingPathComponent("\(stem).geojson"), width: 1024, height: 1024) }
            let annotations = read[stem]!
            let centre = PlanePoint(x, y)
            switch task {
            case "mitosis":
                XCTAssertEqual(annotations.hasPoint("mitosis", within: 16, of: centre) ? "1" : "0", label, "\(row)")
                pointRows += 1
            case "nuclei":
                XCTAssertEqual(String(annotations.count("nucleus", centre: centre, side: 128)), label, "\(row)")
                pointRows += 1
            default:
                let (derived, coverage) = annotations.regionLabel(centre: centre, side: 128, classes: ["tumour", "stroma"], samples: tasks.samples)
                tissueRows += 1
                if derived == label && coverage >= 0.4 { tissueAgree += 1 }
            }
        }
        XCTAssertGreaterThan(pointRows, 100)
        XCTAssertGreaterThan(tissueRows, 30)
        XCTAssertGreaterThanOrEqual(Double(tissueAgree) / Double(tissueRows), 0.95, "\(tissueAgree)/\(tissueRows)")

        // The node's table replaces patches.csv in a pipeline: one input line changes.
        let summary = try ws.run("""
        pipeline: qupath
        inputs:
          cohort: {kind: slides, dir: cohort/slides, pattern: "*.tif", labels: cohort/labels.csv}
        nodes:
          annotations: {type: annotations, in: {slides: cohort}, params: {dir: cohort/annotations, tasks: nodes/tasks/qupath-synthetic.yaml, seed: 2}}
          tiles: {type: tile_sampler, in: {slides: cohort, annotations: annotations}, params: {mode: training, per_task: 30, seed: 1}}
        """)
        XCTAssertTrue(summary.succeeded, "\(summary.failures)")
        let derived = try CSVTable.fromPort(try ws.output(summary, "annotations", "annotations"))
        XCTAssertEqual(derived.columns, ["slide", "x", "y", "task", "label"])
        XCTAssertEqual(Set(derived.column("task")!), ["tissue", "mitosis", "nuclei"])
        let patchSet = try PatchSet(folder: try ws.output(summary, "tiles", "patches"))
        XCTAssertEqual(patchSet.count, 90)
        XCTAssertEqual(Set(patchSet.info.tasks.map(\.name)), ["tissue", "mitosis", "nuclei"])
        XCTAssertEqual(patchSet.info.tasks.first { $0.name == "mitosis" }?.classes, ["0", "1"])
        // Every derived mitosis row is right by the cohort's own truth: a true mitosis within 8 µm (16 px)
        // of the centre for "1", none for "0".
        for row in derived.rows where row[3] == "mitosis" {
            let slide = SyntheticSlide(ws.cohort.slideSpecs.first { $0.stem == row[0] }!.spec)  // invariant: rows name cohort slides
            let x = Double(row[1])!, y = Double(row[2])!
            let near = slide.nuclei(x0: x - 17, y0: y - 17, x1: x + 17, y1: y + 17)
                .contains { $0.kind == .mitosis && ($0.x - x) * ($0.x - x) + ($0.y - y) * ($0.y - y) <= 256 }
            XCTAssertEqual(near ? "1" : "0", row[4], "\(row)")
        }
    }
}
