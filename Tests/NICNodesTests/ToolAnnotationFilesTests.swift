import Flow
import Foundation
import NICNodes
import XCTest

/// QuPath and ASAP files as the tools write them. The QuPath fixture (Fixtures/annotations/qupath/
/// all-objects.geojson, and the same gzip-compressed) is written by hand after QuPath's own writer:
/// `qupath-core/src/main/java/qupath/lib/io/PathObjectTypeAdapters.java` (`PathObjectTypeAdapter.write`:
/// a Feature with a UUID `id`, `geometry`, `nucleusGeometry` for cells, and `properties` with
/// `objectType` annotation/detection/cell/tile, `name`, `classification`, `isLocked`, `measurements`
/// as an object written by Gson, whose non-finite doubles are the bare literals NaN, Infinity and
/// -Infinity) and `GsonTools.PathClassTypeAdapter.write` (`{"name": …, "color": …}`, or for a derived
/// class `{"names": ["Tumor", "Positive"], "color": …}`; before 0.4 Gson's default `{"name",
/// "colorRGB", "parentClass"}`). It is what File › Export objects as GeoJSON › All objects writes for
/// a slide with annotations, a cell detection and tiles.
final class ToolAnnotationFilesTests: XCTestCase {
    static let qupath = InteropWorkspace.fixtures.appendingPathComponent("annotations/qupath")

    func allObjects(_ name: String = "all-objects.geojson") throws -> SlideAnnotations {
        try SlideAnnotations.read(Self.qupath.appendingPathComponent(name), width: 2048, height: 2048)
    }

    func testAllObjectsExportReadsAnnotationsAsRegionsAndCellsApart() throws {
        let a = try allObjects()
        // NaN / Infinity measurements do not reject the file; a repeated vertex is not a crossing.
        XCTAssertEqual(a.regions.map(\.className), ["Tumor", "Stroma", "Necrosis", "Tumor: Positive", "Stroma: Positive"])
        XCTAssertEqual(a.regions[0].rings[0].count, 4, "the repeated (1000, 1000) is one vertex")
        XCTAssertEqual(a.regions[0].area, 1_000_000)
        XCTAssertEqual(a.regions[3].parts, ["Tumor", "Positive"])
        XCTAssertEqual(a.objectTypes, ["annotation": 6, "cell": 3, "detection": 1, "tile": 1])
        XCTAssertEqual(a.points["Mitosis"]?.count, 3)
        // Cells: their polygons' centroids, by class ("" unclassified); the tile is not a region.
        XCTAssertEqual(a.cells["Tumor"], [PlanePoint(1220, 220)])
        XCTAssertEqual(a.cells["Tumor: Positive"], [PlanePoint(1620, 620)])
        XCTAssertEqual(a.cells[""], [PlanePoint(320, 720)])
        XCTAssertEqual(a.detections["Tumor"], [PlanePoint(700, 300)])
        XCTAssertEqual(a.regions.filter { $0.className == "Stroma" }.count, 1, "the Stroma tile adds no region")
        XCTAssertEqual(a.regions[0].object, "feature 0 'Tumour region' (id 4f0c7d5e-1b2a-4c3d-9e8f-0a1b2c3d4e5f)")
    }

    func testGzipExportReadsTheSame() throws {
        let plain = try allObjects(), packed = try allObjects("all-objects.geojson.gz")
        XCTAssertEqual(packed.regions.map(\.className), plain.regions.map(\.className))
        XCTAssertEqual(packed.cells, plain.cells)
        XCTAssertEqual(AnnotationsSource.stem(of: "S1.geojson.gz"), "S1")
        XCTAssertEqual(AnnotationsSource.stem(of: "S1.GeoJSON"), "S1")
        XCTAssertNil(AnnotationsSource.stem(of: "S1.txt.gz"))
        let ws = try InteropWorkspace()
        let broken = try ws.write("broken.geojson.gz", "not gzip")
        XCTAssertThrowsError(try SlideAnnotations.read(broken, width: 10, height: 10)) { error in
            XCTAssertTrue("\(error)".contains("broken.geojson.gz: not a gzip file"), "\(error)")
        }
        let data = try Data(contentsOf: Self.qupath.appendingPathComponent("all-objects.geojson.gz"))
        let truncated = ws.root.appendingPathComponent("truncated.geojson.gz")
        try data.prefix(data.count / 2).write(to: truncated)
        XCTAssertThrowsError(try SlideAnnotations.read(truncated, width: 2048, height: 2048)) { error in
            XCTAssertTrue("\(error)".contains("truncated.geojson.gz: the gzip data ends early"), "\(error)")
        }
    }

