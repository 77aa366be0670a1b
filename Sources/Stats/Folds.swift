import Foundation
import NICBasics

/// Patient-level cross-validation folds: every slide of a patient lands in the same fold, so no
/// patient is ever in training and validation at once.
public enum Folds {
    /// Fold index (0..<k) per patient. With `strata` (one label per patient, e.g. class or event),
    /// each stratum is spread evenly over the folds; within a stratum the order is shuffled by `seed`.
    public static func assign(patients: [String], k: Int, seed: UInt64, strata: [String: String] = [:]) -> [String: Int] {
        // invariant: k is a param checked `.atLeast(2)` at validate (patient_model, probe); LinearProbe.select guards k >= 2
        precondition(k >= 2, "folds: k must be at least 2")
        let unique = Array(Set(patients)).sorted()
        var rng = SplitMix64(seed: seed)
        var groups: [String: [String]] = [:]
        for patient in unique { groups[strata[patient] ?? "", default: []].append(patient) }
        var result: [String: Int] = [:]
        var offset = 0
        for key in groups.keys.sorted() {
            var members = groups[key]!
            members.shuffle(using: &rng)
            // Continue the round-robin across strata so small strata do not all start at fold 0.
            for (i, patient) in members.enumerated() { result[patient] = (offset + i) % k }
            offset = (offset + members.count) % k
        }
        return result
    }
}
