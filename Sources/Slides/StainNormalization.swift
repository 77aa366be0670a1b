import Foundation

/// Stain normalisation of RGB tiles to a reference, as TIAToolbox and StainTools define it:
///
/// - **Macenko** (Macenko et al. 2009): optical density OD = −ln(max(I, 1)/255) per channel; pixels
///   whose OD is below β = 0.15 in any channel are not stain; the plane of the two largest eigenvectors
///   of the stain pixels' OD covariance (each turned to a positive first component); the angles of the
///   pixels' projections in that plane; the stain vectors at the α = 1st and 99th percentiles (numpy's
///   linear interpolation), haematoxylin the one with the larger red OD, each of unit length.
///   Concentrations by least squares (OD = C · S); a tile's concentrations are scaled so their 99th
///   percentiles match the reference's, and recomposed with the reference's vectors: 255·exp(−C · S_ref).
/// - **Reinhard** (Reinhard et al. 2001, as TIAToolbox's ReinhardNormalizer): per channel of CIE L*a*b*
///   (sRGB, D65, float), (x − mean) / std · std_ref + mean_ref, back to RGB.
///
/// Results are floating-point RGB in 0...255 (rounded to bytes by `apply`); Tests/SlidesTests holds
/// both to a numpy reimplementation on a fixture (≤ 1e-3 in optical density).
public enum StainNormalization {
    public enum Method: String, Sendable, CaseIterable { case none, macenko, reinhard }

    /// What a tile is normalised to, fitted once on a reference image.
    public enum Target: Sendable, Equatable {
        case none
        /// Rows: haematoxylin, eosin (unit OD vectors); the 99th percentile of each concentration.
        case macenko(stains: [[Double]], maxConcentrations: [Double])
        /// Per L*a*b* channel: mean and standard deviation.
        case reinhard(mean: [Double], std: [Double])
    }

    public static let beta = 0.15
    public static let alpha = 1.0

    public static func fit(_ method: Method, reference: RGBImage) throws -> Target { try fit(method, pixels: reference.pixels) }

    public static func fit(_ method: Method, pixels: [UInt8]) throws -> Target {
        switch method {
        case .none: return .none
        case .macenko:
            let od = opticalDensity(pixels)
            let stains = try macenkoStains(od)
            let c = concentrations(od, stains: stains)
            return .macenko(stains: stains, maxConcentrations: [percentile(c.map { $0[0] }, 99), percentile(c.map { $0[1] }, 99)])
        case .reinhard:
            let (mean, std) = labStatistics(pixels)
            return .reinhard(mean: mean, std: std)
        }
    }

    /// An image normalised to `target` with its own statistics, RGB floats in 0...255 (interleaved).
    public static func normalise(_ pixels: [UInt8], to target: Target) throws -> [Double] {
        let method: Method
        switch target {
        case .none: method = .none
        case .macenko: method = .macenko
        case .reinhard: method = .reinhard
        }
        return try normalise(pixels, from: try fit(method, pixels: pixels), to: target)
    }

    /// Pixels (a tile) normalised from `source` (the statistics of the slide they come from, fitted
    /// once per slide so that a tile of glass or of one stain is mapped like the rest) to `target`.
    public static func normalise(_ pixels: [UInt8], from source: Target, to target: Target) throws -> [Double] {
        switch (source, target) {
        case (_, .none):
            return pixels.map(Double.init)
        case (.macenko(let own, let ownMax), .macenko(let reference, let referenceMax)):
            let c = concentrations(opticalDensity(pixels), stains: own)
            var out = [Double](repeating: 0, count: pixels.count)
            for (i, row) in c.enumerated() {
                let a = row[0] * referenceMax[0] / max(ownMax[0], 1e-12), b = row[1] * referenceMax[1] / max(ownMax[1], 1e-12)
                for ch in 0..<3 { out[i * 3 + ch] = min(255, max(0, 255 * exp(-(a * reference[0][ch] + b * reference[1][ch])))) }
            }
            return out
        case (.reinhard(let ownMean, let ownStd), .reinhard(let mean, let std)):
            let lab = rgbToLab(pixels)
            var out = [Double](repeating: 0, count: pixels.count)
            for i in 0..<(pixels.count / 3) {
                let v = (0..<3).map { ch in (lab[i * 3 + ch] - ownMean[ch]) / max(ownStd[ch], 1e-12) * std[ch] + mean[ch] }
                let rgb = labToRGB(v[0], v[1], v[2])
                for ch in 0..<3 { out[i * 3 + ch] = min(255, max(0, rgb[ch])) }
            }
            return out
        default:
            throw MethodMismatch()
        }
    }

