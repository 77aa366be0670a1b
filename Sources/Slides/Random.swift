import Foundation

/// SplitMix64: small, fast, and fully determined by its 64-bit state, so that (seed, epoch, patch index)
/// always yields the same draws on every machine — Swift's SystemRandomNumberGenerator cannot be seeded.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// A generator for one item of a seeded stream: independent-looking streams for nearby keys.
    public init(seed: UInt64, _ keys: Int...) {
        var s = SeededRandom.mix(seed ^ 0x9E37_79B9_7F4A_7C15)
        for k in keys { s = SeededRandom.mix(s ^ UInt64(bitPattern: Int64(k)) &+ 0x632B_E59B_D9B4_E019) }
        state = s
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SeededRandom.mix(state)
    }

    @inlinable public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
    public mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * unit() }
    /// Standard normal (Box–Muller).
    public mutating func normal() -> Double {
        let u = max(unit(), 1e-300), v = unit()
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
    public mutating func int(below n: Int) -> Int { Int(next() % UInt64(max(1, n))) }
    public mutating func bernoulli(_ p: Double) -> Bool { unit() < p }
}

/// Hash of integer coordinates to a uniform value in [0, 1): lets procedural textures and synthetic
/// nuclei be evaluated for any region in any order with identical results.
func hashUnit(_ seed: UInt64, _ a: Int, _ b: Int, _ c: Int = 0) -> Double {
    var h = SeededRandom.mix(seed &+ UInt64(bitPattern: Int64(a)) &* 0x9E37_79B9_7F4A_7C15)
    h = SeededRandom.mix(h ^ (UInt64(bitPattern: Int64(b)) &* 0xC2B2_AE3D_27D4_EB4F))
    h = SeededRandom.mix(h ^ (UInt64(bitPattern: Int64(c)) &* 0x1656_67B1_9E37_79F9))
    return Double(h >> 11) * 0x1.0p-53
}
