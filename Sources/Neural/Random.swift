import NICBasics

/// Neural's generator (weight initialisation, dropout masks, shuffles): xoshiro256** from NICBasics,
/// under the name the layers and NICNodes use.
public typealias SeededGenerator = Xoshiro256StarStar

/// For Neural's own seeded data (BLAS speed probes), stepping a bare UInt64 state.
typealias SplitMix64 = NICBasics.SplitMix64
