import Foundation
import NICBasics
import Slides

/// What a synthetic slide is made of at a point.
public enum TissueClass: String, Sendable, CaseIterable {
    case background
    case stroma
    case tumour
    /// Pen ink on the glass: not tissue.
    case ink
}

/// The parameters of one synthetic slide.
public struct SyntheticSlideSpec: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var seed: UInt64
    /// Target fraction of the tissue that is tumour.
    public var tumourFraction: Double
    /// Probability that a tumour cell is in mitosis (the mitotic index).
    public var mitosisRate: Double
    /// Probability that a tumour cell is an apoptotic body: a mitosis look-alike (small, round, very dark,
    /// eosinophilic cytoplasm), independent of the mitotic rate so that "dark blobs" alone do not count mitoses.
    public var apoptosisRate: Double
    /// Probability that a tumour cell position holds an infiltrating lymphocyte (small round dark nucleus).
    public var tumourLymphocyteRate: Double
    /// Mean probability that a stroma lattice cell holds a lymphocyte; patchy (a smooth field modulates it
    /// between 0 and twice this value), as lymphocytes gather in aggregates.
    public var stromaLymphocyteRate: Double
    /// Stain strengths (1 = nominal): slide-to-slide staining variation, a nuisance for models.
    public var haematoxylin: Double
    public var eosin: Double
    /// Whether a pen mark crosses the slide.
    public var penMark: Bool
    /// What nuclei and figures look like (`SyntheticLook`; the default is the look nic synth always had).
    public var look = SyntheticLook()

    public init(width: Int, height: Int, seed: UInt64, tumourFraction: Double = 0.4, mitosisRate: Double = 0.02,
                apoptosisRate: Double = 0.01, tumourLymphocyteRate: Double = 0.04, stromaLymphocyteRate: Double = 0.08,
                haematoxylin: Double = 1, eosin: Double = 1, penMark: Bool = false) {
        self.width = width
        self.height = height
        self.seed = seed
        self.tumourFraction = tumourFraction
        self.mitosisRate = mitosisRate
        self.apoptosisRate = apoptosisRate
        self.tumourLymphocyteRate = tumourLymphocyteRate
        self.stromaLymphocyteRate = stromaLymphocyteRate
        self.haematoxylin = haematoxylin
        self.eosin = eosin
        self.penMark = penMark
    }
}

/// A procedural H&E-like slide at 0.5 µm/px: every pixel, tissue class and nucleus is a pure function of
/// the spec and the level-0 position, so any region renders identically in any order and on any thread,
/// and the ground truth (class, nuclei, mitoses) of any patch is known exactly.
///
/// Scene: tissue where a low-frequency noise field plus a central envelope exceeds a threshold; inside
/// it, tumour where a second field exceeds the quantile that gives `tumourFraction`, stroma elsewhere.
/// Cells sit on a jittered 16 px (8 µm) lattice (the cell model is in `SyntheticSlide+Cells.swift`):
/// tumour cells carry large round nuclei, some of them mitotic figures, apoptotic bodies or infiltrating
/// lymphocytes; stroma carries sparse elongated fibroblast nuclei and patchy lymphocytes. Colour is
/// Beer–Lambert with the haematoxylin and eosin absorbance vectors of `HED.rgbFromHED`, scaled per slide
/// by the stain strengths.
public final class SyntheticSlide: @unchecked Sendable {  // tumourCut is written only in init, before sharing
    public let spec: SyntheticSlideSpec
    static let cell = 16
    static let tissueScale = 1400.0
    static let tumourScale = 420.0
    let tissueThreshold = 0.5
    /// The tumour field's cut: the (1 − tumourFraction) quantile over tissue. Set once, in `init`.
    public private(set) var tumourCut: Double = 0
    let seedTissue: UInt64, seedTumour: UInt64, seedCells: UInt64, seedPixel: UInt64, seedTexture: UInt64
    /// The lymphocyte-aggregate field's seed, derived so that the other seeds keep their draws.
    let seedLymphocytes: UInt64
    let pen: (y0: Double, amplitude: Double, period: Double, halfWidth: Double, x0: Double, x1: Double)?

    public init(_ spec: SyntheticSlideSpec) {
        self.spec = spec
        var rng = SplitMix64(seed: spec.seed)
        seedTissue = rng.next(); seedTumour = rng.next(); seedCells = rng.next(); seedPixel = rng.next(); seedTexture = rng.next()
        seedLymphocytes = SeedStream(seedCells).derive(.syntheticLymphocytes)
        if spec.penMark {
            let w = Double(spec.width), h = Double(spec.height)
            let nearTop = rng.bernoulli(0.5)
            pen = (y0: nearTop ? h * rng.uniform(0.06, 0.14) : h * rng.uniform(0.86, 0.94), amplitude: h * 0.03,
                   period: w * rng.uniform(0.15, 0.3), halfWidth: 14, x0: w * rng.uniform(0.05, 0.3), x1: w * rng.uniform(0.6, 0.95))
        } else {
            pen = nil
        }
        // The tumour threshold is the (1 − f) quantile of the tumour field over tissue, estimated on a lattice.
        var values: [Double] = []
        let steps = 96
        for j in 0..<steps {
            for i in 0..<steps {
                let x = (Double(i) + 0.5) * Double(spec.width) / Double(steps), y = (Double(j) + 0.5) * Double(spec.height) / Double(steps)
                if tissueField(x, y) > tissueThreshold { values.append(tumourField(x, y)) }
            }
        }
        values.sort()
        let f = min(max(spec.tumourFraction, 0), 1)
        let threshold = values.isEmpty ? 1 : values[min(values.count - 1, Int(Double(values.count) * (1 - f)))]
        tumourCut = f >= 1 ? -1 : (f <= 0 ? 2 : threshold)
    }

