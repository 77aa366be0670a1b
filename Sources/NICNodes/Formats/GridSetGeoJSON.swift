import Flow
import Foundation
import NICBasics

/// A GridSet as QuPath tiles: per slide a GeoJSON FeatureCollection, one square Polygon per encoded
/// cell in level-0 pixels (`objectType: "tile"`), classified by its code cluster (k-means over the
/// cohort's codes, so a cluster has the same colour on every slide) with measurements — cluster,
/// column, row, the distance to the cluster centre, the first code channels, and any per-cell values
/// given (a patient model's per-cell outputs). QuPath: File › Import objects (or drag the file onto the
/// slide); Measure › Show measurement maps colours the tiles by any measurement.
public struct GridSetGeoJSON {
    public var clusters = 8
    public var seed: UInt64 = 1
    /// Code channels written as measurements (`code 0`, `code 1`, …); 0 for none.
    public var channels = 8

    public init() {}

    /// Writes `<folder>/<stem>.geojson` for every slide (or those in `only`); returns the files.
    /// `cellValues[stem][name]` are extra per-cell measurements, row-major over the slide's grid.
    @discardableResult
    public func write(_ gridSet: GridSet, to folder: URL, only: Set<String> = [], cellValues: [String: [String: [Double]]] = [:]) throws -> [URL] {
        let slides = gridSet.info.slides.filter { only.isEmpty || only.contains($0.stem) }
        guard !slides.isEmpty else { throw NodeError("no slide of the GridSet matches \(only.sorted().joined(separator: ", "))") }
        let c = gridSet.info.codeSize
        var loaded: [(stem: String, grid: [Float], cells: [Int], columns: Int)] = []
        for slide in slides {
            let (grid, mask, _, columns) = try gridSet.load(slide.stem)
            loaded.append((slide.stem, grid, mask.indices.filter { mask[$0] }, columns))
        }
        let codes = loaded.flatMap { slide in slide.cells.map { Array(slide.grid[($0 * c)..<(($0 + 1) * c)]) } }
        let centres = KMeans.fit(codes, k: min(clusters, codes.count), seed: seed)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var files: [URL] = []
        for slide in loaded {
            var features: [[String: Any]] = []
            for cell in slide.cells {
                let column = cell % slide.columns, row = cell / slide.columns
                let code = Array(slide.grid[(cell * c)..<((cell + 1) * c)])
                let (cluster, distance) = KMeans.nearest(code, centres)
                let r = try gridSet.cellRect(slide.stem, column: column, row: row)
                let ring = [[r.x, r.y], [r.x + r.width, r.y], [r.x + r.width, r.y + r.height], [r.x, r.y + r.height], [r.x, r.y]]
                var measurements: [String: Double] = ["cluster": Double(cluster), "column": Double(column), "row": Double(row), "cluster distance": distance]
                for k in 0..<min(channels, c) { measurements["code \(k)"] = Double(code[k]) }
                for (name, values) in cellValues[slide.stem] ?? [:] where cell < values.count && values[cell].isFinite { measurements[name] = values[cell] }
                features.append([
                    "type": "Feature",
                    "geometry": ["type": "Polygon", "coordinates": [ring]],
                    "properties": ["objectType": "tile", "isLocked": true,
                                   "classification": ["name": "cluster \(cluster)", "color": Self.palette[cluster % Self.palette.count]],
                                   "measurements": measurements] as [String: Any],
                ])
            }
            let url = folder.appendingPathComponent("\(slide.stem).geojson")
            try JSONSerialization.data(withJSONObject: ["type": "FeatureCollection", "features": features], options: [.sortedKeys]).write(to: url)
            files.append(url)
        }
        return files
    }

    /// Distinct colours (Tableau 10, then a few more) for the clusters.
    static let palette: [[Int]] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194],
                                   [127, 127, 127], [188, 189, 34], [23, 190, 207], [0, 0, 128], [128, 128, 0]]
}

/// Lloyd's k-means with k-means++ seeding on at most `sample` points (seeded); enough to colour codes.
enum KMeans {
    static func fit(_ points: [[Float]], k: Int, seed: UInt64, sample: Int = 20_000, iterations: Int = 30) -> [[Double]] {
        guard k > 0, let d = points.first?.count else { return [] }
        var rng = SplitMix64(seed: seed)
        let data = points.count > sample ? Array(points.shuffled(using: &rng).prefix(sample)) : points
        func distance(_ p: [Float], _ c: [Double]) -> Double { zip(p, c).reduce(0) { $0 + (Double($1.0) - $1.1) * (Double($1.0) - $1.1) } }
        var centres = [data[Int(rng.next() % UInt64(data.count))].map(Double.init)]
        var nearest = data.map { distance($0, centres[0]) }
        while centres.count < k {
            let total = nearest.reduce(0, +)
            guard total > 0 else { break }  // fewer distinct codes than clusters
            var pick = rng.uniform(0, total), index = data.count - 1
            for (i, w) in nearest.enumerated() { pick -= w; if pick <= 0 { index = i; break } }
            centres.append(data[index].map(Double.init))
            for (i, p) in data.enumerated() { nearest[i] = min(nearest[i], distance(p, centres[centres.count - 1])) }
        }
        for _ in 0..<iterations {
            var sums = [[Double]](repeating: [Double](repeating: 0, count: d), count: centres.count)
            var counts = [Int](repeating: 0, count: centres.count)
            for p in data {
                let (j, _) = KMeans.nearest(p, centres)
                counts[j] += 1
                for t in 0..<d { sums[j][t] += Double(p[t]) }
            }
            let updated = centres.indices.map { j in counts[j] > 0 ? sums[j].map { $0 / Double(counts[j]) } : centres[j] }
            if updated == centres { break }
            centres = updated
        }
        return centres
    }

    /// The closest centre and the Euclidean distance to it.
    static func nearest(_ p: [Float], _ centres: [[Double]]) -> (Int, Double) {
        var best = 0, bestDistance = Double.infinity
        for (j, c) in centres.enumerated() {
            let d = zip(p, c).reduce(0) { $0 + (Double($1.0) - $1.1) * (Double($1.0) - $1.1) }
            if d < bestDistance { best = j; bestDistance = d }
        }
        return (best, bestDistance.squareRoot())
    }
}
