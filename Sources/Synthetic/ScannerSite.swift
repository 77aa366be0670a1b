import Dispatch
import Foundation
import NICBasics
import Slides

/// A second lab and scanner for a synthetic cohort (`nic synth --site NAME`): the same slides (biology,
/// cells, labels, annotations, oracle) seen through other stains and optics. The default cohort
/// renders without a site and stays byte-identical.
///
/// Each rendered pixel's optical density is split into the nominal haematoxylin and eosin (the
/// renderer's own vectors, `HED.rgbFromHED`; what is left over stays as it is), then re-composed with
/// the site's stain vectors and strengths and its section thickness (a factor on every stain), lit by
/// the site's illumination (brightness × per-channel white balance), blurred by its optics (a Gaussian
/// of `blur` px) and stored at its JPEG quality. A pixel's value depends only on its position, so a
/// slide renders the same in any strip order (the blur reads a margin around each block).
public struct ScannerSite: Sendable, Equatable {
    public var name: String
    /// Unit optical-density vectors (R, G, B) of the site's haematoxylin and eosin.
    public var haematoxylinVector: [Double]
    public var eosinVector: [Double]
    /// Stain strength factors (1 = the nominal site's) and section thickness (a factor on every stain).
    public var haematoxylin: Double
    public var eosin: Double
    public var thickness: Double
    /// Gaussian blur σ in level-0 pixels (0: none).
    public var blur: Double
    /// Illumination: overall brightness factor and per-channel white balance (R, G, B).
    public var brightness: Double
    public var whiteBalance: [Double]
    /// JPEG quality of the tiles (with jpeg compression).
    public var jpegQuality: Int

    /// The named sites; any other name draws a site from the name (see `init(name:)`).
    public static let presets: [String: ScannerSite] = [
        // Darker, bluer haematoxylin, thicker sections, a soft scanner, warm light, strong compression.
        "hospital-b": ScannerSite(name: "hospital-b", haematoxylinVector: [0.55, 0.76, 0.35], eosinVector: [0.10, 0.98, 0.16],
                                  haematoxylin: 1.25, eosin: 0.85, thickness: 1.2, blur: 0.9, brightness: 0.95,
                                  whiteBalance: [1.03, 0.99, 0.92], jpegQuality: 70),
        // Pale, eosin-heavy staining on thin sections, a blurrier scanner, cool light.
        "hospital-c": ScannerSite(name: "hospital-c", haematoxylinVector: [0.70, 0.66, 0.27], eosinVector: [0.04, 0.97, 0.24],
                                  haematoxylin: 0.8, eosin: 1.3, thickness: 0.85, blur: 1.3, brightness: 1.03,
                                  whiteBalance: [0.94, 1.0, 1.04], jpegQuality: 60),
    ]

    public init(name: String, haematoxylinVector: [Double], eosinVector: [Double], haematoxylin: Double, eosin: Double, thickness: Double,
                blur: Double, brightness: Double, whiteBalance: [Double], jpegQuality: Int) {
        func unit(_ v: [Double]) -> [Double] {
            let n = (v.reduce(0) { $0 + $1 * $1 }).squareRoot()
            return v.map { $0 / n }
        }
        self.name = name
        self.haematoxylinVector = unit(haematoxylinVector)
        self.eosinVector = unit(eosinVector)
        self.haematoxylin = haematoxylin
        self.eosin = eosin
        self.thickness = thickness
        self.blur = blur
        self.brightness = brightness
        self.whiteBalance = whiteBalance
        self.jpegQuality = jpegQuality
    }

    /// A preset, or a site drawn from the name (the same name, the same site): stain vectors turned by
    /// up to ~0.15 per component, strengths 0.75–1.3, thickness 0.8–1.25, blur 0.4–1.5 px, brightness
    /// 0.92–1.05, white balance ±6 % per channel, JPEG quality 55–85.
    public init(name: String) {
        if let preset = Self.presets[name] { self = preset; return }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        var rng = SplitMix64(seed: hash)
        let h = HED.rgbFromHED[0].map { $0 + rng.uniform(-0.15, 0.15) }, e = HED.rgbFromHED[1].map { max(0.01, $0 + rng.uniform(-0.12, 0.12)) }
        self.init(name: name, haematoxylinVector: h.map { max(0.05, $0) }, eosinVector: e,
                  haematoxylin: rng.uniform(0.75, 1.3), eosin: rng.uniform(0.75, 1.3), thickness: rng.uniform(0.8, 1.25),
                  blur: rng.uniform(0.4, 1.5), brightness: rng.uniform(0.92, 1.05),
                  whiteBalance: (0..<3).map { _ in rng.uniform(0.94, 1.06) }, jpegQuality: Int(rng.uniform(55, 85).rounded()))
    }

