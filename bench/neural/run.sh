#!/usr/bin/env bash
# nic vs PyTorch (CPU, same threads) in the same run, on the NIC encoder and the patient CNN.
#   bench/neural/run.sh [--threads N] [--rounds R] [--no-patient]
# Needs a release build of nic (swift build -c release) and a venv with torch, numpy, safetensors,
# pyyaml ($NIC_REF_VENV, default ~/.cache/nic/venv-ref). Rounds alternate nic and PyTorch so that
# load from other processes hits both alike; each side keeps its best time.
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=2 ROUNDS=2 PATIENT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) THREADS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --no-patient) PATIENT="--no-patient"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
NIC="${NIC:-.build/release/nic}"
PY="${NIC_REF_VENV:-$HOME/.cache/nic/venv-ref}/bin/python"
[[ -x "$NIC" ]] || { echo "build nic first: swift build -c release --product nic (or set NIC=...)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS: nic" >&2
  OMP_NUM_THREADS=$THREADS "$NIC" doctor bench --threads "$THREADS" ${PATIENT:+--no-patient} | tee -a "$tmp/nic.log" >&2
  for fmt in "" "--channels-last"; do
    echo "round $r/$ROUNDS: PyTorch ${fmt:-(NCHW)}" >&2
    OMP_NUM_THREADS=$THREADS "$PY" bench/neural/torch_bench.py --threads "$THREADS" $PATIENT $fmt | tee -a "$tmp/torch.log" >&2
  done
done
"$PY" - "$tmp/nic.log" "$tmp/torch.log" <<'PY'
import json, sys
def runs(path):
    return [json.loads(l[5:]) for l in open(path) if l.startswith("JSON ")]
nic, torch = runs(sys.argv[1]), runs(sys.argv[2])
peak = max(r["sgemm_peak_gflops"] for r in nic)
flop = {"encoder inference (batch 256)": 256 * 90.0e6, "encoder training step (batch 64)": 3 * 64 * 90.0e6}
items = {"encoder inference (batch 256)": 256, "encoder training step (batch 64)": 64, "patient CNN training step (16×400×400×128)": 16}
goal = {"encoder inference (batch 256)": 2.0, "encoder training step (batch 64)": 1.5, "patient CNN training step (16×400×400×128)": 1.0}
print(f"\nPyTorch {torch[0]['torch']}, {torch[0]['threads']} threads (best of NCHW and channels_last); nic sgemm peak {peak:.0f} GFLOP/s")
print(f"| benchmark | nic s | PyTorch s | nic / PyTorch speed | goal | nic items/s | PyTorch items/s |")
print(f"|---|---|---|---|---|---|---|")
for name in items:
    ns = [r[name] for r in nic if name in r]
    ts = [r[name] for r in torch if name in r]
    if not ns or not ts:
        continue
    n, t = min(ns), min(ts)
    ratio = t / n
    print(f"| {name} | {n:.4f} | {t:.4f} | {ratio:.2f}× | ≥ {goal[name]}× {'met' if ratio >= goal[name] else 'MISSED'} | {items[name]/n:.1f} | {items[name]/t:.1f} |")
n = min(r["encoder inference (batch 256)"] for r in nic)
eff = flop["encoder inference (batch 256)"] / n / 1e9
print(f"\nencoder inference: {eff:.1f} GFLOP/s = {100*eff/peak:.0f} % of nic's measured sgemm peak (goal ≥ 50 %)")
PY