    struct MethodMismatch: Error, CustomStringConvertible {
        var description: String { "stain normalisation: the source and the reference were fitted with different methods" }
    }

    /// `normalise`, rounded to bytes.
    public static func apply(_ image: RGBImage, to target: Target) throws -> RGBImage {
        if case .none = target { return image }
        return RGBImage(width: image.width, height: image.height, pixels: try normalise(image.pixels, to: target).map { UInt8($0.rounded()) })
    }

    /// `normalise(from:to:)`, rounded to bytes.
    public static func apply(_ image: RGBImage, from source: Target, to target: Target) throws -> RGBImage {
        if case .none = target { return image }
        return RGBImage(width: image.width, height: image.height, pixels: try normalise(image.pixels, from: source, to: target).map { UInt8($0.rounded()) })
    }

    /// The statistics of a slide, from its whole image at `mpp` µm/px (a low resolution: a few
    /// hundred thousand pixels), for `normalise(from:to:)`.
    public static func fit(_ method: Method, slide: Slide, mpp: Double = 8) throws -> Target {
        guard method != .none else { return .none }
        let image = try slide.readWhole(mpp: max(mpp, slide.mpp))
        // Glass is not stain: Reinhard's statistics are taken over tissue (Macenko drops glass itself).
        if method == .reinhard {
            var tissue: [UInt8] = []
            for i in 0..<(image.pixels.count / 3) where Int(image.pixels[i * 3]) + Int(image.pixels[i * 3 + 1]) + Int(image.pixels[i * 3 + 2]) < 3 * 220 {
                tissue += image.pixels[(i * 3)..<(i * 3 + 3)]
            }
            guard tissue.count >= 300 else { throw NotEnoughStain(count: tissue.count / 3) }
            return try fit(method, pixels: tissue)
        }
        return try fit(method, pixels: image.pixels)
    }

    // MARK: Macenko

    /// Per pixel (R, G, B) optical density −ln(max(I, 1)/255).
    static func opticalDensity(_ pixels: [UInt8]) -> [[Double]] {
        (0..<(pixels.count / 3)).map { i in (0..<3).map { -log(max(Double(pixels[i * 3 + $0]), 1) / 255) } }
    }

    struct NotEnoughStain: Error, CustomStringConvertible {
        var count: Int
        var description: String { "Macenko stain estimation needs stained pixels (OD ≥ \(StainNormalization.beta) in every channel); the image has \(count)" }
    }

    /// Haematoxylin and eosin unit vectors from OD pixels.
    static func macenkoStains(_ od: [[Double]]) throws -> [[Double]] {
        let tissue = od.filter { $0.allSatisfy { $0 >= beta } }
        guard tissue.count >= 3 else { throw NotEnoughStain(count: tissue.count) }
        let n = Double(tissue.count)
        let mean = (0..<3).map { j in tissue.reduce(0) { $0 + $1[j] } / n }
        var cov = [[Double]](repeating: [0, 0, 0], count: 3)
        for row in tissue { for a in 0..<3 { for b in 0..<3 { cov[a][b] += (row[a] - mean[a]) * (row[b] - mean[b]) } } }
        for a in 0..<3 { for b in 0..<3 { cov[a][b] /= n - 1 } }
        let (values, vectors) = symmetricEigen(cov)
        let order = values.indices.sorted { values[$0] > values[$1] }
        var e1 = vectors[order[0]], e2 = vectors[order[1]]
        if e1[0] < 0 { e1 = e1.map { -$0 } }
        if e2[0] < 0 { e2 = e2.map { -$0 } }
        let phi = tissue.map { atan2(dot($0, e2), dot($0, e1)) }
        let low = percentile(phi, alpha), high = percentile(phi, 100 - alpha)
        let vMin = (0..<3).map { e1[$0] * cos(low) + e2[$0] * sin(low) }
        let vMax = (0..<3).map { e1[$0] * cos(high) + e2[$0] * sin(high) }
        let stains = vMin[0] > vMax[0] ? [vMin, vMax] : [vMax, vMin]
        return stains.map { v in let norm = dot(v, v).squareRoot(); return v.map { $0 / norm } }
    }

    /// Least-squares concentrations C (per pixel, 2) with OD ≈ C · stains.
    static func concentrations(_ od: [[Double]], stains s: [[Double]]) -> [[Double]] {
        let a = dot(s[0], s[0]), b = dot(s[0], s[1]), d = dot(s[1], s[1])
        let det = a * d - b * b
        return od.map { row in
            let p = dot(row, s[0]), q = dot(row, s[1])
            return [(d * p - b * q) / det, (a * q - b * p) / det]
        }
    }

