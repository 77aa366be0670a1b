import Foundation
import NICBasics

/// One step of an augmentation recipe: applied with probability `probability`, with a magnitude drawn
/// uniformly from `range` (its meaning depends on the kind; see `Kind`).
public struct AugmentationOp: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// One of the 8 rotations by 90° × flips, uniformly (identity included). No range.
        case dihedral
        /// HED stain jitter (Tellez et al.): per stain s ← α·s + β, α ~ U(1−σ, 1+σ), β ~ U(−σ, σ); σ drawn
        /// from range. Stains are optical densities (natural log), i.e. scikit-image's `rgb2hed` values ×
        /// −ln(1e-6) ≈ 13.8: in scikit-image's own scaling a bias of 0.05 is as large as a typical eosin
        /// stain and turns tissue green, while 0.05 optical density is the visible-but-plausible shift the
        /// paper's "light" setting describes.
        case hed
        /// Adds δ ~ U(range) to every channel (0...1 scale).
        case brightness
        /// Scales the distance from the patch's mean grey by f ~ U(range).
        case contrast
        /// Rotates hue by h ~ U(range) turns (0.05 = 18°).
        case hue
        /// Blends with the pixel's grey: f ~ U(range); 0 = grey, 1 = unchanged.
        case saturation
        /// Adds Gaussian noise of standard deviation σ ~ U(range) (0...1 scale).
        case noise
        /// Gaussian blur with σ ~ U(range) pixels.
        case blur
        /// Scales about the centre by z ~ U(range) (> 1 zooms in), bilinear, edges mirrored.
        case zoom
        /// Elastic deformation: random displacements of magnitude α ~ U(range) pixels, smoothed by a
        /// Gaussian of `sigma` pixels.
        case elastic
    }

    public var kind: Kind
    public var probability: Double
    public var range: ClosedRange<Double>
    /// Smoothness of the elastic displacement field, in pixels (elastic only).
    public var sigma: Double

    public init(_ kind: Kind, probability: Double = 1, range: ClosedRange<Double> = 0...0, sigma: Double = 8) {
        self.kind = kind
        self.probability = probability
        self.range = range
        self.sigma = sigma
    }

    /// Problems with the values, as sentences (empty when valid).
    public var problems: [String] {
        var out: [String] = []
        if !(0...1).contains(probability) { out.append("probability must be in 0...1, got \(probability)") }
        switch kind {
        case .hed, .noise, .blur: if range.lowerBound < 0 { out.append("range must not be negative, got \(range)") }
        case .contrast, .saturation, .zoom: if range.lowerBound <= 0 && kind == .zoom { out.append("zoom factors must be positive, got \(range)") }
            else if range.lowerBound < 0 { out.append("factors must not be negative, got \(range)") }
        case .elastic:
            if range.lowerBound < 0 { out.append("range must not be negative, got \(range)") }
            if sigma <= 0 { out.append("sigma must be positive, got \(sigma)") }
        case .dihedral, .brightness, .hue: break
        }
        return out
    }
}

/// A named list of augmentation steps, applied in order.
public struct AugmentationRecipe: Sendable, Equatable {
    public var name: String
    public var ops: [AugmentationOp]
    public init(name: String, ops: [AugmentationOp]) {
        self.name = name
        self.ops = ops
    }
}

/// Applies a recipe to patches, drawing fresh random parameters for every (epoch, patch index): a
/// training loop calls `apply(to:epoch:index:)` each time it uses a patch, so no two epochs see the
/// same augmented copy, yet a rerun with the same seed reproduces every draw exactly, on any thread
/// and in any order.
public struct Augmenter: Sendable {
    public let recipe: AugmentationRecipe
    public let seed: UInt64

    public init(recipe: AugmentationRecipe, seed: UInt64) {
        self.recipe = recipe
        self.seed = seed
    }

    public func apply(to patch: RGBImage, epoch: Int, index: Int) -> RGBImage {
        var rng = SplitMix64(seed: seed, epoch, index)
        var image = FloatImage(patch)
        for op in recipe.ops {
            // Both draws happen whether or not the op applies, so one op's probability never shifts
            // another op's random numbers.
            let applies = rng.unit() < op.probability
            let magnitude = op.range.lowerBound + (op.range.upperBound - op.range.lowerBound) * rng.unit()
            var opRandom = SplitMix64(seed: rng.next())
            guard applies else { continue }
            image.apply(op, magnitude: magnitude, random: &opRandom)
        }
        return image.rgb()
    }
}

/// Interleaved RGB in floats (0...1 nominal) so that a chain of operations rounds only once at the end.
public struct FloatImage: Sendable {
    public var width: Int
    public var height: Int
    public var values: [Float]

    public init(_ image: RGBImage) {
        width = image.width
        height = image.height
        values = image.pixels.map { Float($0) / 255 }
    }

    public init(width: Int, height: Int, values: [Float]) {
        self.width = width
        self.height = height
        self.values = values
    }

