import Foundation

/// What nuclei and mitotic figures of a synthetic cohort look like, and how dense figures and look-alikes
/// are. `standard` is the look `nic synth` always had (its values are the former constants, so a default
/// cohort is byte-identical); the other presets exist so that choices made on one look are judged on
/// another, as real cohorts from other scanners, labs and tumours differ.
///
/// Every field scales or replaces one constant of the cell model (`SyntheticSlide+Cells.swift`):
/// - `nucleusScale`: radius factor of interphase tumour nuclei (5–7.5 px × this);
/// - `nucleusStain`: haematoxylin optical density of interphase tumour nuclei (0.55: pale open chromatin);
/// - `chromatin`: granular chromatin texture of every nucleus and figure, the relative amplitude of a
///   per-pixel speckle of its optical density (0: smooth; 0.6: coarse, clumpy nuclei);
/// - `mitosisScale`: size factor of mitotic figures (clump layout and clump sizes);
/// - `mitosisStain`: optical density of the darkest part of a figure's clumps (1.45 … +0.25);
/// - `halo`: how much background stain a figure's clear halo keeps (0.3: a clear halo; 1: no halo);
/// - `rateScale`: factor on the mitotic index r(m) (density range; the latents and labels do not change);
/// - `lookalikes`: factor on the per-slide rates of apoptotic bodies and infiltrating lymphocytes;
/// - `apoptoticScale`: radius factor of apoptotic bodies (larger ones resemble figures more);
/// - `tumourCellularity`: fraction of tumour lattice positions holding a cell (0.8).
public struct SyntheticLook: Sendable, Equatable {
    public var name = "standard"
    public var nucleusScale = 1.0
    public var nucleusStain = 0.55
    public var chromatin = 0.0
    public var mitosisScale = 1.0
    public var mitosisStain = 1.45
    public var halo = 0.3
    public var rateScale = 1.0
    public var lookalikes = 1.0
    public var apoptoticScale = 1.0
    public var tumourCellularity = 0.8

    public init() {}

    /// The named looks of `nic synth --look`.
    public static let presets: [SyntheticLook] = {
        var pale = SyntheticLook()
        pale.name = "pale"  // large pale nuclei with fine texture; small, less dark figures in a faint halo; sparser
        pale.nucleusScale = 1.2; pale.nucleusStain = 0.4; pale.chromatin = 0.3
        pale.mitosisScale = 0.8; pale.mitosisStain = 1.25; pale.halo = 0.75; pale.rateScale = 0.7; pale.lookalikes = 1.5
        var dark = SyntheticLook()
        dark.name = "dark"  // dark crowded nuclei, coarse chromatin; figures without a halo; many look-alikes
        dark.nucleusScale = 0.9; dark.nucleusStain = 0.85; dark.chromatin = 0.5; dark.mitosisScale = 1.15; dark.mitosisStain = 1.6
        dark.halo = 1.0; dark.lookalikes = 2.0; dark.apoptoticScale = 1.4; dark.tumourCellularity = 0.9
        var small = SyntheticLook()
        small.name = "small"  // small nuclei and small figures, half-clear halo; denser mitoses; big apoptotic bodies
        small.nucleusScale = 0.8; small.nucleusStain = 0.6; small.chromatin = 0.8; small.mitosisScale = 0.7; small.mitosisStain = 1.5
        small.halo = 0.55; small.rateScale = 1.4; small.apoptoticScale = 1.6; small.tumourCellularity = 0.7
        var coarse = SyntheticLook()
        coarse.name = "coarse"  // mid-size nuclei with coarse chromatin, figures of demo size and no halo, few look-alikes
        coarse.nucleusScale = 1.05; coarse.nucleusStain = 0.7; coarse.chromatin = 0.6; coarse.mitosisStain = 1.4
        coarse.halo = 1.0; coarse.lookalikes = 0.5; coarse.rateScale = 1.2
        return [SyntheticLook(), pale, dark, small, coarse]
    }()

    public static func preset(_ name: String) -> SyntheticLook? { presets.first { $0.name == name } }

    /// The fields as `key=value` names (`--look-set`), for the CLI and the cohort README.
    public static let keys = ["nucleus_scale", "nucleus_stain", "chromatin", "mitosis_scale", "mitosis_stain", "halo", "rate_scale",
                              "lookalikes", "apoptotic_scale", "tumour_cellularity"]

    /// Sets one field by its `keys` name; nil when the name or the value is not valid (the reason).
    public mutating func set(_ key: String, _ value: Double) -> String? {
        guard value.isFinite, value >= 0 else { return "\(key) must be a finite number ≥ 0, got \(value)" }
        switch key {
        case "nucleus_scale": guard value > 0.2, value <= 2 else { return "nucleus_scale must be in (0.2, 2]" }; nucleusScale = value
        case "nucleus_stain": guard value <= 3 else { return "nucleus_stain must be ≤ 3" }; nucleusStain = value
        case "chromatin": guard value <= 1 else { return "chromatin must be in 0…1" }; chromatin = value
        case "mitosis_scale": guard value > 0.3, value <= 1.5 else { return "mitosis_scale must be in (0.3, 1.5] (figures stay inside the cell's reach)" }; mitosisScale = value
        case "mitosis_stain": guard value <= 3 else { return "mitosis_stain must be ≤ 3" }; mitosisStain = value
        case "halo": guard value <= 1 else { return "halo must be in 0…1 (1: no halo)" }; halo = value
        case "rate_scale": guard value > 0, value <= 4 else { return "rate_scale must be in (0, 4]" }; rateScale = value
        case "lookalikes": guard value <= 5 else { return "lookalikes must be in 0…5" }; lookalikes = value
        case "apoptotic_scale": guard value > 0.3, value <= 2.2 else { return "apoptotic_scale must be in (0.3, 2.2] (the body stays inside the cell's reach)" }; apoptoticScale = value
        case "tumour_cellularity": guard value > 0, value <= 1 else { return "tumour_cellularity must be in (0, 1]" }; tumourCellularity = value
        default: return "unknown look field '\(key)'; expected one of \(SyntheticLook.keys.joined(separator: ", "))"
        }
        return nil
    }

    public var values: [Double] {
        [nucleusScale, nucleusStain, chromatin, mitosisScale, mitosisStain, halo, rateScale, lookalikes, apoptoticScale, tumourCellularity]
    }

    /// One line: the name and every field.
    public var description: String {
        "\(name): " + zip(SyntheticLook.keys, values).map { "\($0)=\(String(format: "%g", $1))" }.joined(separator: ", ")
    }
}
