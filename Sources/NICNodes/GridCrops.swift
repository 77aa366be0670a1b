import NICBasics
import Foundation
import Stats

/// Crops of compressed slides for the patient model: centres drawn with probability proportional to
/// their distance from background (NIC appendix), so crops sit well inside tissue.
public enum GridCrops {
    /// Euclidean distance (in grid cells) from every cell to the nearest background cell; cells
    /// outside the grid count as background. Exact, by Felzenszwalb & Huttenlocher's two 1-D passes.
    public static func distanceToBackground(mask: [Bool], height: Int, width: Int) -> [Float] {
        precondition(mask.count == height * width, "mask size")  // invariant: masks are read with their grid's size
        let infinity = Float(height * height + width * width + 1)
        // Pad by one cell of background on every side: the edge of the slide is background.
        let h = height + 2, w = width + 2
        var f = [Float](repeating: 0, count: h * w)
        for y in 0..<height { for x in 0..<width where mask[y * width + x] { f[(y + 1) * w + x + 1] = infinity } }
        var column = [Float](repeating: 0, count: h)
        for x in 0..<w {
            for y in 0..<h { column[y] = f[y * w + x] }
            let d = squaredDistance1D(column)
            for y in 0..<h { f[y * w + x] = d[y] }
        }
        var row = [Float](repeating: 0, count: w)
        var out = [Float](repeating: 0, count: height * width)
        for y in 1...max(1, height) where y <= height {
            for x in 0..<w { row[x] = f[y * w + x] }
            let d = squaredDistance1D(row)
            for x in 0..<width { out[(y - 1) * width + x] = d[x + 1].squareRoot() }
        }
        return out
    }

    /// The lower envelope of parabolas: d[q] = min_p (q - p)² + f[p].
    static func squaredDistance1D(_ f: [Float]) -> [Float] {
        let n = f.count
        var d = [Float](repeating: 0, count: n)
        var v = [Int](repeating: 0, count: n)
        var z = [Float](repeating: 0, count: n + 1)
        var k = 0
        z[0] = -.infinity
        z[1] = .infinity
        for q in 1..<max(1, n) {
            var s: Float
            repeat {
                let p = v[k]
                s = ((f[q] + Float(q * q)) - (f[p] + Float(p * p))) / Float(2 * (q - p))
                if s <= z[k] { k -= 1 } else { break }
            } while k >= 0
            k += 1
            v[k] = q
            z[k] = s
            z[k + 1] = .infinity
        }
        k = 0
        for q in 0..<n {
            while z[k + 1] < Float(q) { k += 1 }
            let p = v[k]
            d[q] = Float((q - p) * (q - p)) + f[p]
        }
        return d
    }

    /// `count` centres (y, x) drawn with replacement, probability ∝ weight; nil if every weight is 0.
    public static func sampleCentres(weights: [Float], width: Int, count: Int, using rng: inout SplitMix64) -> [(y: Int, x: Int)]? {
        var cumulative = [Double](repeating: 0, count: weights.count)
        var total = 0.0
        for (i, w) in weights.enumerated() { total += Double(max(0, w)); cumulative[i] = total }
        guard total > 0 else { return nil }
        return (0..<count).map { _ in
            let u = Double(rng.next() >> 11) / Double(1 << 53) * total
            var lo = 0, hi = cumulative.count - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if cumulative[mid] > u { hi = mid } else { lo = mid + 1 }
            }
            return (lo / width, lo % width)
        }
    }

    /// A size × size × channels window of an H × W × C grid centred on `centre`; zeros outside the grid.
    public static func crop(_ grid: UnsafeBufferPointer<Float>, height: Int, width: Int, channels: Int,
                            centre: (y: Int, x: Int), size: Int, into out: UnsafeMutableBufferPointer<Float>) {
        precondition(out.count == size * size * channels, "crop buffer size")  // invariant: callers allocate the buffer for the crop
        let top = centre.y - size / 2, left = centre.x - size / 2
        for i in 0..<out.count { out[i] = 0 }
        for row in 0..<size {
            let y = top + row
            guard y >= 0 && y < height else { continue }
            let x0 = max(0, left), x1 = min(width, left + size)
            guard x0 < x1 else { continue }
            let source = (y * width + x0) * channels, target = (row * size + (x0 - left)) * channels
            for i in 0..<((x1 - x0) * channels) { out[target + i] = grid[source + i] }
        }
    }
}
