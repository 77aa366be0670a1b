import NICBasics

/// The name NICNodes and the CLI know SplitMix64 by; new code uses `SplitMix64` from NICBasics.
public typealias SeededRandom = SplitMix64