    /// Derived classes, rule 1: a task class equal to the full name ("Tumor: Positive") takes only it.
    /// Rule 2: a task class equal to one part ("Tumor") takes every class with that part.
    func testDerivedClassesMatchOnTheFullNameOrAnyPart() throws {
        let a = try allObjects()
        func labels(_ classes: [String]) throws -> [String: Int] {
            let tasks = AnnotationTasks(patchUM: 128, samples: 8, tasks: [.init(name: "t", kind: .region(classes: classes, minCoverage: 0.9, strideUM: 128, maxPerClass: 0))])
            let patches = try tasks.plan(a, width: 2048, height: 2048, mpp: 1, seed: 1, slideIndex: 0).patches
            return patches.reduce(into: [:]) { $0[$1.label, default: 0] += 1 }
        }
        // 128 px patches (centres 64 + 128k) kept at 90 % coverage: a patch straddling x = 1000 counts
        // for the class on either side when both are asked for (label: the majority).
        let full = try labels(["Tumor: Positive"])
        XCTAssertEqual(full, ["Tumor: Positive": 7 * 7], "x 64…832, y 1088…1856")
        let byPart = try labels(["Tumor", "Stroma"])
        XCTAssertEqual(byPart, ["Tumor": 8 * 15, "Stroma": 7 * 15], "Tumor and Tumor: Positive are one Tumor area of 15 rows; x = 960 is mostly Tumor")
        // Both given: the full name wins for the derived area.
        XCTAssertEqual(try labels(["Tumor", "Tumor: Positive"]), ["Tumor": 7 * 8, "Tumor: Positive": 7 * 7])
        // "Positive" takes the positive part of both.
        XCTAssertEqual(try labels(["Positive"]), ["Positive": 15 * 7])
    }

    /// One slide spelled `Tumour` among `Tumor` slides: the run goes on, with a warning naming the slide
    /// and listing its classes.
    func testAClassOtherSlidesHaveIsAWarningPerSlide() {
        let warnings = AnnotationsSource.missingWarnings([
            ("S1", ["Stroma", "Tumor"], ["tissue", "tissue=Tumor", "tissue=Stroma"]),
            ("S2", ["Stroma", "Tumour"], ["tissue", "tissue=Stroma"]),
            ("S3", ["Necrosis"], []),
        ])
        XCTAssertEqual(warnings, [
            "slide 'S2': no patches for class tissue=Tumor that 1 other slide(s) have; this slide's classes: Stroma, Tumour",
            "slide 'S3': no patches for task 'tissue' that 2 other slide(s) have; this slide's classes: Necrosis",
        ])
    }

    func testQuPath02ParentClassReadsAsTheDerivedClass() throws {
        let ws = try InteropWorkspace()
        // QuPath 0.2 (Gson's default PathClass form, "id" holding the object type).
        let url = try ws.write("q02.json", """
        [{"type": "Feature", "id": "PathAnnotationObject",
          "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]]},
          "properties": {"classification": {"name": "Positive", "colorRGB": -377282,
                                            "parentClass": {"name": "Tumor", "colorRGB": -3670016}},
                         "isLocked": false, "measurements": [{"name": "Area", "value": NaN}]}},
         {"type": "Feature", "id": "PathCellObject",
          "geometry": {"type": "Point", "coordinates": [50, 50]},
          "properties": {"classification": {"name": "Tumor", "colorRGB": -3670016}}},
         {"type": "Feature",
          "geometry": {"type": "Polygon", "coordinates": [[[100, 100], [200, 100], [200, 200], [100, 200], [100, 100]]]},
          "properties": {"type": "region", "classification": "Stroma"}}]
        """)
        let a = try SlideAnnotations.read(url, width: 200, height: 200)
        // An object type QuPath does not know is an annotation (QuPath's reader does the same); a
        // classification may be a bare string.
        XCTAssertEqual(a.regions.map(\.className), ["Tumor: Positive", "Stroma"])
        XCTAssertTrue(a.warnings.contains { $0.contains("unknown objectType 'region' read as annotation") }, "\(a.warnings)")
        XCTAssertEqual(a.regions[0].parts, ["Tumor", "Positive"])
        XCTAssertEqual(a.cells["Tumor"]?.count, 1, "0.2's PathCellObject id is a cell")
    }

