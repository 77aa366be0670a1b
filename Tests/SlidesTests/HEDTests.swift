import Foundation
import ImageTestSupport
import XCTest
@testable import Slides

final class HEDTests: XCTestCase {
    /// scikit-image's rgb2hed / hed2rgb on 2,048 real CMU pixels (scripts/hed_fixture.py).
    func testMatchesScikitImage() throws {
        let data = try Data(contentsOf: fixtureURL("hed_reference.bin"))
        let values: [Double] = data.withUnsafeBytes { raw in (0..<(data.count / 8)).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) } }
        XCTAssertEqual(values.count, 2048 * 12)
        var maxHED = 0.0, maxBack = 0.0, maxPerturbed = 0.0
        let alpha = (1.1, 0.9, 1.05), beta = (0.02, -0.03, 0.01)
        for p in 0..<2048 {
            let row = Array(values[(p * 12)..<(p * 12 + 12)])
            let (h, e, d) = HED.rgbToHED(row[0] / 255, row[1] / 255, row[2] / 255)
            maxHED = max(maxHED, abs(h - row[3]), abs(e - row[4]), abs(d - row[5]))
            let (r, g, b) = HED.hedToRGB(row[3], row[4], row[5])
            maxBack = max(maxBack, abs(r - row[6]), abs(g - row[7]), abs(b - row[8]))
            var pixel: [Float] = [Float(row[0] / 255), Float(row[1] / 255), Float(row[2] / 255)]
            HED.perturb(&pixel, alpha: alpha, beta: beta, clampNegative: true)
            maxPerturbed = max(maxPerturbed, abs(Double(pixel[0]) - row[9]), abs(Double(pixel[1]) - row[10]), abs(Double(pixel[2]) - row[11]))
        }
        XCTAssertLessThanOrEqual(maxHED, 1e-4)
        XCTAssertLessThanOrEqual(maxBack, 1e-4)
        XCTAssertLessThanOrEqual(maxPerturbed, 1e-4)
    }

    /// σ = 0 draws α = 1, β = 0: the patch must come back unchanged after rounding to 8 bits.
    func testSigmaZeroIsIdentity() throws {
        let slide = try Slide(url: try cmuSlideURL())
        let patch = try slide.readRegion(x: 1100, y: 1600, width: 128, height: 128, mpp: 0.5)
        let augmenter = Augmenter(recipe: AugmentationRecipe(name: "hed0", ops: [AugmentationOp(.hed, probability: 1, range: 0...0)]), seed: 7)
        assertSameImage(augmenter.apply(to: patch, epoch: 0, index: 0), patch)
        assertSameImage(augmenter.apply(to: patch, epoch: 3, index: 11), patch)
    }

    func testInverseMatrixIsInverse() {
        for i in 0..<3 {
            for j in 0..<3 {
                let v = (0..<3).reduce(0.0) { $0 + HED.rgbFromHED[i][$1] * HED.hedFromRGB[$1][j] }
                XCTAssertEqual(v, i == j ? 1 : 0, accuracy: 1e-12)
            }
        }
    }
}
