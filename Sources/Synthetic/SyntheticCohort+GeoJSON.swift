import Foundation

/// The synthetic slides' ground truth as QuPath would export hand-drawn annotations (GeoJSON
/// FeatureCollection, level-0 pixels, `properties.classification.name`), for `nic synth --geojson`:
/// - `tumour` and `stroma`: one MultiPolygon each, the tissue class sampled at the centres of a
///   `lattice` px lattice, written as rectangles (runs of equal cells along a row, merged down the
///   rows while they stay the same), so the polygons never overlap and never cross themselves;
/// - `mitosis`: a MultiPoint of the true mitotic figures' centres;
/// - `nucleus`: a MultiPoint of every nucleus centre (the `nuclei` count of patches.csv).
extension SyntheticCohort {
    public func geoJSON(_ slide: SyntheticSlide, lattice: Int = 16) throws -> Data {
        let columns = slide.spec.width / lattice, rows = slide.spec.height / lattice
        var rectangles: [TissueClass: [[Int]]] = [:]  // x0, y0, x1, y1
        var open: [String: (cls: TissueClass, index: Int)] = [:]  // "x0-x1" → rectangle still growing down
        for r in 0..<rows {
            var runs: [(x0: Int, x1: Int, cls: TissueClass)] = []
            for c in 0..<columns {
                let cls = slide.tissueClass(x: (Double(c) + 0.5) * Double(lattice), y: (Double(r) + 0.5) * Double(lattice))
                if let last = runs.last, last.cls == cls, last.x1 == c { runs[runs.count - 1].x1 = c + 1 } else { runs.append((c, c + 1, cls)) }
            }
            var next: [String: (cls: TissueClass, index: Int)] = [:]
            for run in runs where run.cls == .tumour || run.cls == .stroma {
                let key = "\(run.x0)-\(run.x1)"
                if let growing = open[key], growing.cls == run.cls {
                    rectangles[run.cls]![growing.index][3] = (r + 1) * lattice  // invariant: opened below
                    next[key] = growing
                } else {
                    rectangles[run.cls, default: []].append([run.x0 * lattice, r * lattice, run.x1 * lattice, (r + 1) * lattice])
                    next[key] = (run.cls, rectangles[run.cls]!.count - 1)
                }
            }
            open = next
        }
        func feature(_ geometry: [String: Any], _ name: String, _ colour: [Int]) -> [String: Any] {
            ["type": "Feature", "geometry": geometry,
             "properties": ["objectType": "annotation", "classification": ["name": name, "color": colour]] as [String: Any]]
        }
        var features: [[String: Any]] = []
        for (cls, colour) in [(TissueClass.tumour, [200, 0, 0]), (.stroma, [150, 200, 150])] {
            guard let list = rectangles[cls], !list.isEmpty else { continue }
            let polygons = list.map { b in [[[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]], [b[0], b[1]]]] }
            features.append(feature(["type": "MultiPolygon", "coordinates": polygons], cls.rawValue, colour))
        }
        let nuclei = slide.nuclei(x0: 0, y0: 0, x1: Double(slide.spec.width), y1: Double(slide.spec.height))
        let mitoses = nuclei.filter { $0.kind == .mitosis }
        if !mitoses.isEmpty {
            features.append(feature(["type": "MultiPoint", "coordinates": mitoses.map { [$0.x, $0.y] }], "mitosis", [255, 0, 255]))
        }
        features.append(feature(["type": "MultiPoint", "coordinates": nuclei.map { [$0.x, $0.y] }], "nucleus", [0, 0, 255]))
        return try JSONSerialization.data(withJSONObject: ["type": "FeatureCollection", "features": features], options: [.sortedKeys])
    }

    /// Writes `<folder>/<stem>.geojson` for every slide of the cohort.
    public func writeGeoJSON(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for entry in slideSpecs {
            try geoJSON(SyntheticSlide(entry.spec)).write(to: folder.appendingPathComponent("\(entry.stem).geojson"))
        }
    }
}
