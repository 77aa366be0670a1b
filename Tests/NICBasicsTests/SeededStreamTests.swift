import NICBasics
import XCTest

/// Every seeded result of nic (synthetic cohorts, augmentations, weight initialisation, shuffles,
/// folds, bootstrap) hangs on these streams: a changed stream changes every result. The values were
/// taken from the three generators nic had before NICBasics (SplitMix64 in Stats and in Slides,
/// xoshiro256** in Neural); they must never move.
final class SeededStreamTests: XCTestCase {
    static let pinned: [String: [UInt64]] = [
        "hashUnit": [0x3fe1133df0fc18e8, 0x3fe00fcc2d074101, 0x3fe999b6a42bf61d, 0x3fc062a2f0682458],
        "keyed 11 [-1]": [0x40ba97e68df12b05, 0x4a68617dd4821820, 0xca81c95cdb5d7970],
        "keyed 3 [0]": [0x5c7ec680dc490cd2, 0xb626e27c7552f27a, 0xc0ffc9a8241d165b],
        "keyed 3 [1, 2]": [0xb17b4c136930ebce, 0xaa32151860fa01d4, 0x53edf1134a1088a6],
        "keyed 7 [5, 0, 9]": [0x367a25479bf79c56, 0xbf00ae2e5baac00f, 0xbcc7c6ef71719a92],
        "neural helpers": [0x000000003e93aaa2, 0x000000003f1a2211, 0x000000003eceb1a6, 0x000000003e7d4218, 0x0000000000000000, 0x0000000000000004, 0x0000000000000006, 0x0000000000000002, 0x0000000000000003, 0x0000000000000007, 0x0000000000000009, 0x0000000000000008, 0x0000000000000001, 0x0000000000000005, 0xaef0a3f21eb55edf, 0xe04b9af256261530, 0xdf31c0aaec9d4bb0],
        "slides helpers": [0x3fd8c0cec328e270, 0x3fe812e629b272e6, 0x3ff62b9459d21a73, 0xbff566ea97fa98a2, 0x3fff4e9ac5d53644, 0x0000000000000001, 0x0000000000000370, 0x0000000000000000, 0x0000000000000000, 0x0000000000000001, 0x6a99b4b1f77dd101],
        "splitmix 0": [0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f, 0xf88bb8a8724c81ec],
        "splitmix 1": [0x910a2dec89025cc1, 0xbeeb8da1658eec67, 0xf893a2eefb32555e, 0x71c18690ee42c90b],
        "splitmix 3": [0x1d0b14e4db018fed, 0xb3466f8a7b81a989, 0x9cebe8a6d050dd01, 0x12a764fb66abc9cf],
        "splitmix 42": [0xbdd732262feb6e95, 0x28efe333b266f103, 0x47526757130f9f52, 0x581ce1ff0e4ae394],
        "xoshiro 0": [0x99ec5f36cb75f2b4, 0xbf6e1f784956452a, 0x1a5f849d4933e6e0, 0x6aa594f1262d2d2c],
        "xoshiro 1": [0xb3f2af6d0fc710c5, 0x853b559647364cea, 0x92f89756082a4514, 0x642e1c7bc266a3a7],
        "xoshiro 3": [0xb0cdabdae5668cc0, 0xa3fd1dea5e1864ee, 0x37e00afb3229fd51, 0x88b1b58b236f3bea],
        "xoshiro 42": [0x15780b2e0c2ec716, 0x6104d9866d113a7e, 0xae17533239e499a1, 0xecb8ad4703b360a1],
    ]

    func streams() -> [String: [UInt64]] {
        var streams: [String: [UInt64]] = [:]
        for seed: UInt64 in [0, 1, 3, 42] {
            var splitmix = SplitMix64(seed: seed)
            streams["splitmix \(seed)"] = (0..<4).map { _ in splitmix.next() }
            var xoshiro = Xoshiro256StarStar(seed: seed)
            streams["xoshiro \(seed)"] = (0..<4).map { _ in xoshiro.next() }
        }
        for (seed, keys) in [(3, [0]), (3, [1, 2]), (11, [-1]), (7, [5, 0, 9])] as [(UInt64, [Int])] {
            var keyed: SplitMix64
            switch keys.count {
            case 1: keyed = SplitMix64(seed: seed, keys[0])
            case 2: keyed = SplitMix64(seed: seed, keys[0], keys[1])
            default: keyed = SplitMix64(seed: seed, keys[0], keys[1], keys[2])
            }
            streams["keyed \(seed) \(keys)"] = (0..<3).map { _ in keyed.next() }
        }

        var slides = SplitMix64(seed: 5)
        streams["slides helpers"] = [
            slides.unit().bitPattern, slides.unit().bitPattern, slides.normal().bitPattern, slides.normal().bitPattern,
            slides.uniform(-1, 2).bitPattern, UInt64(slides.int(below: 7)), UInt64(slides.int(below: 1000)),
            slides.bernoulli(0.3) ? 1 : 0, slides.bernoulli(0.3) ? 1 : 0, slides.bernoulli(0.9) ? 1 : 0, slides.state,
        ]
        streams["hashUnit"] = [(9, 0, 0, 0), (9, 1, 2, 3), (9, -4, 17, 0), (123, 1000, -1000, 2)].map { seed, a, b, c in
            hashUnit(UInt64(seed), a, b, c).bitPattern
        }

        var neural = Xoshiro256StarStar(seed: 5)
        let derived = neural.derived(3)
        var child = derived
        streams["neural helpers"] = [
            UInt64(neural.nextUnitFloat().bitPattern), UInt64(neural.nextUnitFloat().bitPattern),
            UInt64(neural.nextNormal().bitPattern), UInt64(neural.nextNormal().bitPattern),
        ] + neural.permutation(10).map { UInt64($0) } + [child.next(), child.next(), neural.next()]
        return streams
    }

    func testStreamsArePinned() {
        let streams = streams()
        let listing = streams.sorted { $0.key < $1.key }
            .map { "        \"\($0.key)\": [\($0.value.map { String(format: "0x%016llx", $0) }.joined(separator: ", "))]," }
            .joined(separator: "\n")
        XCTAssertEqual(streams, Self.pinned, "seeded streams changed; now:\n\(listing)")
    }
}

extension SeededStreamTests {
    /// The bare-state step (Neural's BLAS probe) walks the same stream as the generator.
    func testBareStateStepIsTheStream() {
        var state: UInt64 = 42
        var generator = SplitMix64(seed: 42)
        for _ in 0..<5 { XCTAssertEqual(SplitMix64.next(&state), generator.next()) }
        XCTAssertEqual(state, generator.state)
    }
}
