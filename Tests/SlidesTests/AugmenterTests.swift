import NICBasics
import Foundation
import ImageTestSupport
import XCTest
@testable import Slides

final class AugmenterTests: XCTestCase {
    let heavy = AugmentationRecipe(name: "heavy", ops: [
        AugmentationOp(.dihedral), AugmentationOp(.hed, range: 0...0.2), AugmentationOp(.brightness, probability: 0.8, range: -0.15...0.15),
        AugmentationOp(.contrast, probability: 0.8, range: 0.7...1.3), AugmentationOp(.hue, probability: 0.5, range: -0.04...0.04),
        AugmentationOp(.saturation, probability: 0.5, range: 0.7...1.3), AugmentationOp(.noise, probability: 0.3, range: 0...0.03),
        AugmentationOp(.blur, probability: 0.3, range: 0.3...1.2), AugmentationOp(.zoom, probability: 0.3, range: 0.9...1.15),
        AugmentationOp(.elastic, probability: 0.2, range: 1...4, sigma: 8),
    ])

    func testDeterministicPerSeedEpochAndIndexAndFreshAcrossEpochs() throws {
        let patch = patternImage(width: 64, height: 64)
        let a = Augmenter(recipe: heavy, seed: 42)
        let first = a.apply(to: patch, epoch: 0, index: 5)
        assertSameImage(first, Augmenter(recipe: heavy, seed: 42).apply(to: patch, epoch: 0, index: 5))
        // Order and threads do not matter: parallel calls reproduce the serial results.
        let serial = (0..<16).map { a.apply(to: patch, epoch: $0 / 4, index: $0 % 4) }
        let parallel = try concurrentMap(16, workers: 4) { i in a.apply(to: patch, epoch: (15 - i) / 4, index: (15 - i) % 4) }
        for i in 0..<16 { assertSameImage(parallel[15 - i], serial[i]) }
        // Every (epoch, index) gets its own draw.
        let distinct = Set(serial.map(\.pixels))
        XCTAssertEqual(distinct.count, 16)
        XCTAssertNotEqual(Augmenter(recipe: heavy, seed: 43).apply(to: patch, epoch: 0, index: 5).pixels, first.pixels)
    }

    func testZeroProbabilityAndNeutralMagnitudesAreIdentity() {
        let patch = patternImage(width: 48, height: 40)
        let off = AugmentationRecipe(name: "off", ops: heavy.ops.map { var op = $0; op.probability = 0; return op })
        assertSameImage(Augmenter(recipe: off, seed: 1).apply(to: patch, epoch: 2, index: 3), patch)
        let neutral = AugmentationRecipe(name: "neutral", ops: [
            AugmentationOp(.hed, range: 0...0), AugmentationOp(.brightness, range: 0...0), AugmentationOp(.contrast, range: 1...1),
            AugmentationOp(.hue, range: 0...0), AugmentationOp(.saturation, range: 1...1), AugmentationOp(.noise, range: 0...0),
            AugmentationOp(.blur, range: 0...0), AugmentationOp(.zoom, range: 1...1), AugmentationOp(.elastic, range: 0...0),
        ])
        assertSameImage(Augmenter(recipe: neutral, seed: 1).apply(to: patch, epoch: 0, index: 0), patch)
    }

    /// The 8 dihedral transforms against index arithmetic (np.rot90 counter-clockwise, then fliplr).
    func testDihedralMatchesRot90AndFlip() {
        let w = 5, h = 3
        let image = FloatImage(width: w, height: h, values: (0..<(w * h * 3)).map { Float($0) })
        func at(_ img: FloatImage, _ x: Int, _ y: Int) -> Float { img.values[(y * img.width + x) * 3] }
        var seen = Set<[Float]>()
        for k in 0..<8 {
            let out = image.dihedral(k)
            seen.insert(out.values)
            for y in 0..<out.height {
                for x in 0..<out.width {
                    let xf = k >= 4 ? out.width - 1 - x : x
                    // np.rot90 k times: out[i, j] = in[j, W-1-i] once (rows i, cols j); applied turns times.
                    var (sx, sy) = (xf, y)
                    var cw = out.width, ch = out.height
                    for _ in 0..<(k % 4) {
                        // Undo one counter-clockwise turn: a point (x, y) of the turned image came from (cw'-1-y... ) in the previous one.
                        let px = ch - 1 - sy, py = sx
                        (sx, sy) = (px, py)
                        (cw, ch) = (ch, cw)
                    }
                    XCTAssertEqual(at(out, x, y), at(image, sx, sy), "k=\(k) at (\(x), \(y))")
                }
            }
        }
        XCTAssertEqual(seen.count, 8)
    }

    func testEveryOpKeepsShapeAndRange() {
        let patch = patternImage(width: 32, height: 32)
        for op in heavy.ops {
            var always = op
            always.probability = 1
            let out = Augmenter(recipe: AugmentationRecipe(name: op.kind.rawValue, ops: [always]), seed: 3).apply(to: patch, epoch: 1, index: 1)
            XCTAssertEqual(out.width, 32)
            XCTAssertEqual(out.height, 32)
            if op.kind != .dihedral { XCTAssertNotEqual(out.pixels, patch.pixels, "\(op.kind) changed nothing") }
        }
        XCTAssertEqual(AugmentationOp(.blur, range: -1...1).problems.count, 1)
        XCTAssertEqual(AugmentationOp(.zoom, range: 0...1).problems.count, 1)
        XCTAssertEqual(AugmentationOp(.hed, probability: 2, range: 0...0.1).problems.count, 1)
    }

    /// The blur that smooths elastic fields and blurs patches looks mirrored neighbours up once per
    /// axis; it must give the formula's numbers to the bit, at edges too (fields narrower than the kernel).
    func testBlurEqualsTheReferenceToTheBit() {
        var random = SplitMix64(seed: 4)
        for (width, height, channels, sigma) in [(128, 128, 1, 8.0), (17, 9, 3, 1.2), (5, 40, 1, 8.0), (1, 7, 3, 0.3)] {
            let values = (0..<(width * height * channels)).map { _ in Float(random.uniform(-1, 1)) }
            var fast = values, reference = values
            FloatImage.blur(&fast, width: width, height: height, channels: channels, sigma: sigma)
            FloatImage.blurReference(&reference, width: width, height: height, channels: channels, sigma: sigma)
            XCTAssertEqual(fast.map(\.bitPattern), reference.map(\.bitPattern), "\(width)×\(height)×\(channels), σ \(sigma)")
        }
    }
}
