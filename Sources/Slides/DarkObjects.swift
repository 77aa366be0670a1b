import Foundation

/// Counting dark haematoxylin objects in an RGB patch, relative to its slide's own nuclei: the
/// non-learned floor for counting mitotic figures (and whatever else is as dark: apoptotic bodies,
/// some lymphocytes). Stain-relative: a pixel is "dark" when its haematoxylin (colour deconvolution,
/// `HED`) reaches `darkFactor` × the slide's nucleus level, so a slide stained 25 % stronger than
/// another counts the same objects.
///
/// - nucleus level (`nucleusLevel`): the median haematoxylin of the darkest quarter of tissue pixels
///   (not glass) of a sample of the slide's cells — the typical nucleus, whatever the stain strength;
/// - dark object: a 4-connected component of pixels with H ≥ `darkFactor` × level of at least
///   `minDarkArea` px; nucleus: a component with H ≥ `nucleusFactor` × level of at least
///   `minNucleusArea` px. An object cut by the patch border counts in every patch holding part of it
///   that is large enough.
public struct DarkObjectCounter: Sendable {
    public var darkFactor = 1.75
    public var nucleusFactor = 0.8
    public var minDarkArea = 40
    public var minNucleusArea = 20
    /// Pixels brighter than this (mean of R, G, B, 0-255) are glass, not tissue, for the nucleus level.
    public var glass = 215.0

    public init() {}

    /// Haematoxylin of every pixel, row-major.
    public static func haematoxylin(_ image: RGBImage) -> [Float] {
        var out = [Float](repeating: 0, count: image.width * image.height)
        for i in out.indices {
            let r = Double(image.pixels[3 * i]) / 255, g = Double(image.pixels[3 * i + 1]) / 255, b = Double(image.pixels[3 * i + 2]) / 255
            out[i] = Float(HED.rgbToHED(r, g, b).0)
        }
        return out
    }

    /// The haematoxylin of the tissue pixels of `image` (what `nucleusLevel` pools over a slide's sample).
    public func tissueHaematoxylin(_ image: RGBImage) -> [Float] {
        let h = DarkObjectCounter.haematoxylin(image)
        return h.indices.filter { i in
            (Double(image.pixels[3 * i]) + Double(image.pixels[3 * i + 1]) + Double(image.pixels[3 * i + 2])) / 3 < glass
        }.map { h[$0] }
    }

    /// The median of the darkest quarter of `values` (nil when empty).
    public static func nucleusLevel(_ values: [Float]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let top = sorted[(sorted.count * 3 / 4)...]
        return Double(top[top.startIndex + top.count / 2])
    }

    /// Dark objects and nuclei of a patch, for a slide's nucleus level.
    public func count(_ image: RGBImage, level: Double) -> (dark: Int, nuclei: Int) {
        let h = DarkObjectCounter.haematoxylin(image)
        let dark = DarkObjectCounter.components(h, width: image.width, height: image.height, threshold: Float(darkFactor * level), minArea: minDarkArea)
        let nuclei = DarkObjectCounter.components(h, width: image.width, height: image.height, threshold: Float(nucleusFactor * level), minArea: minNucleusArea)
        return (dark.count, nuclei.count)
    }

    /// 4-connected components of pixels ≥ threshold with at least `minArea` pixels: their areas and centroids.
    public static func components(_ values: [Float], width: Int, height: Int, threshold: Float, minArea: Int) -> [(area: Int, x: Double, y: Double)] {
        var seen = [Bool](repeating: false, count: values.count)
        var out: [(area: Int, x: Double, y: Double)] = []
        var stack: [Int] = []
        for start in values.indices where !seen[start] && values[start] >= threshold {
            seen[start] = true
            stack.append(start)
            var area = 0, sx = 0, sy = 0
            while let p = stack.popLast() {
                area += 1
                let x = p % width, y = p / width
                sx += x; sy += y
                for (nx, ny) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] where nx >= 0 && ny >= 0 && nx < width && ny < height {
                    let q = ny * width + nx
                    if !seen[q] && values[q] >= threshold { seen[q] = true; stack.append(q) }
                }
            }
            if area >= minArea { out.append((area, Double(sx) / Double(area), Double(sy) / Double(area))) }
        }
        return out
    }
}
