#!/usr/bin/env bash
# One bag of 200k instances through the gated-attention bag model: nic (chunked, online softmax) and
# PyTorch (the whole bag at once, as CLAM does), alternating, each in a fresh process. Prints the time,
# the peak RSS and the RSS growth over the process's start-up (torch's import alone is ~300 MB).
#   bench/mil/run.sh [CELLS] [ROUNDS]      (needs make parity's venv: CPU torch)
set -euo pipefail
cd "$(dirname "$0")/../.."
CELLS="${1:-200000}"; ROUNDS="${2:-3}"
VENV="${NIC_VENV:-$HOME/.cache/nic/venv}"
scripts/deps.sh --torch >/dev/null
swift build -c release --product nic >/dev/null
for round in $(seq "$ROUNDS"); do
    .build/release/nic doctor bag --cells "$CELLS" | grep -v '^JSON'
    THREADS=2 "$VENV/bin/python" bench/mil/torch_bag.py "$CELLS" | grep -v '^JSON'
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
