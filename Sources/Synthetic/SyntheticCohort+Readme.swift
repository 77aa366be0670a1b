import Foundation

extension SyntheticCohort {
    /// README.md of a written cohort: the files, the generative model with its rates, and both oracles.
    func readme(_ summary: Summary) -> String {
        func f(_ v: Double) -> String { String(format: "%.3f", v) }
        let o = summary.oracle, q = summary.patchOracle, spread = summary.mitosisSpread
        let densities = summary.counts.map(\.mitoticDensity).sorted()
        // Only a cohort of another look or annotation style says so: a default cohort's README stays as it was.
        var other = ""
        if options.look != SyntheticLook() || options.annotation != .exhaustive {
            other = """


            ## Look and annotation style (this cohort)

            - Look \(options.look.description) (`nic synth --help` and `SyntheticLook` say what each field changes;
              the standard look has nucleus_scale=1, nucleus_stain=0.55, chromatin=0, mitosis_scale=1,
              mitosis_stain=1.45, halo=0.3, rate_scale=1, lookalikes=1, apoptotic_scale=1, tumour_cellularity=0.8).
              rate_scale multiplies the mitotic index r(m) and lookalikes the apoptotic and infiltrating-lymphocyte
              rates; the labels and the latent oracle do not change.
            - Mitosis annotation: \(options.annotation.description).
            - `figures.csv` — slide, x, y, kind (mitosis | apoptotic) of every mitotic figure and apoptotic body, for
              diagnostics (`scripts/grid_head_check.py`). Do not train on it.
            """
            if case .sparse = options.annotation {
                other += """

                  The mitosis rows of patches.csv are points on a random subset of the true figures, displaced by the
                  placement noise, all labelled 1; the task has no negatives (what the hard-negative text above says
                  does not apply). A training sampler must choose its own negatives.
                """
            }
        }
        return """
        # Synthetic NIC cohort (nic synth)

        \(options.patients) patients, \(slideSpecs.count) slides of \(options.size)×\(options.size) px at 0.5 µm/px (pyramidal tiled TIFF, seed \(options.seed)).

        ## Files

        - `slides/*.tif` — H&E-like slides: glass, stroma (pink, fibrous, sparse elongated nuclei, patchy
          lymphocytes), tumour (purple, dense round nuclei), mitotic figures, apoptotic bodies and infiltrating
          lymphocytes, per-slide stain strength, some pen marks.
        - `labels.csv` — slide, patient, score (continuous), high_grade (0/1), time (months), event (1 = observed).
        - `patches.csv` — slide, x, y (patch centre, level-0 px), task, label; tasks: tissue (stroma|tumour),
          mitosis (0|1), nuclei (count in the \(options.patchSize) px patch).
        - `patch_truth.csv` — every \(options.patchSize) px grid patch with tissue (origin 0, stride \(options.patchSize)): x, y (centre),
          tissue and tumour fractions (of an 8×8 lattice of points), and nuclei by kind: mitoses, tumour_nuclei,
          apoptotic, lymphocytes, fibroblasts. What a perfect patch encoder would read. Do not train on it.
        - `truth.csv` — the latent variables per patient (do not train on them).
        - `oracle.json` — the best achievable metrics, from the true latents and from the true patch counts.

        ## Generative model

        - Patient: proliferation m ~ U(0,1), tumour burden u ~ U(0.15,0.65); 1 slide, or 2 with probability \(options.secondSlideProbability).
        - Slide: tumour fraction of the tissue u + N(0, 0.05²) (clamped to 0.05…0.9); mitotic index (probability
          that a tumour cell is mitotic) r(m) = 0.002 + 0.04·m^1.5, i.e. 0.2 %…4.2 %; stain strengths H, E ~ U(0.75, 1.25);
          pen mark with probability 0.3. Look-alikes, drawn per slide independently of m and u (nuisances):
          apoptotic bodies U(0.5 %, 1.5 %) of tumour cells, infiltrating lymphocytes U(2 %, 6 %) of tumour cells,
          stroma lymphocytes U(4 %, 12 %) of stroma lattice positions (patchy: 0…2× by a smooth field).
        - Cells on a jittered 8 µm lattice: 80 % of tumour positions and 15 % of stroma positions hold a nucleus
          (plus the stroma lymphocytes). Radii at 0.5 µm/px: tumour nucleus 5–7.5 px (pale, ≈110 px²);
          lymphocyte 3.3–4.1 px (dark, round); apoptotic body 2.6–3.4 px (very dark, round, half with 1–2 fragments,
          pink cytoplasm rim to 6–7 px, then a clear space); mitotic figure ≈185 px² of dark condensed
          chromatin on average (1.6× a tumour nucleus), 50 % metaphase (a ragged plate with protruding arms), 30 %
          prometaphase (clustered clumps), 20 % anaphase/telophase (two separating groups), in a clear halo
          (radius 14–18 px) that pushes neighbouring nuclei aside.
        - Labels: score = m + N(0, 0.1²); high_grade ~ Bernoulli(σ(3(m−0.5) + 8(u−0.4)));
          log-hazard η = 1.2·z(m) + 0.8·z(u) (z standardises by the latent's distribution), T ~ Exp(0.05·e^η)
          months, censoring U(0, 72), time = min(T, C), event = T ≤ C.
        - Patch annotations per slide (\(options.annotationsPerTask) per task): tissue and nuclei at random tissue positions;
          mitosis positives centred on true mitoses (at most half), negatives \(Int((options.hardNegativeFraction * 100).rounded())) % hard (tumour patches
          without a mitosis) and the rest random tissue patches without a mitosis; on this cohort \(summary.hardNegatives) of
          \(summary.mitosisNegatives) negatives are hard.\(other)

        Mitoses per slide on this cohort: min \(spread.min), median \(spread.median), max \(spread.max); per mm² of tumour,
        per patient: \(String(format: "%.0f", densities.first ?? 0))…\(String(format: "%.0f", densities.last ?? 0)).

        ## Oracles

        | target | metric | from the true latents | from the true patch counts |
        |---|---|---|---|
        | score | Spearman | \(f(o.spearmanScore)) | \(f(q.spearmanScore)) |
        | high_grade | AUC | \(f(o.aucHighGrade)) | \(f(q.aucHighGrade)) |
        | survival | C-index | \(f(o.cIndexSurvival)) | \(f(q.cIndexSurvival)) |

        From the latents: Spearman(score, m), AUC(high_grade, its true probability), C(time, event, η) — the
        ceiling of any model. From the patch counts (patch_truth.csv summed per patient): the score against
        mitoses per mm² of tumour; grade and survival from the same formulas with m read back from that
        mitotic density (÷ 12,500 tumour cells per mm², then the inverse of r) and u read back as the tumour
        fraction of the tissue — what a perfect patch encoder followed by the right patient model could reach.

        """
    }
}
