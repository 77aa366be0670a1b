#!/usr/bin/env bash
# The streaming training loader on a synthetic PatchSet of 200,000 patches of 128 × 128 (written once
# to $NIC_BENCH_DIR, default /tmp/nic-bench-loader, ~6 GB): time to the first batch, the loader alone
# over a whole epoch with the heavy augmentation recipe (patches/s, most patches held decoded), and
# nic-encoder training steps fed by the loader against the same steps on a batch kept in memory (the
# pure step time), alternated; peak RSS of the whole process.
#   bench/training/run.sh [PATCHES] [STEPS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
PATCHES="${1:-200000}"; STEPS="${2:-40}"; ROUNDS="${3:-2}"
NIC="${NIC:-.build/release/nic}"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
/usr/bin/time -f "whole run: %e s wall, peak RSS %M KB" "$NIC" bench loader --patches "$PATCHES" --steps "$STEPS" --rounds "$ROUNDS" \
  --work "${NIC_BENCH_DIR:-/tmp/nic-bench-loader}"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
