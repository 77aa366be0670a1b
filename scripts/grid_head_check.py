"""Where a counting signal (mitoses) is kept or lost along the NIC chain, stage by stage, against a
synthetic cohort's truth (`nic synth` writes patch_truth.csv, patches.csv, labels.csv, truth.csv, and for
cohorts of another look or annotation style figures.csv with every figure's position).

Stage 1, the encoder's own head for the task (a dense layer on the code, heads.safetensors; a binary
head's probability, or a count head's expected number of marked points) applied to every tissue cell of
the compressor's grids:
  - per cell: AUC against "the cell holds at least one figure" (all cells, tumour cells); the head's
    probability on the cell holding a figure by the figure's distance from the cell centre, and across
    cell borders (figures within 16 px of a border: the holding cell against the figure-free neighbour
    across that border);
  - per slide: true figures against the head's expected count (sum of p) and confident cells (p > 0.5);
  - per patient: the true rate (figures per tumour cell) and the head's mean, confident rate and
    tumour-weighted rate against the score, and against the tumour fraction (a head that fires on
    tumour rather than figures ranks patients by burden, not by rate).
Stage 1b (--floor GRIDS): the `object_count` floor's dark objects per cell, slide and patient, the same way.
Stage 2 (--predictions DIR ...): each patient model's out-of-fold predictions against the score and
the true rate.

    python scripts/grid_head_check.py MODEL_DIR GRIDS_DIR COHORT_DIR [--task mitosis] [--column mitoses]
        [--floor FLOOR_GRIDS_DIR] [--predictions PRED_DIR ...]
MODEL_DIR: `nic output P.yaml ENCODER`; GRIDS_DIR: `nic output P.yaml COMPRESSOR grids`; PRED_DIR:
`nic output P.yaml MODEL predictions`.
"""
import argparse
import csv
import json
import os

import numpy as np
import zarr
from safetensors.numpy import load_file
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("model")
parser.add_argument("grids")
parser.add_argument("cohort")
parser.add_argument("--task", default="mitosis", help="the binary task head to apply")
parser.add_argument("--column", default="mitoses", help="patch_truth.csv column counting the task's objects")
parser.add_argument("--kind", default="mitosis", help="figures.csv kind of the task's objects")
parser.add_argument("--floor", help="an object_count node's grids (channel 0: dark objects per cell)")
parser.add_argument("--predictions", nargs="*", default=[], help="patient model prediction folders")
args = parser.parse_args()


def rho(a, b):
    return spearmanr(a, b)[0] if len(a) > 2 else float("nan")


