import NICBasics
import XCTest

/// Each named seed stream is the hand offset its call site used before it had a name: trained
/// weights, folds, synthetic slides and every cache key downstream depend on these numbers.
final class NamedSeedsTests: XCTestCase {
    static let seeds: [UInt64] = [0, 1, 3, 42, 0x5EED, 1_000_003, .max, .max - 16, 0x9E37_79B9_7F4A_7C15]

    func testEveryNameDerivesTheOldExpression() {
        let table: [(SeedName, (UInt64) -> UInt64)] = [
            (.supervisedValidation, { $0 ^ 0x5EED }),
            (.vaeDecoder, { $0 &+ 17 }),
            (.vaeSample, { $0 &+ 29 }),
            (.vaeValidation, { $0 ^ 0x5EED }),
            (.contrastiveHead, { $0 &+ 31 }),
            (.contrastiveValidation, { $0 ^ 0xC0DE }),
            (.contrastiveValidationPairs, { $0 &+ 0xFACE }),
            (.biganGenerator, { $0 &+ 41 }),
            (.biganDiscriminator, { $0 &+ 43 }),
            (.biganNoise, { $0 &+ 47 }),
            (.patientModelHead, { $0 &+ 1 }),
            (.patientModelSampling, { $0 &+ 2 }),
            (.patientModelPrediction, { $0 &+ 3 }),
            (.patientModelHeldOut, { $0 &+ 4 }),
            (.bagHead, { $0 &+ 1 }),
            (.bagPooling, { $0 &+ 11 }),
            (.bagAfterPooling, { $0 &+ 13 }),
            (.bagPoolingDropout, { $0 &+ 1 }),
            (.syntheticLymphocytes, { SplitMix64.mix($0 ^ 0x1E0C_7E5B_A11D_0001) }),
            (.syntheticGrain, { $0 &+ 11 }),
            (.syntheticFibre, { $0 &+ 7 }),
            (.syntheticAnnotations, { $0 ^ 0xA11C_E5ED }),
            (.syntheticAnnotationMarks, { $0 ^ 0x5BA2_5E00_0000_0027 }),
        ]
        for (name, old) in table {
            for seed in Self.seeds { XCTAssertEqual(SeedStream(seed).derive(name), old(seed), "\(name) at \(seed)") }
        }
    }

    func testEveryIndexedNameDerivesTheOldExpression() {
        let table: [(IndexedSeedName, (UInt64, Int) -> UInt64)] = [
            (.epochShuffle, { seed, epoch in seed &+ UInt64(epoch) &* 0x9E37_79B9 }),
            (.contrastivePairs, { seed, epoch in seed &+ UInt64(epoch) &* 0x9E37_79B9 }),
            (.taskHead, { seed, index in seed &+ UInt64(index + 1) &* 7919 }),
            (.fold, { seed, fold in seed &+ UInt64(fold + 1) &* 1_000_003 }),
            (.metricBootstrap, { seed, m in seed &+ UInt64(m) }),
        ]
        for (name, old) in table {
            for seed in Self.seeds {
                for index in [0, 1, 2, 7, 99, 1000] { XCTAssertEqual(SeedStream(seed).derive(name, index), old(seed, index), "\(name) at \(seed), \(index)") }
            }
        }
    }

    /// A few numbers written out, so that the table above cannot drift together with the names.
    func testPinnedNumbers() {
        XCTAssertEqual(SeedStream(3).derive(.vaeDecoder), 20)
        XCTAssertEqual(SeedStream(3).derive(.supervisedValidation), 0x5EEE)
        XCTAssertEqual(SeedStream(4).derive(.fold, 0), 1_000_007)
        XCTAssertEqual(SeedStream(1).derive(.epochShuffle, 2), 1 + 2 * 0x9E37_79B9)
        XCTAssertEqual(SeedStream(0).derive(.syntheticLymphocytes), SplitMix64.mix(0x1E0C_7E5B_A11D_0001))
    }
}
