#!/usr/bin/env python3
"""Checks the NIC demo's results (the CSV of `nic metrics --csv`): every evaluator produced its
metrics, and the multi-task encoder beats the mean-RGB floor on at least two of the three patient
targets (score Spearman, grade AUC, survival C-index). A majority rather than all three: on a
32-patient cohort each patient-level metric alone has a wide CI."""
import csv, sys

rows = list(csv.DictReader(open(sys.argv[1])))
values = {(r["node"], r["metric"]): float(r["value"]) for r in rows if r["value"]}
for r in rows:
    print(f'{r["node"]:<20} {r["metric"]:<10} {r["value"]:>8} {r["95% CI"]}')
targets = [("score", "spearman"), ("grade", "auc"), ("survival", "cindex")]
checks = []
wins = []
for target, metric in targets:
    for encoder in ["mtl", "rgb"]:
        key = (f"eval_{target}_{encoder}", metric)
        checks.append((key in values, f"{key[0]} {metric} computed"))
    if all((f"eval_{target}_{e}", metric) in values for e in ["mtl", "rgb"]):
        mtl, rgb = values[(f"eval_{target}_mtl", metric)], values[(f"eval_{target}_rgb", metric)]
        wins.append(mtl > rgb)
        print(f"{target:<9} {metric:<9} MTL {mtl:.3f}  mean-RGB {rgb:.3f}  {'MTL' if mtl > rgb else 'mean-RGB'} better")
checks.append((sum(wins) >= 2, f"MTL encoder beats mean-RGB on {sum(wins)} of {len(targets)} targets (needs 2)"))
failed = 0
for ok, what in checks:
    print(("ok    " if ok else "FAIL  ") + what)
    failed += not ok
print(f"{len(checks) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
