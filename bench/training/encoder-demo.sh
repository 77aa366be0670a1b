#!/usr/bin/env bash
# The demo's multi-task encoder node end to end (its 1,800 heavily augmented patches, the paper's
# nic-encoder), an older nic binary against this one, alternated in one run so that load from other
# processes hits both alike. Equal work: a fixed number of epochs, no early stopping.
#   bench/training/encoder-demo.sh OLD_NIC [ROUNDS] [EPOCHS]    (data/demo from `make demo`, or DATA=...)
# Prints each run's encoder seconds (from the run record) and the new/old ratio of the best of each.
set -euo pipefail
cd "$(dirname "$0")/../.."
OLD="$(realpath "$1")"; ROUNDS="${2:-2}"; EPOCHS="${3:-3}"
NEW="$(realpath "${NEW:-.build/release/nic}")"
DATA="$(realpath "${DATA:-data/demo}")"
[[ -f "$DATA/patches.csv" ]] || { echo "no $DATA/patches.csv: run make demo (or set DATA)" >&2; exit 2; }
WORK="$(mktemp -d /tmp/nic-bench-encoder.XXXXXX)"; trap 'rm -rf "$WORK"' EXIT
cp -r nodes "$WORK/nodes"
cat > "$WORK/pipeline.yaml" <<YAML
pipeline: bench-encoder
inputs:
  cohort:      {kind: slides, dir: $DATA/slides, pattern: "*.tif", labels: $DATA/labels.csv}
  annotations: {kind: table, path: $DATA/patches.csv}
nodes:
  tiles: {type: tile_sampler, in: {slides: cohort, annotations: annotations}, params: {mode: training, mpp: 0.5, size: 128, per_task: 600, seed: 1}}
  augmented: {type: augmenter, in: {patches: tiles}, params: {recipe: nodes/augment/heavy.yaml, seed: 2}}
  mtl:
    type: encoder
    in: {patches: augmented}
    params: {architecture: nodes/encoders/nic-encoder.yaml, tasks: {tissue: classification, mitosis: binary, nuclei: regression}, epochs: $EPOCHS, seed: 3}
YAML
cd "$WORK"
run() {  # binary label → the encoder node's seconds
  "$1" run pipeline.yaml --cache cache --runs "runs-$2" --force mtl --quiet >&2
  python3 -c 'import json,sys,glob; r=json.load(open(sorted(glob.glob(sys.argv[1]+"/*/run.json"))[-1])); print(r["nodes"]["mtl"]["seconds"])' "runs-$2"
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
old=(); new=()
for r in $(seq "$ROUNDS"); do
  o=$(run "$OLD" old); echo "round $r old: encoder $o s" >&2; old+=("$o")
  n=$(run "$NEW" new); echo "round $r new: encoder $n s" >&2; new+=("$n")
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "${old[*]}" "${new[*]}" "$EPOCHS" <<'PY'
import sys
old = [float(x) for x in sys.argv[1].split()]; new = [float(x) for x in sys.argv[2].split()]
print(f"encoder node, {sys.argv[3]} epochs: old {min(old):.1f} s, new {min(new):.1f} s (best of {len(old)}); new/old {min(new)/min(old):.2f}, {100*(1-min(new)/min(old)):.0f} % faster")
PY