    /// numpy.percentile's default (linear interpolation between closest ranks).
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let position = p / 100 * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down)), upper = min(sorted.count - 1, lower + 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }

    /// Eigenvalues and unit eigenvectors of a symmetric 3 × 3 matrix (cyclic Jacobi rotations).
    static func symmetricEigen(_ matrix: [[Double]]) -> (values: [Double], vectors: [[Double]]) {
        var a = matrix
        var v: [[Double]] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
        for _ in 0..<100 {
            let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2]
            if off < 1e-30 { break }
            for (p, q) in [(0, 1), (0, 2), (1, 2)] where abs(a[p][q]) > 0 {
                let theta = (a[q][q] - a[p][p]) / (2 * a[p][q])
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), s = t * c
                for k in 0..<3 {
                    let akp = a[k][p], akq = a[k][q]
                    a[k][p] = c * akp - s * akq
                    a[k][q] = s * akp + c * akq
                }
                for k in 0..<3 {
                    let apk = a[p][k], aqk = a[q][k]
                    a[p][k] = c * apk - s * aqk
                    a[q][k] = s * apk + c * aqk
                }
                for k in 0..<3 {
                    let vkp = v[k][p], vkq = v[k][q]
                    v[k][p] = c * vkp - s * vkq
                    v[k][q] = s * vkp + c * vkq
                }
            }
        }
        return ((0..<3).map { a[$0][$0] }, (0..<3).map { j in (0..<3).map { v[$0][j] } })
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }

    // MARK: Reinhard (CIE L*a*b*, sRGB, D65)

    static let white = (x: 0.95047, y: 1.0, z: 1.08883)

    static func labStatistics(_ pixels: [UInt8]) -> (mean: [Double], std: [Double]) { statistics(rgbToLab(pixels)) }

    /// Per channel mean and population standard deviation (numpy's default) of interleaved triples.
    static func statistics(_ values: [Double]) -> (mean: [Double], std: [Double]) {
        let n = Double(values.count / 3)
        let mean = (0..<3).map { ch in stride(from: ch, to: values.count, by: 3).reduce(0) { $0 + values[$1] } / n }
        let std = (0..<3).map { ch in (stride(from: ch, to: values.count, by: 3).reduce(0) { $0 + pow(values[$1] - mean[ch], 2) } / n).squareRoot() }
        return (mean, std)
    }

    static func rgbToLab(_ pixels: [UInt8]) -> [Double] {
        func linear(_ c: Double) -> Double { c > 0.04045 ? pow((c + 0.055) / 1.055, 2.4) : c / 12.92 }
        func f(_ t: Double) -> Double { t > 0.008856 ? cbrt(t) : 7.787 * t + 16.0 / 116 }
        var out = [Double](repeating: 0, count: pixels.count)
        for i in 0..<(pixels.count / 3) {
            let r = linear(Double(pixels[i * 3]) / 255), g = linear(Double(pixels[i * 3 + 1]) / 255), b = linear(Double(pixels[i * 3 + 2]) / 255)
            let x = (0.412453 * r + 0.357580 * g + 0.180423 * b) / white.x
            let y = (0.212671 * r + 0.715160 * g + 0.072169 * b) / white.y
            let z = (0.019334 * r + 0.119193 * g + 0.950227 * b) / white.z
            let fx = f(x), fy = f(y), fz = f(z)
            out[i * 3] = y > 0.008856 ? 116 * cbrt(y) - 16 : 903.3 * y
            out[i * 3 + 1] = 500 * (fx - fy)
            out[i * 3 + 2] = 200 * (fy - fz)
        }
        return out
    }

    static func labToRGB(_ l: Double, _ a: Double, _ b: Double) -> [Double] {
        let fy = (l + 16) / 116, fx = fy + a / 500, fz = fy - b / 200
        func inverse(_ t: Double) -> Double { t > 0.206893 ? t * t * t : (t - 16.0 / 116) / 7.787 }
        let x = inverse(fx) * white.x, y = inverse(fy) * white.y, z = inverse(fz) * white.z
        let r = 3.240479 * x - 1.537150 * y - 0.498535 * z
        let g = -0.969256 * x + 1.875992 * y + 0.041556 * z
        let bl = 0.055648 * x - 0.204043 * y + 1.057311 * z
        func gamma(_ c: Double) -> Double { c > 0.0031308 ? 1.055 * pow(max(c, 0), 1 / 2.4) - 0.055 : 12.92 * c }
        return [gamma(r) * 255, gamma(g) * 255, gamma(bl) * 255]
    }
}
