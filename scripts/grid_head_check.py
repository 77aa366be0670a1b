"""How well an encoder's own binary task head (e.g. mitosis) finds its object on the compressor's grid
cells, against a synthetic cohort's truth (`nic synth` writes patch_truth.csv and patches.csv).

An encoder is trained on annotated patches (centred on the object); a grid shows objects anywhere
in a cell. This applies the head (a dense layer on the code, heads.safetensors) to every tissue cell
of the grids and reports:
  - the per-cell AUC against "the cell holds at least one object" (all cells, and tumour cells);
  - the head's probability on cells holding an annotated positive, by the object's distance from the
    cell centre (does the head only see centred objects?);
  - Spearman, over patients, of the score target with the head's confident-cell rate.

    python scripts/grid_head_check.py MODEL_DIR GRIDS_DIR COHORT_DIR [--task mitosis] [--column mitoses]
MODEL_DIR: `nic output P.yaml ENCODER`; GRIDS_DIR: `nic output P.yaml COMPRESSOR grids`.
"""
import argparse
import csv
import json

import numpy as np
import zarr
from safetensors.numpy import load_file
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("model")
parser.add_argument("grids")
parser.add_argument("cohort")
parser.add_argument("--task", default="mitosis", help="the binary task head to apply")
parser.add_argument("--column", default="mitoses", help="patch_truth.csv column counting the task's objects")
args = parser.parse_args()

weights = load_file(f"{args.model}/heads.safetensors")
w, b = weights[f"heads.{args.task}.0.weight"][0], weights[f"heads.{args.task}.0.bias"][0]
info = json.load(open(f"{args.grids}/gridset.json"))
size = info["size"]
patient_of = {r["slide"]: r for r in csv.DictReader(open(f"{args.cohort}/labels.csv"))}
truth = {(r["slide"], int(float(r["x"])) // size, int(float(r["y"])) // size): r
         for r in csv.DictReader(open(f"{args.cohort}/patch_truth.csv"))}

probability, holds, tumour = [], [], []
per_patient = {}
grids = {}
for slide in info["slides"]:
    stem = slide["stem"]
    codes = zarr.open_array(f"{args.grids}/grids/{stem}/o0")[:].astype(np.float32)
    mask = zarr.open_array(f"{args.grids}/grids/{stem}/mask")[:] > 0
    p = 1 / (1 + np.exp(-(codes @ w + b)))
    grids[stem] = p
    counts = per_patient.setdefault(patient_of[stem]["patient"], [0, 0])
    counts[0] += int((p[mask] > 0.5).sum())
    counts[1] += int(mask.sum())
    for row, column in zip(*np.nonzero(mask)):
        t = truth.get((stem, column, row))
        if t is None:
            continue
        probability.append(p[row, column])
        holds.append(int(t[args.column]) > 0)
        tumour.append(float(t["tumour"]) > 0.5)
probability, holds, tumour = np.array(probability), np.array(holds), np.array(tumour)
print(f"{len(holds)} tissue cells, {holds.sum()} holding a '{args.task}' object")
print(f"per-cell AUC: all cells {roc_auc_score(holds, probability):.3f}, "
      f"tumour cells {roc_auc_score(holds[tumour], probability[tumour]):.3f}; "
      f"cells without one called positive (p > 0.5): {(probability[~holds] > 0.5).mean():.3f}")

print("annotated positives by distance of the object from its cell's centre:")
by_offset = {}
for r in csv.DictReader(open(f"{args.cohort}/patches.csv")):
    if r["task"] != args.task or r["label"] != "1" or r["slide"] not in grids:
        continue
    x, y = int(r["x"]), int(r["y"])
    column, row = x // size, y // size
    p = grids[r["slide"]]
    if row >= p.shape[0] or column >= p.shape[1]:
        continue
    offset = max(abs(x - (size * column + size // 2)), abs(y - (size * row + size // 2)))
    by_offset.setdefault(offset * 8 // size, []).append(p[row, column])
for k in sorted(by_offset):
    v = np.array(by_offset[k])
    print(f"  {k * size // 8:3d}-{(k + 1) * size // 8 - 1:3d} px: {len(v):5d} cells, mean p {v.mean():.3f}, found (p > 0.5) {(v > 0.5).mean():.3f}")

score = {r["patient"]: float(r["score"]) for r in patient_of.values() if r.get("score")}
patients = sorted(p for p in per_patient if p in score)
rate = [per_patient[p][0] / max(per_patient[p][1], 1) for p in patients]
print(f"patients' confident-cell rate vs score: Spearman {spearmanr(rate, [score[p] for p in patients])[0]:.3f} ({len(patients)} patients)")