    // MARK: Fields

    static func smooth(_ t: Double) -> Double { t * t * (3 - 2 * t) }

    static func valueNoise(_ x: Double, _ y: Double, _ seed: UInt64) -> Double {
        let xi = Int(x.rounded(.down)), yi = Int(y.rounded(.down))
        let fx = smooth(x - Double(xi)), fy = smooth(y - Double(yi))
        let v00 = hashUnit(seed, xi, yi), v10 = hashUnit(seed, xi + 1, yi)
        let v01 = hashUnit(seed, xi, yi + 1), v11 = hashUnit(seed, xi + 1, yi + 1)
        return (v00 * (1 - fx) + v10 * fx) * (1 - fy) + (v01 * (1 - fx) + v11 * fx) * fy
    }

    static func fbm(_ x: Double, _ y: Double, _ seed: UInt64, octaves: Int) -> Double {
        var sum = 0.0, amplitude = 1.0, norm = 0.0, f = 1.0
        for o in 0..<octaves {
            sum += amplitude * valueNoise(x * f, y * f, seed &+ UInt64(o))
            norm += amplitude
            amplitude *= 0.5
            f *= 2
        }
        return sum / norm
    }

    func tissueField(_ x: Double, _ y: Double) -> Double {
        let w = Double(spec.width), h = Double(spec.height)
        let dx = (x - w / 2) / (w * 0.5), dy = (y - h / 2) / (h * 0.5)
        let envelope = max(0, 1 - (dx * dx + dy * dy))
        return 0.55 * SyntheticSlide.fbm(x / SyntheticSlide.tissueScale, y / SyntheticSlide.tissueScale, seedTissue, octaves: 4) + 0.5 * envelope
    }

    func tumourField(_ x: Double, _ y: Double) -> Double {
        SyntheticSlide.fbm(x / SyntheticSlide.tumourScale, y / SyntheticSlide.tumourScale, seedTumour, octaves: 3)
    }

    func inInk(_ x: Double, _ y: Double) -> Bool {
        guard let pen, x >= pen.x0, x <= pen.x1 else { return false }
        let centre = pen.y0 + pen.amplitude * sin(2 * .pi * x / pen.period)
        return abs(y - centre) <= pen.halfWidth
    }

    /// The class at a level-0 point (ink over everything).
    public func tissueClass(x: Double, y: Double) -> TissueClass {
        if inInk(x, y) { return .ink }
        guard tissueField(x, y) > tissueThreshold else { return .background }
        return tumourField(x, y) > tumourCut ? .tumour : .stroma
    }

    // MARK: Rendering

