#!/usr/bin/env python3
"""Checks the NIC demo's results (the CSV of `nic metrics --csv`): every evaluator produced its
metrics, and the multi-task encoder beats the mean-RGB floor on the regression score."""
import csv, sys

rows = list(csv.DictReader(open(sys.argv[1])))
values = {(r["node"], r["metric"]): float(r["value"]) for r in rows if r["value"]}
for r in rows:
    print(f'{r["node"]:<20} {r["metric"]:<10} {r["value"]:>8} {r["95% CI"]}')
checks = [
    (("eval_score_mtl", "spearman") in values, "MTL score model evaluated"),
    (("eval_score_rgb", "spearman") in values, "mean-RGB score model evaluated"),
    (("eval_grade_mtl", "auc") in values, "grade model evaluated"),
    (("eval_survival_mtl", "cindex") in values, "survival model evaluated"),
]
if checks[0][0] and checks[1][0]:
    mtl, rgb = values[("eval_score_mtl", "spearman")], values[("eval_score_rgb", "spearman")]
    checks.append((mtl > rgb, f"MTL encoder beats mean-RGB: Spearman {mtl:.3f} > {rgb:.3f}"))
failed = 0
for ok, what in checks:
    print(("ok    " if ok else "FAIL  ") + what)
    failed += not ok
print(f"{len(checks) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