    public func rgb() -> RGBImage {
        RGBImage(width: width, height: height, pixels: values.map { UInt8(max(0, min(255, ($0 * 255).rounded()))) })
    }

    mutating func apply(_ op: AugmentationOp, magnitude m: Double, random: inout SplitMix64) {
        switch op.kind {
        case .dihedral: self = dihedral(random.int(below: 8))
        case .hed:
            let a = (random.uniform(1 - m, 1 + m), random.uniform(1 - m, 1 + m), random.uniform(1 - m, 1 + m))
            let k = -HED.logAdjust
            let b = (random.uniform(-m, m) / k, random.uniform(-m, m) / k, random.uniform(-m, m) / k)
            HED.perturb(&values, alpha: a, beta: b)
        case .brightness:
            let d = Float(m)
            for i in values.indices { values[i] += d }
        case .contrast:
            let mean = values.reduce(0, +) / Float(max(1, values.count))
            let f = Float(m)
            for i in values.indices { values[i] = mean + (values[i] - mean) * f }
        case .hue: rotateHue(by: m)
        case .saturation:
            let f = Float(m)
            for p in 0..<(width * height) {
                let r = values[p * 3], g = values[p * 3 + 1], b = values[p * 3 + 2]
                let grey = 0.299 * r + 0.587 * g + 0.114 * b
                values[p * 3] = grey + (r - grey) * f; values[p * 3 + 1] = grey + (g - grey) * f; values[p * 3 + 2] = grey + (b - grey) * f
            }
        case .noise:
            for i in values.indices { values[i] += Float(m * random.normal()) }
        case .blur: if m > 0 { gaussianBlur(sigma: m) }
        case .zoom: if m != 1 { zoom(m) }
        case .elastic: if m > 0 { elastic(alpha: m, sigma: op.sigma, random: &random) }
        }
        if op.kind != .dihedral && op.kind != .zoom && op.kind != .elastic && op.kind != .blur {
            for i in values.indices { values[i] = min(max(values[i], 0), 1) }
        }
    }

    /// k in 0..<8: k % 4 quarter turns counter-clockwise, then a horizontal flip when k ≥ 4. Matches
    /// `np.rot90(x, k % 4)` followed by `np.fliplr` when k ≥ 4.
    public func dihedral(_ k: Int) -> FloatImage {
        let turns = k % 4, flip = k >= 4
        let w2 = turns % 2 == 0 ? width : height, h2 = turns % 2 == 0 ? height : width
        var out = [Float](repeating: 0, count: values.count)
        for y in 0..<h2 {
            for x in 0..<w2 {
                let xf = flip ? w2 - 1 - x : x
                // Source of output (xf, y) after `turns` counter-clockwise quarter turns.
                let sx: Int, sy: Int
                switch turns {
                case 0: (sx, sy) = (xf, y)
                case 1: (sx, sy) = (width - 1 - y, xf)
                case 2: (sx, sy) = (width - 1 - xf, height - 1 - y)
                default: (sx, sy) = (y, height - 1 - xf)
                }
                let s = (sy * width + sx) * 3, d = (y * w2 + x) * 3
                out[d] = values[s]; out[d + 1] = values[s + 1]; out[d + 2] = values[s + 2]
            }
        }
        return FloatImage(width: w2, height: h2, values: out)
    }

    mutating func rotateHue(by turns: Double) {
        // Rotation about the grey axis in RGB (a YIQ-style hue rotation): linear, cheap, and exact for greys.
        let angle = 2 * Double.pi * turns
        let c = cos(angle), s = sin(angle), k = 1.0 / 3.0, q = (1.0 / 3.0).squareRoot()
        let m00 = Float(c + (1 - c) * k), m01 = Float(k * (1 - c) - q * s), m02 = Float(k * (1 - c) + q * s)
        let m10 = Float(k * (1 - c) + q * s), m11 = Float(c + k * (1 - c)), m12 = Float(k * (1 - c) - q * s)
        let m20 = Float(k * (1 - c) - q * s), m21 = Float(k * (1 - c) + q * s), m22 = Float(c + k * (1 - c))
        for p in 0..<(width * height) {
            let r = values[p * 3], g = values[p * 3 + 1], b = values[p * 3 + 2]
            values[p * 3] = m00 * r + m01 * g + m02 * b
            values[p * 3 + 1] = m10 * r + m11 * g + m12 * b
            values[p * 3 + 2] = m20 * r + m21 * g + m22 * b
        }
    }

    static func kernel(sigma: Double) -> [Float] {
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        var k = (-radius...radius).map { Float(exp(-Double($0 * $0) / (2 * sigma * sigma))) }
        let sum = k.reduce(0, +)
        for i in k.indices { k[i] /= sum }
        return k
    }

    @inline(__always) static func mirror(_ i: Int, _ n: Int) -> Int {
        if n == 1 { return 0 }
        var j = i
        let period = 2 * (n - 1)
        j = ((j % period) + period) % period
        return j < n ? j : period - j
    }