    /// Level-0 pixels of a rectangle, RGB.
    public func render(x x0: Int, y y0: Int, width w: Int, height h: Int) -> [UInt8] {
        // Smooth fields on an 8 px lattice, interpolated per pixel: the fields vary over hundreds of pixels.
        let step = 8
        let gx0 = Int((Double(x0) / Double(step)).rounded(.down)), gy0 = Int((Double(y0) / Double(step)).rounded(.down))
        let gw = (x0 + w) / step - gx0 + 2, gh = (y0 + h) / step - gy0 + 2
        var tissue = [Double](repeating: 0, count: gw * gh), tumour = tissue, texture = tissue
        for j in 0..<gh {
            for i in 0..<gw {
                let x = Double((gx0 + i) * step), y = Double((gy0 + j) * step)
                tissue[j * gw + i] = tissueField(x, y)
                tumour[j * gw + i] = tumourField(x, y)
                texture[j * gw + i] = SyntheticSlide.valueNoise(x / 500, y / 500, seedTexture)
            }
        }
        // What the cells add: haematoxylin of nuclei and figures, eosin of apoptotic cytoplasm, clear halos.
        var marks = CellMarks(x: x0, y: y0, width: w, height: h)
        marks.grain = spec.look.chromatin
        marks.grainSeed = SeedStream(seedTexture).derive(.syntheticGrain)
        let c = SyntheticSlide.cell, reach = SyntheticSlide.cellReach
        for j in ((y0 - reach) / c - 1)...((y0 + h + reach) / c) {
            for i in ((x0 - reach) / c - 1)...((x0 + w + reach) / c) {
                guard let n = nucleus(cellX: i, cellY: j) else { continue }
                draw(n, cellX: i, cellY: j, into: &marks)
            }
        }
        let hv = HED.rgbFromHED[0], ev = HED.rgbFromHED[1]
        let kH = spec.haematoxylin, kE = spec.eosin
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for py in 0..<h {
            let y = y0 + py
            let gyf = Double(y) / Double(step) - Double(gy0)
            let gj = min(Int(gyf), gh - 2), fy = gyf - Double(gj)
            for px in 0..<w {
                let x = x0 + px
                let gxf = Double(x) / Double(step) - Double(gx0)
                let gi = min(Int(gxf), gw - 2), fx = gxf - Double(gi)
                func lerp(_ f: [Double]) -> Double {
                    let a = f[gj * gw + gi] * (1 - fx) + f[gj * gw + gi + 1] * fx
                    let b = f[(gj + 1) * gw + gi] * (1 - fx) + f[(gj + 1) * gw + gi + 1] * fx
                    return a * (1 - fy) + b * fy
                }
                var hash = SplitMix64.mix(seedPixel ^ UInt64(truncatingIfNeeded: y &* 0x1_0000_0001 &+ x))
                let noise = Double(Int(hash & 0xFF) - 128) / 128  // −1...1
                hash >>= 8
                let o = (py * w + px) * 3
                let t = lerp(tissue)
                var r: Double, g: Double, b: Double
                if t <= tissueThreshold {
                    // Glass: near white, faintly warm, with sensor noise.
                    r = 242 + 2.5 * noise; g = 240 + 2.5 * noise; b = 243 + 2.5 * noise
                } else {
                    let isTumour = lerp(tumour) > tumourCut
                    let tex = lerp(texture)
                    var e: Double, hh: Double
                    if isTumour {
                        e = 0.15 * (0.8 + 0.4 * tex); hh = 0.11 * (0.8 + 0.4 * tex)
                    } else {
                        // Collagen fibres: noise stretched 10:1 along a direction that drifts slowly
                        // across the slide, so bundles run in wavy parallel streams.
                        let theta = 2 * Double.pi * tex
                        let ct = cos(theta), st = sin(theta)
                        let u = Double(x) * ct + Double(y) * st, v = -Double(x) * st + Double(y) * ct
                        let fibre = SyntheticSlide.valueNoise(u / 40, v / 3.5, SeedStream(seedTexture).derive(.syntheticFibre))
                        e = 0.24 * (0.45 + 0.8 * fibre); hh = 0.035
                    }
                    // Tissue thins out towards its edge; halos clear the background stain, then cells add theirs.
                    let edge = min(1, (t - tissueThreshold) / 0.03)
                    let k = py * w + px, clear = Double(marks.clearing[k])
                    e = e * edge * clear + Double(marks.eosin[k]); hh = hh * edge * clear + Double(marks.haematoxylin[k])
                    let odR = kH * hh * hv[0] + kE * e * ev[0], odG = kH * hh * hv[1] + kE * e * ev[1], odB = kH * hh * hv[2] + kE * e * ev[2]
                    r = 244 * pow(10, -odR) + 3 * noise; g = 242 * pow(10, -odG) + 3 * noise; b = 245 * pow(10, -odB) + 3 * noise
                }
                if pen != nil && inInk(Double(x), Double(y)) {
                    r = 30 + 0.1 * r; g = 120 + 0.1 * g; b = 100 + 0.1 * b
                }
                out[o] = UInt8(max(0, min(255, r.rounded())))
                out[o + 1] = UInt8(max(0, min(255, g.rounded())))
                out[o + 2] = UInt8(max(0, min(255, b.rounded())))
            }
        }
        return out
    }

    /// Renders the whole slide into a pyramidal TIFF, strips rendered in parallel column blocks.
    public func write(to url: URL, compression: PyramidTIFFWriter.Compression, tileSize: Int = 256) throws {
        try write(to: url, compression: compression, tileSize: tileSize, description: "nic synthetic H&E slide seed=\(spec.seed)") { x, y, width, height in
            self.render(x: x, y: y, width: width, height: height)
        }
    }

    /// The TIFF writer's loop for any renderer of RGB blocks (the nominal slide, or one through a site).
    func write(to url: URL, compression: PyramidTIFFWriter.Compression, tileSize: Int, description: String,
               render: @escaping @Sendable (_ x: Int, _ y: Int, _ width: Int, _ height: Int) -> [UInt8]) throws {
        let writer = try PyramidTIFFWriter(url: url, width: spec.width, height: spec.height, tileSize: tileSize, compression: compression,
                                           mpp: 0.5, description: description)
        let w = spec.width
        try writer.write { y, rows in
            let block = 512
            let blocks = (w + block - 1) / block
            var strip = [UInt8](repeating: 0, count: w * rows * 3)
            strip.withUnsafeMutableBufferPointer { out in
                let shared = DisjointAccess(out.baseAddress!)  // each block writes its own columns
                DispatchQueue.concurrentPerform(iterations: blocks) { k in
                    let base = shared.pointer
                    let bx = k * block, bw = min(block, w - bx)
                    let pixels = render(bx, y, bw, rows)
                    for r in 0..<rows {
                        for i in 0..<(bw * 3) { base[(r * w + bx) * 3 + i] = pixels[(r * bw) * 3 + i] }
                    }
                }
            }
            return strip
        }
    }
}
