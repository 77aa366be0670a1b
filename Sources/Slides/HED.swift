import Foundation

/// Colour deconvolution into haematoxylin, eosin and DAB (Ruifrok & Johnston), with scikit-image's
/// conventions exactly (`skimage.color.rgb2hed` / `hed2rgb`), so stain values mean the same in nic and
/// in Python; the tests hold it to 1e-4 of scikit-image on real slide pixels.
public enum HED {
    /// Rows: the RGB absorbance of pure haematoxylin, eosin, DAB.
    public static let rgbFromHED: [[Double]] = [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]]
    public static let hedFromRGB: [[Double]] = invert3(rgbFromHED)
    /// scikit-image clamps RGB at 1e-6 and divides log(rgb) by log(1e-6).
    public static let logAdjust = log(1e-6)

    /// RGB in 0...1 → stain concentrations (h, e, d), each ≥ 0.
    public static func rgbToHED(_ r: Double, _ g: Double, _ b: Double) -> (Double, Double, Double) {
        let lr = log(max(r, 1e-6)) / logAdjust, lg = log(max(g, 1e-6)) / logAdjust, lb = log(max(b, 1e-6)) / logAdjust
        let m = hedFromRGB
        let h = lr * m[0][0] + lg * m[1][0] + lb * m[2][0]
        let e = lr * m[0][1] + lg * m[1][1] + lb * m[2][1]
        let d = lr * m[0][2] + lg * m[1][2] + lb * m[2][2]
        return (max(h, 0), max(e, 0), max(d, 0))
    }

    /// Stain concentrations → RGB in 0...1 (clipped).
    public static func hedToRGB(_ h: Double, _ e: Double, _ d: Double) -> (Double, Double, Double) {
        let m = rgbFromHED
        let k = logAdjust  // = −(−log 1e-6)
        let lr = (h * m[0][0] + e * m[1][0] + d * m[2][0]) * k
        let lg = (h * m[0][1] + e * m[1][1] + d * m[2][1]) * k
        let lb = (h * m[0][2] + e * m[1][2] + d * m[2][2]) * k
        return (min(max(exp(lr), 0), 1), min(max(exp(lg), 0), 1), min(max(exp(lb), 0), 1))
    }

    /// The HED augmentation of Tellez et al.: per channel s ← α·s + β, then back to RGB. `values` are
    /// interleaved RGB in 0...1, changed in place.
    ///
    /// `clampNegative: true` is scikit-image's exact pipeline (`hed2rgb(rgb2hed(x) * α + β)`), which
    /// zeroes negative stain values first and so changes some pixels (ink, glare noise) even at α = 1,
    /// β = 0. The augmenter uses `false`: the optical-density transform is then exactly invertible and
    /// σ = 0 is the identity.
    public static func perturb(_ values: inout [Float], alpha: (Double, Double, Double), beta: (Double, Double, Double),
                               clampNegative: Bool = false) {
        let n = values.count / 3
        let m = hedFromRGB, k = logAdjust
        values.withUnsafeMutableBufferPointer { v in
            for i in 0..<n {
                var h: Double, e: Double, d: Double
                if clampNegative {
                    (h, e, d) = rgbToHED(Double(v[i * 3]), Double(v[i * 3 + 1]), Double(v[i * 3 + 2]))
                } else {
                    let lr = log(max(Double(v[i * 3]), 1e-6)) / k, lg = log(max(Double(v[i * 3 + 1]), 1e-6)) / k
                    let lb = log(max(Double(v[i * 3 + 2]), 1e-6)) / k
                    h = lr * m[0][0] + lg * m[1][0] + lb * m[2][0]
                    e = lr * m[0][1] + lg * m[1][1] + lb * m[2][1]
                    d = lr * m[0][2] + lg * m[1][2] + lb * m[2][2]
                }
                let (r, g, b) = hedToRGB(alpha.0 * h + beta.0, alpha.1 * e + beta.1, alpha.2 * d + beta.2)
                v[i * 3] = Float(r); v[i * 3 + 1] = Float(g); v[i * 3 + 2] = Float(b)
            }
        }
    }

    static func invert3(_ m: [[Double]]) -> [[Double]] {
        let a = m[0][0], b = m[0][1], c = m[0][2], d = m[1][0], e = m[1][1], f = m[1][2], g = m[2][0], h = m[2][1], i = m[2][2]
        let det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
        return [[(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
                [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
                [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det]]
    }
}