    func testClassesMatchIgnoringCaseWithANote() throws {
        let a = try allObjects()
        let tasks = AnnotationTasks(patchUM: 128, samples: 8, tasks: [.init(name: "t", kind: .region(classes: ["tumor", "STROMA"], minCoverage: 0.9, strideUM: 128, maxPerClass: 0))])
        let planned = try tasks.plan(a, width: 2048, height: 2048, mpp: 1, seed: 1, slideIndex: 0)
        XCTAssertEqual(Set(planned.patches.map(\.label)), ["tumor", "STROMA"], "labels in the task file's spelling")
        XCTAssertTrue(planned.notes.contains { $0.contains("'Tumor' read as 'tumor'") && $0.contains("'Stroma' read as 'STROMA'") }, "\(planned.notes)")
    }

    /// Cells classified Tumor inside the Stroma annotation do not relabel Stroma patches; a Necrosis
    /// region excluded inside Tumor is never sampled.
    func testObjectTypeAndExclusion() throws {
        let a = try allObjects()
        let tasks = AnnotationTasks(patchUM: 128, samples: 8, tasks: [.init(name: "t", kind: .region(classes: ["Tumor", "Stroma"], minCoverage: 0.5, strideUM: 128, maxPerClass: 0))],
                                    exclude: ["necro*"])
        let patches = try tasks.plan(a, width: 2048, height: 2048, mpp: 1, seed: 1, slideIndex: 0).patches
        for p in patches {
            if p.x > 1000 && p.x < 2000 && p.y < 1000 { XCTAssertEqual(p.label, "Stroma", "\(p)") }
            XCTAssertFalse(p.x < 500 - 32 && p.y < 500 - 32, "a patch mostly inside the excluded necrosis: \(p)")
        }
        // Without the exclusion the necrotic core (inside Tumor's square) is sampled as Tumor.
        let plain = AnnotationTasks(patchUM: 128, samples: 8, tasks: tasks.tasks)
        XCTAssertTrue(try plain.plan(a, width: 2048, height: 2048, mpp: 1, seed: 1, slideIndex: 0).patches.contains { $0.x < 400 && $0.y < 400 && $0.label == "Tumor" })
    }

    /// Count tasks: cells and detections count when the task asks for them (all classes with "*");
    /// points tasks take annotations only; a slide without any point object gets no count patches.
    func testCountsTakeCellsAndSkipSlidesWithoutPoints() throws {
        let a = try allObjects()
        let tasks = AnnotationTasks(patchUM: 256, samples: 8, tasks: [
            .init(name: "cells", kind: .count(className: "*", inside: ["Tumor", "Stroma"], strideUM: 256, maxPerSlide: 0), objects: ["cell", "detection"]),
            .init(name: "tumour_cells", kind: .count(className: "Tumor", inside: ["Tumor", "Stroma"], strideUM: 256, maxPerSlide: 0)),
        ])
        let planned = try tasks.plan(a, width: 2048, height: 2048, mpp: 1, seed: 1, slideIndex: 0)
        let cells = planned.patches.filter { $0.task == "cells" }
        XCTAssertEqual(cells.map { Int($0.label)! }.reduce(0, +), 4, "3 cells + 1 detection, each in one patch")
        XCTAssertEqual(cells.first { $0.x == 1152 && $0.y == 128 }?.label, "1", "the Tumor cell at (1220, 220)")
        // "Tumor" by part: cells Tumor and Tumor: Positive, the Tumor detection; not the unclassified cell.
        XCTAssertEqual(planned.patches.filter { $0.task == "tumour_cells" }.map { Int($0.label)! }.reduce(0, +), 3)

        var bare = a
        bare.cells = [:]; bare.detections = [:]; bare.points = [:]
        let skipped = try tasks.plan(bare, width: 2048, height: 2048, mpp: 1, seed: 1, slideIndex: 0)
        XCTAssertTrue(skipped.patches.isEmpty)
        XCTAssertTrue(skipped.notes.contains { $0.contains("task 'cells': no point objects") }, "\(skipped.notes)")
    }

    func testPointsNearTheEdgeAreCountedInTheNotes() throws {
        let ws = try InteropWorkspace()
        let url = try ws.write("edge.geojson", """
        {"type": "FeatureCollection", "features": [
          {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [400, 0], [400, 400], [0, 400], [0, 0]]]},
           "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [1, 2, 3]}}},
          {"type": "Feature", "geometry": {"type": "MultiPoint", "coordinates": [[5, 5], [200, 200]]},
           "properties": {"objectType": "annotation", "classification": {"name": "Mitosis", "color": [1, 2, 3]}}}]}
        """)
        let a = try SlideAnnotations.read(url, width: 400, height: 400)
        let tasks = AnnotationTasks(patchUM: 64, tasks: [.init(name: "mitosis", kind: .points(className: "mitosis", radiusUM: 8, negativesInside: ["tumor"], ratio: 1))])
        let planned = try tasks.plan(a, width: 400, height: 400, mpp: 1, seed: 1, slideIndex: 0)
        XCTAssertEqual(planned.dropped["mitosis"], 1)
        XCTAssertTrue(planned.notes.contains { $0.contains("task 'mitosis': 1 of 2 'mitosis' point(s) within half a patch") }, "\(planned.notes)")
    }

