#!/usr/bin/env python3
"""Checks the NIC demo on the tiny CI cohort (issue 11's CI checks), from `nic metrics --csv` and the
MTL encoder's model.json:
- every evaluator produced its metrics;
- the MTL encoder's mitosis head beats chance on its validation patches (AUC > 0.5; half the
  negatives there are hard: tumour without a mitosis);
- on the score (the mitotic rate), the multiple-instance model over every tissue cell (mil-mean) on
  the MTL grids is at least as good as the linear probe on the same grids (the ground rule: a patient
  model no worse than its probe); the gated-attention model (abmil-gated) ran and gave its metric;
Reported, not judged: MTL against mean-RGB codes, for the probe and for MIL, and the NIC crop CNNs,
whose CIs span most of [0, 1] at this size; the `compare` nodes measure them with paired bootstraps.
To fit CI time the tiny encoder trains on 600 patches per task for at most 8 epochs; the shifted
mitosis task needs the demo's 1500 per task and cap 20 to be learned well (on the dev cohort, 600
per task gave a probe Spearman of −0.07 against 0.72 at 1500), so MTL codes beating mean-RGB codes
with a linear probe is shown by the demo (0.80 against −0.25), not asserted here."""
import csv, json, sys

rows = list(csv.DictReader(open(sys.argv[1])))
model = json.load(open(sys.argv[2]))
values = {(r["node"], r["metric"]): float(r["value"]) for r in rows if r["value"]}
for r in rows:
    print(f'{r["node"]:<28} {r["metric"]:<20} {r["value"]:>8} {r["95% CI"]}')
checks = []
for node, metric in [("eval@cnn-mtl-score", "spearman"), ("eval@cnn-mean_rgb-score", "spearman"), ("eval@cnn-mtl-grade", "auc"),
                     ("eval@cnn-mean_rgb-grade", "auc"), ("eval@cnn-mtl-survival", "cindex"), ("eval@cnn-mean_rgb-survival", "cindex"),
                     ("eval@probe-mtl-score", "spearman"), ("eval@probe-mean_rgb-score", "spearman"),
                     ("eval@mil-mtl-score", "spearman"), ("eval@mil-mean_rgb-score", "spearman"), ("eval@abmil-mtl-score", "spearman")]:
    checks.append(((node, metric) in values, f"{node} {metric} computed"))
mitosis = next((t for t in model["tasks"] if t["name"] == "mitosis"), None)
auc = (mitosis or {}).get("validation", {}).get("auc")
print(f"mitosis head: validation {mitosis and mitosis.get('validation')}")
checks.append((auc is not None and auc > 0.5, f"mitosis head validation AUC {auc} > 0.5"))
probe_mtl, probe_rgb = values.get(("eval@probe-mtl-score", "spearman")), values.get(("eval@probe-mean_rgb-score", "spearman"))
print(f"score probe (reported): MTL codes {probe_mtl}, mean-RGB codes {probe_rgb}")
mil_mtl, mil_rgb = values.get(("eval@mil-mtl-score", "spearman")), values.get(("eval@mil-mean_rgb-score", "spearman"))
print(f"score MIL (reported): MTL codes {mil_mtl}, mean-RGB codes {mil_rgb}")
checks.append((mil_mtl is not None and probe_mtl is not None and mil_mtl >= probe_mtl,
               f"score on MTL grids: MIL over tissue cells {mil_mtl} >= linear probe {probe_mtl}"))
failed = 0
for ok, what in checks:
    print(("ok    " if ok else "FAIL  ") + what)
    failed += not ok
print(f"{len(checks) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
