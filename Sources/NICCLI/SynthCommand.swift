import ArgumentParser
import Foundation
import NICBasics
import Slides
import Synthetic

/// `nic synth`: a synthetic cohort with known ground truth (see `SyntheticCohort` for the model).
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a synthetic H&E cohort (pyramidal TIFF slides, labels.csv, patches.csv) with known ground truth.",
        discussion: """
        Slides are 0.5 µm/px tiled pyramidal TIFFs that OpenSlide opens. labels.csv has a continuous score, a \
        binary class and survival (time, event); patches.csv has three patch-level tasks (tissue, mitosis, \
        nuclei); patch_truth.csv has the true content of every 128 px grid patch.

        Generative model: per patient, proliferation m ~ U(0,1) and tumour burden u ~ U(0.15,0.65). A slide's \
        tumour fraction is ≈ u; its mitotic index (mitotic tumour cells) is 0.002 + 0.04·m^1.5 (0.2–4.2 %). \
        Mitotic figures are dark, ragged chromatin (metaphase plates 50 %, clustered clumps 30 %, two \
        separating groups 20 %) of 1.5–2× a tumour nucleus's area in a clear halo. Look-alikes at per-slide \
        rates independent of m and u: apoptotic bodies (0.5–1.5 % of tumour cells; small, round, very dark, \
        pink cytoplasm), lymphocytes (2–6 % of tumour cells, 4–12 % of stroma positions, patchy). \
        score = m + N(0, 0.1²); high_grade ~ Bernoulli(σ(3(m−0.5) + 8(u−0.4))); survival log-hazard \
        1.2·z(m) + 0.8·z(u). Mitosis annotations: positives centred on true mitoses, negatives \
        --hard-negatives of them (default 50 %) from tumour without a mitosis, the rest from random tissue.

        Annotation styles (--annotation): exhaustive (the default, above: only a generator can know that a \
        negative holds no figure anywhere) or sparse, as pathologists' point sets are made (TUPAC16 auxiliary, \
        AMIDA13, MIDOG): each true figure is marked with probability --annotated-fraction (default 0.3) as a \
        point displaced uniformly within --point-noise px (default 4) of its centre, label 1; no negatives. \
        Tissue and nuclei rows are the same in both styles.

        Looks (--look, then --look-set key=value,... to change single fields): standard (the default; the \
        demo's), pale (large pale nuclei with fine texture, small and paler figures in a faint halo, rate ×0.7, \
        look-alikes ×1.5), dark (small dark crowded nuclei with coarse chromatin, larger darker figures \
        without a halo, look-alikes ×2 and larger apoptotic bodies), small (small nuclei and figures with \
        coarse chromatin, half-clear halo, rate ×1.4, large apoptotic bodies), coarse (coarse chromatin, \
        darker nuclei, figures without a halo, rate ×1.2, look-alikes ×0.5). Fields: nucleus_scale \
        (tumour nucleus radius factor), nucleus_stain (its optical density, 0.55), chromatin (granular \
        texture amplitude, 0 smooth … 1), mitosis_scale (figure size factor), mitosis_stain (figure optical \
        density, 1.45), halo (background kept in the figure's halo: 0.3 clear … 1 none), rate_scale \
        (factor on the mitotic index: density range), lookalikes (factor on apoptotic-body and infiltrating \
        lymphocyte rates), apoptotic_scale (apoptotic body size factor), tumour_cellularity (0.8). The labels \
        and the latent oracle do not depend on the look. The default command (standard look, exhaustive) \
        writes the same bytes as before these options existed.

        Two oracles are printed and written to oracle.json: from the true latents (the ceiling of any model) \
        and from the true patch counts (mitoses per mm² of tumour, tumour fraction: what a perfect patch \
        encoder could give). README.md in the output documents the model in full.

        --site NAME scans the same cohort at another lab: the same seed gives the same patients, slides, cells, \
        labels, annotations and oracles, and only the pixels change — other haematoxylin and eosin vectors and \
        strengths, section thickness, optical blur, brightness, white balance and JPEG quality. Named sites: \
        hospital-b (dark blue haematoxylin, thick sections, blur 0.9 px, warm light, JPEG 70) and hospital-c \
        (pale, eosin-heavy, thin sections, blur 1.3 px, cool light, JPEG 60); any other name draws a site from \
        the name (same name, same site). Without --site the cohort is the nominal site's, byte for byte as before. \
        For an external test set use another seed and a site: nic synth --seed 3 --patients 48 --site hospital-b.
        """)

    @Option(name: .shortAndLong, help: "Output folder (created).") var out: String = "data/synth"
    @Flag(help: "Replace the output folder if it already holds files.") var force = false
    @Option(help: "Number of patients (some get two slides).") var patients: Int = 12
    @Option(help: "Slide width and height in pixels at 0.5 µm/px.") var size: Int = 3072
    @Option(help: "Random seed: same seed, same cohort.") var seed: UInt64 = 1
    @Option(help: "Tile compression: jpeg or deflate (lossless).") var compression: String = "jpeg"
    @Option(help: "JPEG quality (1-100).") var quality: Int = 90
    @Option(help: "Annotated patches per task and slide in patches.csv.") var annotations: Int = 60
    @Option(name: .customLong("hard-negatives"), help: "Fraction of the mitosis task's negatives drawn from tumour without a mitosis (the rest: random tissue without a mitosis).")
    var hardNegatives: Double = 0.5
    @Option(help: "Mitosis annotation style: exhaustive (centred positives, negatives known to hold no figure) or sparse (points on some figures, placement noise, no negatives).")
    var annotation: String = "exhaustive"
    @Option(name: .customLong("annotated-fraction"), help: "sparse: probability that a figure is marked.") var annotatedFraction: Double = 0.3
    @Option(name: .customLong("point-noise"), help: "sparse: a mark lies uniformly within this many px of the figure's centre.") var pointNoise: Double = 4
    @Option(help: "Look of nuclei and figures: \(SyntheticLook.presets.map(\.name).joined(separator: ", ")).") var look: String = "standard"
    @Option(name: .customLong("look-set"), help: "Change look fields, key=value,... (keys: \(SyntheticLook.keys.joined(separator: ", "))).")
    var lookSet: String = ""
    @Option(name: .customLong("second-slide-probability"), help: "Probability that a patient has a second slide.") var secondSlide: Double = 0.35
    @Flag(name: .customLong("read-benchmark"), help: "Then time reading every tissue tile (128 px at 0.5 µm/px, grid mode) of each slide with 1 and with --threads Dispatch workers; the tile list goes to bench-tiles.csv for other readers.")
    var readBenchmark = false
    @Flag(help: "Also write the ground truth as QuPath GeoJSON annotations, annotations/<slide>.geojson (tumour and stroma polygons, mitosis and nucleus points), for the `annotations` node.")
    var geojson = false
    @Option(help: "Scan the cohort at another lab and scanner: hospital-b, hospital-c, or any name (a site drawn from it); default: the nominal site.")
    var site: String?
    @Option(help: "Dispatch workers for --read-benchmark.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard patients > 0 else { throw ValidationError("--patients must be at least 1") }
        guard size >= 512 else { throw ValidationError("--size must be at least 512 (pixels)") }
        guard ["jpeg", "deflate"].contains(compression) else { throw ValidationError("--compression must be jpeg or deflate, got '\(compression)'") }
        guard (1...100).contains(quality) else { throw ValidationError("--quality must be 1-100") }
        guard annotations >= 2 else { throw ValidationError("--annotations must be at least 2") }
        guard (0...1).contains(hardNegatives) else { throw ValidationError("--hard-negatives must be in 0...1") }
        guard (0...1).contains(secondSlide) else { throw ValidationError("--second-slide-probability must be in 0...1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard ["exhaustive", "sparse"].contains(annotation) else { throw ValidationError("--annotation must be exhaustive or sparse, got '\(annotation)'") }
        guard annotatedFraction > 0, annotatedFraction <= 1 else { throw ValidationError("--annotated-fraction must be in (0, 1], got \(annotatedFraction)") }
        guard pointNoise >= 0, pointNoise <= 32 else { throw ValidationError("--point-noise must be in 0…32 px, got \(pointNoise)") }
        if let site, site.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--site needs a name (hospital-b, hospital-c or any other)") }
        _ = try chosenLook()
    }

    /// The --look preset with the --look-set changes.
    func chosenLook() throws -> SyntheticLook {
        guard var chosen = SyntheticLook.preset(look) else {
            throw ValidationError("--look must be one of \(SyntheticLook.presets.map(\.name).joined(separator: ", ")), got '\(look)'")
        }
        for item in lookSet.split(separator: ",") where !item.trimmingCharacters(in: .whitespaces).isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let value = Double(parts[1]) else { throw ValidationError("--look-set: expected key=number, got '\(item)'") }
            if let problem = chosen.set(parts[0], value) { throw ValidationError("--look-set: \(problem)") }
        }
        if !lookSet.isEmpty { chosen.name += "+" + lookSet }
        return chosen
    }

    func run() throws {
        var options = SyntheticCohort.Options()
        options.patients = patients
        options.size = size
        options.seed = seed
        options.compression = compression == "jpeg" ? .jpeg(quality: quality) : .deflate
        options.annotationsPerTask = annotations
        options.secondSlideProbability = secondSlide
        options.hardNegativeFraction = hardNegatives
        options.look = try chosenLook()
        options.annotation = annotation == "sparse" ? .sparse(fraction: annotatedFraction, noise: pointNoise) : .exhaustive
        options.site = site.map { ScannerSite(name: $0) }
        let cohort = SyntheticCohort(options)
        let folder = URL(fileURLWithPath: out)
        if let existing = try? FileManager.default.contentsOfDirectory(atPath: folder.path), !existing.isEmpty {
            // Slides of an earlier, larger cohort would otherwise linger next to the new labels.csv.
            guard force else {
                standardError("error: \(folder.path) already holds files; choose another --out or pass --force to replace it")
                throw ExitCode(ExitStatus.failed)
            }
            try FileManager.default.removeItem(at: folder)
        }
        let start = Date()
        let summary: SyntheticCohort.Summary
        do {
            summary = try cohort.write(to: folder) { done, total in
                standardError("synth: slide \(done)/\(total)")
            }
        } catch let error as SlideError {
            standardError("error: \(error)")
            throw ExitCode(ExitStatus.failed)
        }
        if geojson {
            try cohort.writeGeoJSON(to: folder.appendingPathComponent("annotations"))
            print("wrote QuPath GeoJSON annotations to \(folder.appendingPathComponent("annotations").path)")
        }
        func f(_ v: Double) -> String { String(format: "%.3f", v) }
        let o = summary.oracle, q = summary.patchOracle, spread = summary.mitosisSpread
        let densities = summary.counts.map(\.mitoticDensity)
        print("wrote \(cohort.slideSpecs.count) slides of \(patients) patients to \(folder.path) in \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        print("mitoses per slide: min \(spread.min), median \(spread.median), max \(spread.max); per mm² of tumour per patient: \(String(format: "%.0f", densities.min() ?? 0))–\(String(format: "%.0f", densities.max() ?? 0))")
        if options.annotation == .exhaustive {
            print("mitosis task negatives: \(summary.hardNegatives) of \(summary.mitosisNegatives) hard (tumour without a mitosis), asked \(Int((hardNegatives * 100).rounded())) %")
        } else {
            print("mitosis annotation: \(options.annotation.description); look \(options.look.description)")
        }
        print("oracle (from the true latents):      spearman(score) \(f(o.spearmanScore))  auc(high_grade) \(f(o.aucHighGrade))  c-index(time,event) \(f(o.cIndexSurvival))")
        print("oracle (from the true patch counts): spearman(score) \(f(q.spearmanScore))  auc(high_grade) \(f(q.aucHighGrade))  c-index(time,event) \(f(q.cIndexSurvival))  [mitoses per mm² of tumour, tumour fraction]")
        if readBenchmark {
            do {
                try benchmark(cohort, folder: folder)
            } catch let error as SlideError {
                standardError("error: \(error)")
                throw ExitCode(ExitStatus.failed)
            }
        }
    }

    /// Grid-mode reading speed: the tissue cells' tiles, read with `Slide.readRegion` at 0.5 µm/px.
    func benchmark(_ cohort: SyntheticCohort, folder: URL) throws {
        var csv = "slide,x,y,size\n"
        for entry in cohort.slideSpecs {
            let url = folder.appendingPathComponent("slides/\(entry.stem).tif")
            let slide = try Slide(url: url)
            let grid = TileGrid(slide: slide, mpp: 0.5, size: 128, mask: try TissueDetector().detect(slide))
            let origins = grid.tissueCells(minTissue: 0.6).map { grid.origin(column: $0.column, row: $0.row) }
            for o in origins { csv += "\(url.path),\(o.x),\(o.y),128\n" }
            let cells = grid.tissueCells(minTissue: 0.6)
            for blocked in [false, true] {
                for workers in Array(Set([1, threads])).sorted() {
                    // A fresh handle per run: OpenSlide's tile cache must not carry over between runs.
                    let fresh = try Slide(url: url)
                    // Per-tile checksums, so the reads cannot be optimised away.
                    let sums = Locked([Int](repeating: 0, count: origins.count))
                    let start = Date()
                    if blocked {
                        try GridReader(slide: fresh, grid: grid, mpp: 0.5, size: 128).read(cells, workers: workers) { i, tile in
                            sums.withLock { $0[i] = Int(tile.pixels[(64 * 128 + 64) * 3]) }
                        }
                    } else {
                        // Contiguous shares: threads interleaving cell by cell would decode the same TIFF tiles twice.
                        DispatchQueue.concurrentPerform(iterations: workers) { w in
                            for i in (w * origins.count / workers)..<((w + 1) * origins.count / workers) {
                                let tile = try? fresh.readRegion(x: origins[i].x, y: origins[i].y, width: 128, height: 128, mpp: 0.5)
                                sums.withLock { $0[i] = tile.map { Int($0.pixels[(64 * 128 + 64) * 3]) } ?? -1 }
                            }
                        }
                    }
                    let seconds = Date().timeIntervalSince(start)
                    let checksums = sums.current
                    guard checksums.allSatisfy({ $0 >= 0 }) else { throw SlideError(.unreadable, path: url.path, "a tile failed to read") }
                    print("read-benchmark \(entry.stem) \(slide.width)x\(slide.height): \(origins.count) tissue tiles, \(blocked ? "GridReader (2x2-cell blocks)" : "one read per tile"), \(workers) worker\(workers == 1 ? "" : "s"): \(String(format: "%.2f", seconds)) s, \(String(format: "%.0f", Double(origins.count) / seconds)) tiles/s (checksum \(checksums.reduce(0, +)))")
                }
            }
        }
        try csv.write(to: folder.appendingPathComponent("bench-tiles.csv"), atomically: true, encoding: .utf8)
        print("tile list: \(folder.appendingPathComponent("bench-tiles.csv").path)")
    }
}