    /// The renderer's illumination (glass is lit at these RGB values before stain absorbs).
    static let illumination: [Double] = [244, 242, 245]

    /// Level-0 pixels of a rectangle as the site scans them.
    public func render(_ slide: SyntheticSlide, x x0: Int, y y0: Int, width w: Int, height h: Int) -> [UInt8] {
        let margin = blur > 0 ? Int((3 * blur).rounded(.up)) : 0
        let W = w + 2 * margin, H = h + 2 * margin
        let nominal = slide.render(x: x0 - margin, y: y0 - margin, width: W, height: H)
        // Optical density per channel against the nominal light, split into nominal H, E and a residual.
        let m = HED.rgbFromHED
        let inverse = HED.hedFromRGB
        let light = (0..<3).map { Self.illumination[$0] * brightness * whiteBalance[$0] }
        var image = [Double](repeating: 0, count: W * H * 3)
        for i in 0..<(W * H) {
            var od = [0.0, 0.0, 0.0]
            for c in 0..<3 { od[c] = -log10(max(1, Double(nominal[i * 3 + c])) / Self.illumination[c]) }
            // Concentrations in the nominal basis (H, E, D): od = conc · m.
            let conc = (0..<3).map { k in od[0] * inverse[0][k] + od[1] * inverse[1][k] + od[2] * inverse[2][k] }
            for c in 0..<3 {
                let residual = conc[2] * m[2][c]
                let stained = haematoxylin * conc[0] * haematoxylinVector[c] + eosin * conc[1] * eosinVector[c]
                image[i * 3 + c] = light[c] * pow(10, -(thickness * (stained + residual)))
            }
        }
        if blur > 0 { image = Self.gaussian(image, width: W, height: H, sigma: blur) }
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                for c in 0..<3 {
                    out[(y * w + x) * 3 + c] = UInt8(max(0, min(255, image[((y + margin) * W + x + margin) * 3 + c].rounded())))
                }
            }
        }
        return out
    }

    /// Separable Gaussian blur of an interleaved RGB image (edges clamped).
    static func gaussian(_ image: [Double], width: Int, height: Int, sigma: Double) -> [Double] {
        let radius = Int((3 * sigma).rounded(.up))
        var kernel = (-radius...radius).map { exp(-Double($0 * $0) / (2 * sigma * sigma)) }
        let total = kernel.reduce(0, +)
        kernel = kernel.map { $0 / total }
        var pass = [Double](repeating: 0, count: image.count), out = pass
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    var s = 0.0
                    for k in -radius...radius { s += kernel[k + radius] * image[(y * width + min(max(x + k, 0), width - 1)) * 3 + c] }
                    pass[(y * width + x) * 3 + c] = s
                }
            }
        }
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    var s = 0.0
                    for k in -radius...radius { s += kernel[k + radius] * pass[(min(max(y + k, 0), height - 1) * width + x) * 3 + c] }
                    out[(y * width + x) * 3 + c] = s
                }
            }
        }
        return out
    }

    /// A line for the cohort's README.
    public var summary: String {
        func v(_ x: [Double]) -> String { "(" + x.map { String(format: "%.2f", $0) }.joined(separator: ", ") + ")" }
        return String(format: "site '%@': haematoxylin vector %@ × %.2f, eosin vector %@ × %.2f, thickness × %.2f, blur σ %.2f px, brightness × %.2f, white balance %@, JPEG quality %d",
                      name, v(haematoxylinVector), haematoxylin, v(eosinVector), eosin, thickness, blur, brightness, v(whiteBalance), jpegQuality)
    }
}

extension SyntheticSlide {
    /// Renders the whole slide through a site into a pyramidal TIFF (as `write(to:compression:)`).
    public func write(to url: URL, compression: PyramidTIFFWriter.Compression, site: ScannerSite, tileSize: Int = 256) throws {
        try write(to: url, compression: compression, tileSize: tileSize, description: "nic synthetic H&E slide seed=\(spec.seed) site=\(site.name)") { x, y, width, height in
            site.render(self, x: x, y: y, width: width, height: height)
        }
    }
}

extension SyntheticCohort {
    /// The cohort README's section on its site (empty for the nominal one).
    var siteReadme: String {
        guard let site = options.site else { return "" }
        return """
        ## Site

        Scanned at a second lab: \(site.summary). The biology, cells, labels, patch annotations and oracles are
        those of the same seed without a site; only the pixels differ. Each pixel's optical density is split into the
        nominal haematoxylin and eosin (HED.rgbFromHED), re-composed with the site's vectors, strengths and
        thickness, lit by its brightness and white balance, blurred by its optics and stored at its JPEG quality.

        """
    }
}
