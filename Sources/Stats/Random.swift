import NICBasics

/// The name NICNodes knows Stats' generator (folds, bootstrap, crops) by: SplitMix64 from NICBasics.
public typealias SeededGenerator = SplitMix64
