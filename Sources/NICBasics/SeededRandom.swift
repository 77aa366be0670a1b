import Foundation

// All of nic's seeded random numbers. Swift's SystemRandomNumberGenerator cannot be seeded, and
// every result (synthetic cohorts, augmentations, weight initialisation, shuffles, folds, bootstrap)
// must be the same for the same seed on every machine, so the algorithms are written out here, once.
// Both streams are pinned by NICBasicsTests: changing a single draw changes every result downstream.

/// SplitMix64 (Steele, Lea & Flood 2014): fully determined by its 64-bit state, and cheap enough to
/// create one per item (per patch, per slide, per task) from a key.
public struct SplitMix64: SeededRandomGenerator, Sendable {
    @usableFromInline var raw: UInt64
    public var state: UInt64 { raw }

    @inlinable public init(seed: UInt64) { raw = seed }

    /// A generator for one item of a seeded stream, e.g. (seed, epoch, patch): nearby keys give
    /// independent-looking streams, and an item's draws do not depend on how many came before it.
    @inlinable public init(seed: UInt64, _ keys: Int...) {
        var s = SplitMix64.mix(seed ^ 0x9E37_79B9_7F4A_7C15)
        for k in keys { s = SplitMix64.mix(s ^ UInt64(bitPattern: Int64(k)) &+ 0x632B_E59B_D9B4_E019) }
        raw = s
    }

    @inlinable public mutating func next() -> UInt64 {
        raw &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(raw)
    }

    /// One step of the stream whose state is `state`, for callers that keep a bare UInt64.
    @inlinable public static func next(_ state: inout UInt64) -> UInt64 {
        var generator = SplitMix64(seed: state)
        defer { state = generator.state }
        return generator.next()
    }

    /// The SplitMix64 finaliser: a bijective 64-bit mix, also usable as a hash.
    @inlinable public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Hash of integer coordinates to a uniform value in [0, 1): lets procedural textures and synthetic
/// nuclei be evaluated for any region in any order with identical results.
@inlinable public func hashUnit(_ seed: UInt64, _ a: Int, _ b: Int, _ c: Int = 0) -> Double {
    var h = SplitMix64.mix(seed &+ UInt64(bitPattern: Int64(a)) &* 0x9E37_79B9_7F4A_7C15)
    h = SplitMix64.mix(h ^ (UInt64(bitPattern: Int64(b)) &* 0xC2B2_AE3D_27D4_EB4F))
    h = SplitMix64.mix(h ^ (UInt64(bitPattern: Int64(c)) &* 0x1656_67B1_9E37_79F9))
    return Double(h >> 11) * 0x1.0p-53
}

/// xoshiro256** (Blackman & Vigna 2018) seeded by SplitMix64, as its authors recommend: a 256-bit
/// state for the long streams of training (weight initialisation, shuffles, noise).
public struct Xoshiro256StarStar: SeededRandomGenerator, Sendable {
    @usableFromInline var s: (UInt64, UInt64, UInt64, UInt64)

    @inlinable public init(seed: UInt64) {
        var seeder = SplitMix64(seed: seed)
        s = (seeder.next(), seeder.next(), seeder.next(), seeder.next())
    }

    @inlinable public mutating func next() -> UInt64 {
        let result = Self.rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = Self.rotl(s.3, 45)
        return result
    }

    @inlinable @inline(__always) static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A generator for a sub-stream (one per layer), so adding a layer does not shift the others.
    /// Leaves this generator where it was.
    @inlinable public func derived(_ salt: UInt64) -> Xoshiro256StarStar {
        var copy = self
        return Xoshiro256StarStar(seed: copy.next() ^ (salt &* 0x9E37_79B9_7F4A_7C15))
    }
}

/// The draws nic makes from a seeded generator, the same for both algorithms. Each consumes a fixed
/// number of `next()` values, so a stream's position never depends on the values drawn.
public protocol SeededRandomGenerator: RandomNumberGenerator {}

extension SeededRandomGenerator {
    /// Uniform in [0, 1) with 53 random bits: every value exact in Double.
    @inlinable public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    @inlinable public mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * unit() }

    /// Standard normal (Box–Muller, one of the pair); the first uniform is kept above 0 for the log.
    @inlinable public mutating func normal() -> Double {
        let u = max(unit(), 1e-300), v = unit()
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }

    /// In 0..<n (n < 1 counts as 1); the modulo bias is below 2⁻³² for any n a cohort or batch has.
    @inlinable public mutating func int(below n: Int) -> Int { Int(next() % UInt64(max(1, n))) }

    @inlinable public mutating func bernoulli(_ p: Double) -> Bool { unit() < p }

    /// Uniform in [0, 1) with 24 random bits: exact in Float.
    @inlinable public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Standard normal in Float, drawn in Double (the same two draws as `normal()`).
    @inlinable public mutating func nextNormal() -> Float { Float(normal()) }

    /// A permutation of 0..<n (Fisher–Yates), for seeded shuffling of training samples.
    @inlinable public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                p.swapAt(i, Int(next() % UInt64(i + 1)))
            }
        }
        return p
    }
}
