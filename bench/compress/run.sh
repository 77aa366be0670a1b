#!/usr/bin/env bash
# The compressor on a ≥ 1 Gpx slide against the bound its two halves allow on the same cores,
# 1 / (1/encode + 1/read), both measured in the same run (`nic bench compress-bound`), alternated
# with the compressor; plus the compressor's peak RSS and its time split (time.json).
#   bench/compress/run.sh [SIZE] [ROUNDS]     (default 32768 px a side at 0.5 µm/px: 1.07 Gpx)
# The slide is written once by `nic synth` to $NIC_BENCH_DIR (default /tmp/nic-bench-compress); the
# encoder is the paper's nic-encoder trained for one short epoch (its speed does not depend on its weights).
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE="${1:-32768}"; ROUNDS="${2:-2}"
NIC="$(realpath "${NIC:-.build/release/nic}")"
OUT="${NIC_BENCH_DIR:-/tmp/nic-bench-compress}"
mkdir -p "$OUT"
COHORT="$OUT/cohort-$SIZE"
if [[ ! -f "$COHORT/labels.csv" ]]; then
  /usr/bin/time -f "synth: %e s" "$NIC" synth --force --out "$COHORT" --patients 1 --size "$SIZE" --second-slide-probability 0 --annotations 40
fi
SLIDE="$(ls "$COHORT"/slides/*.tif | head -1)"
rm -rf "$OUT/nodes"; cp -r nodes "$OUT/nodes"
cd "$OUT"
pipeline() {  # round → pipeline file (a distinct `previews` per round forces a fresh compression with the same work)
  cat > "pipeline-$1.yaml" <<YAML
pipeline: bench-compress
inputs:
  cohort:      {kind: slides, dir: $COHORT/slides, pattern: "*.tif", labels: $COHORT/labels.csv}
  annotations: {kind: table, path: $COHORT/patches.csv}
nodes:
  tiles: {type: tile_sampler, in: {slides: cohort, annotations: annotations}, params: {mode: training, per_task: 32, seed: 1}}
  enc: {type: encoder, in: {patches: tiles}, params: {architecture: nodes/encoders/nic-encoder.yaml, epochs: 1, batch_size: 16}}
  grids: {type: compressor, in: {slides: cohort, encoder: enc}, params: {mpp: 0.5, previews: $((1 + $1))}}
YAML
  echo "pipeline-$1.yaml"
}
"$NIC" run "$(pipeline 0)" --cache cache --runs runs --quiet >/dev/null  # the encoder, once
MODEL="$("$NIC" output pipeline-0.yaml enc --cache cache)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; slide $(basename "$SLIDE")" >&2
for r in $(seq "$ROUNDS"); do
  p="$(pipeline "$r")"
  /usr/bin/time -f "%M" -o "rss-$r" "$NIC" run "$p" --cache cache --runs runs --quiet >/dev/null
  cp "$("$NIC" output "$p" grids --cache cache)/time.json" "time-$r.json"
  echo "round $r compressor: $(tr -d '\n ' < "time-$r.json"), peak RSS $(cat "rss-$r") KB" >&2
  "$NIC" bench compress-bound --slide "$SLIDE" --model "$MODEL" | tee "bound-$r.txt" >&2
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$ROUNDS" <<'PY'
import json, sys
rounds = int(sys.argv[1])
rows = []
for r in range(1, rounds + 1):
    t = json.load(open(f"time-{r}.json"))
    b = json.loads([l for l in open(f"bound-{r}.txt") if l.startswith("JSON ")][0][5:])
    rss = int(open(f"rss-{r}").read().split()[-1]) / 1024
    rate = t["patches"] / t["total_s"]
    rows.append((rate, b["bound_per_s"], rss, t))
    print(f"round {r}: compressor {rate:.0f} patches/s ({t['patches']} in {t['total_s']:.1f} s: tissue {t['tissue_s']:.1f} s, first encode at {t['first_encode_s']:.1f} s, "
          f"reading {t['reading_s']:.1f} s, waited for tiles {t['waiting_for_tiles_s']:.1f} s, encoding {t['encoding_s']:.1f} s, writing {t['writing_s']:.1f} s, "
          f"most threads {t['most_threads']}); bound {b['bound_per_s']:.0f} (read {b['read_per_s']:.0f}/s, encode {b['encode_per_s']:.0f}/s); "
          f"{100 * rate / b['bound_per_s']:.0f} % of the bound; peak RSS {rss:.0f} MB")
best = max(rows, key=lambda x: x[0] / x[1])
print(f"best: {100 * best[0] / best[1]:.0f} % of 1/(1/encode + 1/read) (goal ≥ 85 %), peak RSS {max(r[2] for r in rows):.0f} MB (goal < 1024)")
PY