info = json.load(open(f"{args.grids}/gridset.json"))
size = info["size"]
labels = {r["slide"]: r for r in csv.DictReader(open(f"{args.cohort}/labels.csv"))}
score = {r["patient"]: float(r["score"]) for r in labels.values() if r.get("score")}
truth = {(r["slide"], int(float(r["x"])) // size, int(float(r["y"])) // size): r
         for r in csv.DictReader(open(f"{args.cohort}/patch_truth.csv"))}
figures_file = f"{args.cohort}/figures.csv"
if os.path.exists(figures_file):
    figures = [(r["slide"], float(r["x"]), float(r["y"])) for r in csv.DictReader(open(figures_file)) if r["kind"] == args.kind]
    figure_source = "figures.csv (every true figure)"
else:
    figures = [(r["slide"], float(r["x"]), float(r["y"])) for r in csv.DictReader(open(f"{args.cohort}/patches.csv"))
               if r["task"] == args.task and r["label"] == "1"]
    figure_source = "patches.csv positives (annotated figures only)"


def load_grids(folder, value):
    meta = json.load(open(f"{folder}/gridset.json"))
    out = {}
    for slide in meta["slides"]:
        stem = slide["stem"]
        codes = zarr.open_array(f"{folder}/grids/{stem}/o0")[:].astype(np.float32)
        mask = zarr.open_array(f"{folder}/grids/{stem}/mask")[:] > 0
        out[stem] = (value(codes), mask)
    return out


def report(name, grids, confident):
    """Per-cell, per-slide and per-patient checks of a per-cell detection map (p or a count)."""
    print(f"\n== {name} ==")
    values, holds, tumour, counts = [], [], [], []
    per_slide = {}
    per_patient = {}
    for stem, (p, mask) in grids.items():
        patient = labels[stem]["patient"]
        s = per_slide.setdefault(stem, {"true": 0, "sum": 0.0, "confident": 0})
        q = per_patient.setdefault(patient, {"true": 0, "tumour": 0.0, "cells": 0, "sum": 0.0, "confident": 0,
                                             "tumour_sum": 0.0, "empty_tumour": [], "empty_stroma": []})
        for row, column in zip(*np.nonzero(mask)):
            t = truth.get((stem, column, row))
            if t is None:
                continue
            v, n, tu = float(p[row, column]), int(t[args.column]), float(t["tumour"])
            values.append(v); holds.append(n > 0); tumour.append(tu > 0.5); counts.append(n)
            s["true"] += n; s["sum"] += v; s["confident"] += int(v > confident)
            q["true"] += n; q["tumour"] += tu; q["cells"] += 1; q["sum"] += v; q["confident"] += int(v > confident)
            q["tumour_sum"] += v * tu
            if n == 0:
                (q["empty_tumour"] if tu > 0.5 else q["empty_stroma"]).append(v)
    values, holds, tumour, counts = map(np.array, (values, holds, tumour, counts))
    print(f"per cell: {len(holds)} tissue cells, {holds.sum()} holding a figure; AUC all {roc_auc_score(holds, values):.3f}, "
          f"tumour cells {roc_auc_score(holds[tumour], values[tumour]):.3f}; Spearman(value, figures in cell) {rho(values, counts):.3f}")
    print(f"  mean value: figure-free stroma {values[~holds & ~tumour].mean():.3f}, figure-free tumour {values[~holds & tumour].mean():.3f}, "
          f"1 figure {values[counts == 1].mean() if (counts == 1).any() else float('nan'):.3f}, 2+ {values[counts >= 2].mean() if (counts >= 2).any() else float('nan'):.3f}")

    print(f"  figures by distance from their cell's centre ({figure_source}):")
    by_offset, border = {}, []
    for stem, x, y in figures:
        if stem not in grids:
            continue
        p, mask = grids[stem]
        column, row = int(x) // size, int(y) // size
        if row >= p.shape[0] or column >= p.shape[1] or not mask[row, column]:
            continue
        dx, dy = x - (size * column + size / 2), y - (size * row + size / 2)
        by_offset.setdefault(int(max(abs(dx), abs(dy))) * 8 // size, []).append(p[row, column])
        # Across the nearest border, when the figure is within 16 px of it and the neighbour holds none.
        if abs(dx) >= abs(dy):
            nc, nr = column + (1 if dx > 0 else -1), row
            gap = size / 2 - abs(dx)
        else:
            nc, nr = column, row + (1 if dy > 0 else -1)
            gap = size / 2 - abs(dy)
        if gap < 16 and 0 <= nr < p.shape[0] and 0 <= nc < p.shape[1] and mask[nr, nc]:
            t = truth.get((stem, nc, nr))
            if t is not None and int(t[args.column]) == 0:
                border.append((p[row, column], p[nr, nc]))
    for k in sorted(by_offset):
        v = np.array(by_offset[k])
        print(f"    {k * size // 16:3d}-{(k + 1) * size // 16 - 1:3d} px: {len(v):5d} figures, mean {v.mean():.3f}, above {confident}: {(v > confident).mean():.3f}")
    if border:
        b = np.array(border)
        print(f"  across borders ({len(b)} figures within 16 px of a border, figure-free neighbour): holding cell mean {b[:, 0].mean():.3f}, "
              f"neighbour {b[:, 1].mean():.3f}, neighbour higher in {(b[:, 1] > b[:, 0]).mean():.3f}")

    stems = sorted(per_slide)
    true = [per_slide[s]["true"] for s in stems]
    print(f"per slide ({len(stems)}): true figures vs sum of values Spearman {rho(true, [per_slide[s]['sum'] for s in stems]):.3f} "
          f"(Pearson {pearsonr(true, [per_slide[s]['sum'] for s in stems])[0]:.3f}), vs cells above {confident} {rho(true, [per_slide[s]['confident'] for s in stems]):.3f}")

    patients = sorted(p for p in per_patient if p in score)
    P = [per_patient[p] for p in patients]
    sc = [score[p] for p in patients]
    true_rate = [q["true"] / max(q["tumour"], 1e-9) for q in P]
    burden = [q["tumour"] / max(q["cells"], 1) for q in P]
    mean = [q["sum"] / max(q["cells"], 1) for q in P]
    per_tumour = [q["sum"] / max(q["tumour"], 1e-9) for q in P]
    weighted = [q["tumour_sum"] / max(q["tumour"], 1e-9) for q in P]
    confident_rate = [q["confident"] / max(q["cells"], 1) for q in P]
    empty_tumour = [np.mean(q["empty_tumour"]) if q["empty_tumour"] else np.nan for q in P]
    print(f"per patient ({len(patients)}): score vs true rate (figures per tumour cell) {rho(true_rate, sc):.3f}; vs the values' "
          f"mean over tissue cells {rho(mean, sc):.3f}, sum per tumour cell {rho(per_tumour, sc):.3f}, "
          f"tumour-weighted mean {rho(weighted, sc):.3f}, rate above {confident} {rho(confident_rate, sc):.3f}")
    ok = [i for i, v in enumerate(empty_tumour) if np.isfinite(v)]
    print(f"  confounds: mean over tissue vs tumour fraction {rho(mean, burden):.3f}; figure-free tumour cells' mean vs score "
          f"{rho([empty_tumour[i] for i in ok], [sc[i] for i in ok]):.3f}, vs true rate {rho([empty_tumour[i] for i in ok], [true_rate[i] for i in ok]):.3f}")
    return true_rate, patients


weights = load_file(f"{args.model}/heads.safetensors")
w, b = weights[f"heads.{args.task}.0.weight"][0], weights[f"heads.{args.task}.0.bias"][0]
task_info = next((t for t in json.load(open(f"{args.model}/model.json")).get("tasks", []) if t["name"] == args.task), {})
if task_info.get("kind") == "regression":
    # A count task (`point_counts`): the head regresses the standardised number of marked points in a patch.
    mean, std = task_info.get("mean") or 0.0, task_info.get("std") or 1.0
    head = load_grids(args.grids, lambda codes: (codes @ w + b) * std + mean)
    title = f"stage 1: the encoder's '{args.task}' count head on the grid cells (expected marked points per cell)"
else:
    head = load_grids(args.grids, lambda codes: 1 / (1 + np.exp(-(codes @ w + b))))
    title = f"stage 1: the encoder's '{args.task}' head on the grid cells"
true_rate, patients = report(title, head, 0.5)
if args.floor:
    report("stage 1b: object_count floor (dark objects per cell)", load_grids(args.floor, lambda codes: codes[..., 0]), 0.5)
rate_of = dict(zip(patients, true_rate))
for folder in args.predictions:
    rows = list(csv.DictReader(open(f"{folder}/predictions.csv")))
    column = next(c for c in rows[0] if c.startswith("prediction") or c == "risk" or c == "score_pred") if rows else None
    names = [p for p in (r["patient"] for r in rows) if p in score]
    prediction = {r["patient"]: float(r[column]) for r in rows}
    print(f"\n== stage 2: {folder} ({column}) ==\n  Spearman vs score {rho([prediction[p] for p in names], [score[p] for p in names]):.3f}, "
          f"vs true rate {rho([prediction[p] for p in names if p in rate_of], [rate_of[p] for p in names if p in rate_of]):.3f} ({len(names)} patients)")
