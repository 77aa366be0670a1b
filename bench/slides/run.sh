#!/usr/bin/env bash
# Grid-mode tile reading speed (128 px at 0.5 µm/px): nic's Dispatch workers against openslide-python
# reading the same tiles of the same ≥ 20k × 20k pyramidal TIFF, in one run.
#   bench/slides/run.sh [SIZE]        (default 20480; needs ~/.cache/nic/venv-ref with openslide-python)
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE="${1:-20480}"
OUT="${NIC_BENCH_DIR:-/tmp/nic-bench-slides}"
PY="${NIC_VENV_REF:-$HOME/.cache/nic/venv-ref}/bin/python"
swift build -c release --product nic --scratch-path "${SCRATCH:-.build}" >/dev/null
NIC="${SCRATCH:-.build}/release/nic"
rm -rf "$OUT"
/usr/bin/time -f "synth: %e s wall, %M KB max RSS" "$NIC" synth --force --out "$OUT" --patients 1 --size "$SIZE" --second-slide-probability 0 --read-benchmark --threads "$(nproc)"
"$PY" bench/slides/openslide_read.py "$OUT/bench-tiles.csv" --system-lib
"$PY" bench/slides/openslide_read.py "$OUT/bench-tiles.csv"