    func testMessagesNameTheObjectAndPlace() throws {
        let ws = try InteropWorkspace()
        let nanCoordinate = try ws.write("nan.geojson", """
        {"type": "FeatureCollection", "features": [
          {"type": "Feature", "id": "0b1c", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [NaN, 0], [10, 10], [0, 0]]]},
           "properties": {"objectType": "annotation", "name": "Region 7", "classification": {"name": "Tumor", "color": [1, 2, 3]}}}]}
        """)
        XCTAssertThrowsError(try SlideAnnotations.read(nanCoordinate, width: 100, height: 100)) { error in
            XCTAssertTrue("\(error)".contains("nan.geojson: feature 0 'Region 7' (id 0b1c) (Polygon, class Tumor): ring 0 position 1 is not an [x, y] position"), "\(error)")
        }
        let unclosed = try ws.write("open.geojson", """
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [50, 0], [50, 50], [0, 50]]]},
         "properties": {"classification": {"name": "Tumor", "color": [1, 2, 3]}}}
        """)
        XCTAssertThrowsError(try SlideAnnotations.read(unclosed, width: 100, height: 100)) { error in
            XCTAssertTrue("\(error)".contains("ring 0 is not closed (first (0.0, 0.0), last (0.0, 50.0))"), "\(error)")
            XCTAssertFalse("\(error)".contains("PlanePoint"), "\(error)")
        }
        let badJSON = try ws.write("bad.geojson", "{\"type\": \"FeatureCollection\", \"features\": [}")
        XCTAssertThrowsError(try SlideAnnotations.read(badJSON, width: 100, height: 100)) { error in
            XCTAssertTrue("\(error)".contains("bad.geojson: not JSON"), "\(error)")
        }
        // ASAP (ASAP's `AnnotationList` XML: `<Annotation Name Type PartOfGroup>` with `<Coordinate Order X Y>`).
        let asap = try ws.write("a.xml", """
        <?xml version="1.0"?>
        <ASAP_Annotations>
          <Annotations>
            <Annotation Name="Annotation 3" Type="Polygon" PartOfGroup="tumor" Color="#F4FA58">
              <Coordinates>
                <Coordinate Order="0" X="0" Y="0" /><Coordinate Order="1" X="100" Y="100" />
                <Coordinate Order="2" X="100" Y="0" /><Coordinate Order="3" X="0" Y="100" />
              </Coordinates>
            </Annotation>
          </Annotations>
          <AnnotationGroups><Group Name="tumor" PartOfGroup="None" Color="#64FE2E"><Attributes /></Group></AnnotationGroups>
        </ASAP_Annotations>
        """)
        XCTAssertThrowsError(try SlideAnnotations.read(asap, width: 200, height: 200)) { error in
            XCTAssertTrue("\(error)".contains("a.xml: annotation 'Annotation 3' (0) (class tumor): ring 0 crosses itself"), "\(error)")
        }
        let asapBad = try ws.write("b.xml", """
        <ASAP_Annotations><Annotations>
          <Annotation Name="Annotation 9" Type="Dot" PartOfGroup="mitosis"><Coordinates><Coordinate Order="0" X="abc" Y="1" /></Coordinates></Annotation>
        </Annotations></ASAP_Annotations>
        """)
        XCTAssertThrowsError(try SlideAnnotations.read(asapBad, width: 200, height: 200)) { error in
            XCTAssertTrue("\(error)".contains("annotation 'Annotation 9' (0): a Coordinate without finite numeric X and Y (X=\"abc\""), "\(error)")
        }
        // A repeated consecutive vertex in ASAP is accepted too (JTS does).
        let repeated = try ws.write("c.xml", """
        <ASAP_Annotations><Annotations>
          <Annotation Name="A" Type="Polygon" PartOfGroup="tumor"><Coordinates>
            <Coordinate Order="0" X="0" Y="0" /><Coordinate Order="1" X="100" Y="0" /><Coordinate Order="2" X="100" Y="0" />
            <Coordinate Order="3" X="100" Y="100" /><Coordinate Order="4" X="0" Y="100" /></Coordinates></Annotation>
        </Annotations></ASAP_Annotations>
        """)
        XCTAssertEqual(try SlideAnnotations.read(repeated, width: 200, height: 200).regions.first?.area, 10_000)
    }
}
