import Foundation
@testable import Slides
@testable import Synthetic
import XCTest

/// A second site scans the same slide: by numbers, the mean optical density per stain (scikit-image's
/// H&E deconvolution of the tissue pixels) moves as the site's stains, thickness and light say.
final class ScannerSiteTests: XCTestCase {
    let slide = SyntheticSlide(SyntheticSlideSpec(width: 1024, height: 1024, seed: 42, tumourFraction: 0.5, mitosisRate: 0.03))

    /// Mean haematoxylin and eosin of the pixels that are tissue in the nominal render.
    func meanStains(_ pixels: [UInt8], tissue: [Bool]) -> (h: Double, e: Double) {
        var h = 0.0, e = 0.0, n = 0.0
        for i in tissue.indices where tissue[i] {
            let s = HED.rgbToHED(Double(pixels[i * 3]) / 255, Double(pixels[i * 3 + 1]) / 255, Double(pixels[i * 3 + 2]) / 255)
            h += s.0; e += s.1; n += 1
        }
        return (h / n, e / n)
    }

    func testSitesMoveTheMeanOpticalDensityPerStain() {
        let (x, y, w, h) = (384, 384, 256, 256)
        let nominal = slide.render(x: x, y: y, width: w, height: h)
        let tissue = (0..<(w * h)).map { i in (0..<3).map { Int(nominal[i * 3 + $0]) }.reduce(0, +) < 3 * 225 }
        XCTAssertGreaterThan(tissue.filter { $0 }.count, w * h / 2, "the region must be mostly tissue")
        let base = meanStains(nominal, tissue: tissue)

        // A site with the nominal stains, light and optics renders the nominal slide (up to rounding).
        let same = ScannerSite(name: "same", haematoxylinVector: HED.rgbFromHED[0], eosinVector: HED.rgbFromHED[1], haematoxylin: 1, eosin: 1,
                               thickness: 1, blur: 0, brightness: 1, whiteBalance: [1, 1, 1], jpegQuality: 90)
        let identical = same.render(slide, x: x, y: y, width: w, height: h)
        XCTAssertLessThanOrEqual(zip(identical, nominal).map { abs(Int($0) - Int($1)) }.max() ?? 0, 2)

        // Twice as thick: both stains' mean density doubles (within the clipping of the darkest pixels).
        var thick = same
        thick.thickness = 2
        let doubled = meanStains(thick.render(slide, x: x, y: y, width: w, height: h), tissue: tissue)
        XCTAssertEqual(doubled.h / base.h, 2, accuracy: 0.15)
        XCTAssertEqual(doubled.e / base.e, 2, accuracy: 0.15)

        // Stronger haematoxylin only: H up by its factor, E nearly unchanged.
        var strongH = same
        strongH.haematoxylin = 1.5
        let moreH = meanStains(strongH.render(slide, x: x, y: y, width: w, height: h), tissue: tissue)
        XCTAssertEqual(moreH.h / base.h, 1.5, accuracy: 0.1)
        XCTAssertEqual(moreH.e / base.e, 1, accuracy: 0.1)

        // The named sites without their blur (which averages light, not density, and so lowers the mean
        // density of dark nuclei), deconvolved with their own stain vectors against their own light: mean
        // H and E follow strength × thickness (hospital-b: H 1.25 × 1.2, E 0.85 × 1.2; hospital-c: H
        // 0.8 × 0.85, E 1.3 × 0.85), up to rounding.
        let nominalOwn = ownStains(nominal, site: same, tissue: tissue)
        for name in ["hospital-b", "hospital-c"] {
            var site = ScannerSite(name: name)
            site.blur = 0
            let measured = ownStains(site.render(slide, x: x, y: y, width: w, height: h), site: site, tissue: tissue)
            XCTAssertEqual(measured.h / nominalOwn.h, site.haematoxylin * site.thickness, accuracy: 0.08, name)
            XCTAssertEqual(measured.e / nominalOwn.e, site.eosin * site.thickness, accuracy: 0.08, name)
        }
    }

    /// Mean H and E concentrations with the site's vectors (and the nominal residual), OD = −log10(I / light).
    func ownStains(_ pixels: [UInt8], site: ScannerSite, tissue: [Bool]) -> (h: Double, e: Double) {
        let m = [site.haematoxylinVector, site.eosinVector, HED.rgbFromHED[2]]
        let inverse = HED.invert3(m)
        let light = (0..<3).map { ScannerSite.illumination[$0] * site.brightness * site.whiteBalance[$0] }
        var h = 0.0, e = 0.0, n = 0.0
        for i in tissue.indices where tissue[i] {
            let od = (0..<3).map { -log10(max(1, Double(pixels[i * 3 + $0])) / light[$0]) }
            h += od[0] * inverse[0][0] + od[1] * inverse[1][0] + od[2] * inverse[2][0]
            e += od[0] * inverse[0][1] + od[1] * inverse[1][1] + od[2] * inverse[2][1]
            n += 1
        }
        return (h / n, e / n)
    }

    func testASiteRendersTheSameWhateverTheBlock() {
        // The blur reads a margin, so a block's pixels equal the same pixels of a larger render.
        let site = ScannerSite(name: "hospital-c")
        let large = site.render(slide, x: 500, y: 500, width: 64, height: 64)
        let small = site.render(slide, x: 532, y: 516, width: 16, height: 8)
        for r in 0..<8 {
            for i in 0..<(16 * 3) { XCTAssertEqual(small[r * 16 * 3 + i], large[((r + 16) * 64 + 32) * 3 + i]) }
        }
    }

    func testANameGivesTheSameSiteAndPresetsAreKept() {
        XCTAssertEqual(ScannerSite(name: "lab-7"), ScannerSite(name: "lab-7"))
        XCTAssertNotEqual(ScannerSite(name: "lab-7"), ScannerSite(name: "lab-8"))
        XCTAssertEqual(ScannerSite(name: "hospital-b").jpegQuality, 70)
        let drawn = ScannerSite(name: "lab-7")
        XCTAssertTrue((0.75...1.3).contains(drawn.haematoxylin) && (0.4...1.5).contains(drawn.blur) && (55...85).contains(drawn.jpegQuality))
    }
}
