#!/usr/bin/env bash
# The Slurm executor's own overhead on the local one-node Slurm (scripts/slurm-local.sh, root): a
# node of N no-op items (the test node type `split`, through nic-testkit) as one job array, against
# the same pipeline on the local executor. Prints seconds from start to all committed, and the
# sbatch and squeue calls the driver made (squeue grows with polling rounds, not with jobs).
# Usage: bench/slurm/run.sh [N items, default 1000] [poll_seconds, default 5]
set -euo pipefail
N=${1:-1000}
POLL=${2:-5}
cd "$(dirname "$0")/../.."
swift build --product nic-testkit >/dev/null
KIT=$PWD/.build/debug/nic-testkit
scripts/slurm-local.sh >/dev/null
work=$(mktemp -d /tmp/nic-slurm-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
words=$(seq -f "w%g" "$N" | tr '\n' ' ')
cat > "$work/p.yaml" <<YAML
pipeline: slurm-bench
nodes:
  w: {type: emit, params: {value: "${words% }"}}
  s: {type: emit, params: {value: "!"}}
  items: {type: split, in: {words: w, suffix: s}}
YAML
printf 'slurm:\n  cpus: 1\n  mem: 100M\n  time: 10m\n  poll_seconds: %s\n  max_array_size: 1000\n' "$POLL" > "$work/ex.yaml"
load=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s.%N)
"$KIT" run "$work/p.yaml" --cache "$work/local" --runs "$work/runs" --quiet > /dev/null
t1=$(date +%s.%N)
"$KIT" run "$work/p.yaml" --executor slurm --executor-config "$work/ex.yaml" --cache "$work/slurm" --runs "$work/runs" > "$work/slurm.out" 2>&1 \
    || { tail -20 "$work/slurm.out"; exit 1; }
t2=$(date +%s.%N)
usage=$(grep '^slurm: ' "$work/slurm.out" | tail -1)
printf 'N=%d items, poll_seconds %s, load before %s, after %s, %d cores\n' "$N" "$POLL" "$load" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)"
printf 'local executor: %6.1f s\n' "$(echo "$t1 - $t0" | bc)"
printf 'slurm executor: %6.1f s   (%s)\n' "$(echo "$t2 - $t1" | bc)" "${usage#slurm: }"
printf 'ratio slurm/local: %.0f×\n' "$(echo "($t2 - $t1) / ($t1 - $t0)" | bc -l)"