    /// Separable Gaussian of every channel (or of a single-channel field when `channels` is 1), edges
    /// mirrored. The mirrored neighbour of every position is looked up once per axis, not per tap (an
    /// elastic field's σ = 8 kernel has 49 taps); the sums run in the same order as `blurReference`'s,
    /// so the results are the same to the bit.
    static func blur(_ data: inout [Float], width: Int, height: Int, channels: Int, sigma: Double) {
        let k = kernel(sigma: sigma), taps = k.count, r = taps / 2
        let across = (0..<width).flatMap { x in (-r...r).map { mirror(x + $0, width) } }
        let down = (0..<height).flatMap { y in (-r...r).map { mirror(y + $0, height) } }
        var tmp = [Float](repeating: 0, count: data.count)
        k.withUnsafeBufferPointer { k in
            across.withUnsafeBufferPointer { across in
                down.withUnsafeBufferPointer { down in
                    data.withUnsafeMutableBufferPointer { data in
                        tmp.withUnsafeMutableBufferPointer { tmp in
                            for y in 0..<height {
                                for x in 0..<width {
                                    for c in 0..<channels {
                                        var acc: Float = 0
                                        for t in 0..<taps { acc += k[t] * data[(y * width + across[x * taps + t]) * channels + c] }
                                        tmp[(y * width + x) * channels + c] = acc
                                    }
                                }
                            }
                            for y in 0..<height {
                                for x in 0..<width {
                                    for c in 0..<channels {
                                        var acc: Float = 0
                                        for t in 0..<taps { acc += k[t] * tmp[(down[y * taps + t] * width + x) * channels + c] }
                                        data[(y * width + x) * channels + c] = acc
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The blur as the formula reads, one mirror per tap: the reference `blur` must equal to the bit.
    static func blurReference(_ data: inout [Float], width: Int, height: Int, channels: Int, sigma: Double) {
        let k = kernel(sigma: sigma), r = k.count / 2
        var tmp = [Float](repeating: 0, count: data.count)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels {
                    var acc: Float = 0
                    for t in -r...r { acc += k[t + r] * data[(y * width + mirror(x + t, width)) * channels + c] }
                    tmp[(y * width + x) * channels + c] = acc
                }
            }
        }
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels {
                    var acc: Float = 0
                    for t in -r...r { acc += k[t + r] * tmp[(mirror(y + t, height) * width + x) * channels + c] }
                    data[(y * width + x) * channels + c] = acc
                }
            }
        }
    }

    mutating func gaussianBlur(sigma: Double) {
        FloatImage.blur(&values, width: width, height: height, channels: 3, sigma: sigma)
    }

    /// Bilinear sample at (x, y) in pixel-centre coordinates, edges mirrored.
    @inline(__always) func sample(_ x: Float, _ y: Float, _ out: inout [Float], at d: Int) {
        let x0 = Int(x.rounded(.down)), y0 = Int(y.rounded(.down))
        let fx = x - Float(x0), fy = y - Float(y0)
        let xa = FloatImage.mirror(x0, width), xb = FloatImage.mirror(x0 + 1, width)
        let ya = FloatImage.mirror(y0, height), yb = FloatImage.mirror(y0 + 1, height)
        for c in 0..<3 {
            let v00 = values[(ya * width + xa) * 3 + c], v01 = values[(ya * width + xb) * 3 + c]
            let v10 = values[(yb * width + xa) * 3 + c], v11 = values[(yb * width + xb) * 3 + c]
            out[d + c] = (v00 * (1 - fx) + v01 * fx) * (1 - fy) + (v10 * (1 - fx) + v11 * fx) * fy
        }
    }

    mutating func zoom(_ z: Double) {
        let cx = Float(width - 1) / 2, cy = Float(height - 1) / 2, inv = Float(1 / z)
        var out = [Float](repeating: 0, count: values.count)
        for y in 0..<height {
            for x in 0..<width {
                sample(cx + (Float(x) - cx) * inv, cy + (Float(y) - cy) * inv, &out, at: (y * width + x) * 3)
            }
        }
        values = out
    }

    mutating func elastic(alpha: Double, sigma: Double, random: inout SplitMix64) {
        var dx = (0..<(width * height)).map { _ in Float(random.uniform(-1, 1)) }
        var dy = (0..<(width * height)).map { _ in Float(random.uniform(-1, 1)) }
        FloatImage.blur(&dx, width: width, height: height, channels: 1, sigma: sigma)
        FloatImage.blur(&dy, width: width, height: height, channels: 1, sigma: sigma)
        // Smoothing shrinks the field; rescale so that α is the largest displacement, as the parameter promises.
        let peak = max(dx.map(abs).max() ?? 0, dy.map(abs).max() ?? 0, 1e-12)
        let scale = Float(alpha) / peak
        var out = [Float](repeating: 0, count: values.count)
        for y in 0..<height {
            for x in 0..<width {
                let i = y * width + x
                sample(Float(x) + dx[i] * scale, Float(y) + dy[i] * scale, &out, at: i * 3)
            }
        }
        values = out
    }
}
