#!/usr/bin/env bash
# The Slurm executor on a real one-node Slurm (scripts/slurm-local.sh): a pipeline run with
# `--executor slurm` commits the same cache keys, the same content and the same metrics as the local
# executor; a compressor's slides go out as job arrays and an added slide as one task; a rerun submits
# nothing; a failing node names its job and log; a cancelled job fails its node; a driver stopped with
# SIGTERM cancels its jobs. Needs root (it starts Slurm) and a built nic.
set -euo pipefail
NIC=${NIC:-.build/debug/nic}
cd "$(dirname "$0")/.."
root=$PWD
scripts/slurm-local.sh
work=$(mktemp -d /tmp/nic-slurm-check.XXXXXX)   # on this one machine /tmp is the "shared" file system
trap 'rm -rf "$work"' EXIT
fail() { echo "slurm-check: FAILED: $*" >&2; exit 1; }
printf 'slurm:\n  cpus: 1\n  mem: 512M\n  time: 10m\n  poll_seconds: 1\n' > "$work/nic.executor.yaml"

# The same entries (keys) with the same content: equal bytes, JSON equal as data (some nodes write
# keys in hash order); manifests and a compressor's time.json hold timings and are left out.
same_cache() {
    python3 - "$1/objects" "$2/objects" <<'PY'
import json, os, sys
def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs if f not in ("manifest.json", "time.json"))
a, b = sys.argv[1], sys.argv[2]
fa, fb = files(a), files(b)
if fa != fb:
    sys.exit(f"different entries or files: {sorted(set(fa) ^ set(fb))[:5]}")
for f in fa:
    x, y = open(os.path.join(a, f), "rb").read(), open(os.path.join(b, f), "rb").read()
    if x != y and not (f.endswith(".json") and json.loads(x) == json.loads(y)):
        sys.exit(f"{f} differs")
print(len(fa))
PY
}

echo "slurm-check: engine-tour, local then Slurm"
"$NIC" run pipelines/engine-tour.yaml --cache "$work/local" --runs "$work/runs-local" --quiet >/dev/null
"$NIC" run pipelines/engine-tour.yaml --executor slurm --executor-config "$work/nic.executor.yaml" \
    --cache "$work/slurm" --runs "$work/runs-slurm" > "$work/slurm.out" 2>&1 || { cat "$work/slurm.out"; fail "the Slurm run failed"; }
files=$(same_cache "$work/local" "$work/slurm") || fail "the Slurm run's cache differs from the local run's"
diff <("$NIC" metrics pipelines/engine-tour.yaml --csv --cache "$work/local") \
     <("$NIC" metrics pipelines/engine-tour.yaml --csv --cache "$work/slurm") || fail "metrics differ"
python3 - "$work"/runs-slurm/*/run.json <<'PY' || fail "run.json lacks the jobs"
import json, sys
nodes = json.load(open(sys.argv[1]))["nodes"]
done = [n for n in nodes.values() if n["status"] == "done"]
assert done and all(n.get("job", {}).get("id") and n["job"]["state"] == "COMPLETED" for n in done), nodes
assert len({n["job"]["id"] for n in done}) == len(done), "one job per node"
print(f"slurm-check: {len(done)} nodes ran as {len(done)} Slurm jobs, all COMPLETED")
PY
echo "slurm-check: same keys and content ($files files) and the same metrics as the local executor"

echo "slurm-check: a rerun submits nothing"
"$NIC" run pipelines/engine-tour.yaml --executor slurm --executor-config "$work/nic.executor.yaml" \
    --cache "$work/slurm" --runs "$work/runs-slurm2" > "$work/rerun.out" 2>&1 || { cat "$work/rerun.out"; fail "the rerun failed"; }
grep -q "0 to run" "$work/rerun.out" || fail "the rerun planned work"
! grep -Eq "Slurm job [0-9]+" "$work/rerun.out" || fail "the rerun submitted jobs"

echo "slurm-check: a lock left by a Slurm job that ended (on another host) is broken, not waited for"
key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nodes"]["stats"]["key"])' "$work"/runs-slurm/*/run.json)
rm -rf "$work/slurm/objects/${key:0:2}/$key"
printf '{"acquired":"2026-01-01T00:00:00Z","host":"gone-node-17","pid":4242,"slurmJob":"999999","token":"planted"}' > "$work/slurm/locks/$key.lock"
timeout 120 "$NIC" run pipelines/engine-tour.yaml --executor slurm --executor-config "$work/nic.executor.yaml" \
    --cache "$work/slurm" --runs "$work/runs-lock" > "$work/lock.out" 2>&1 || { cat "$work/lock.out"; fail "the run with a dead job's lock failed"; }
grep -q "broke the lock on $key: its owner died (Slurm job 999999 is unknown to Slurm" "$work"/runs-lock/*/slurm/stats-*.log \
    || { cat "$work"/runs-lock/*/slurm/stats-*.log; fail "the dead job's lock was not broken with a log line"; }
same_cache "$work/local" "$work/slurm" > /dev/null || fail "the recomputed entry differs"

echo "slurm-check: a compressor's slides go out as job arrays (chunks of max_array_size)"
"$NIC" synth --out "$work/cohort" --patients 4 --size 1024 --seed 1 > /dev/null 2>&1
head -6 "$work/cohort/labels.csv" > "$work/cohort/labels-five.csv"   # P004-1 left out
compress_pipeline() {  # $1: the slides' file pattern, $2 their labels
    cat <<YAML
pipeline: slurm-compress
inputs:
  all:         {kind: slides, dir: $work/cohort/slides, pattern: "*.tif", labels: $work/cohort/labels.csv}
  cohort:      {kind: slides, dir: $work/cohort/slides, pattern: "$1", labels: $2}
  annotations: {kind: table, path: $work/cohort/patches.csv}
nodes:
  tiles:
    type: tile_sampler
    in: {slides: all, annotations: annotations}
    params: {mode: training, mpp: 0.5, size: 64, per_task: 20, seed: 1}
  mean_rgb:
    type: encoder
    in: {patches: tiles}
    params: {architecture: $root/nodes/encoders/mean-rgb.yaml, training: none}
  grids: {type: compressor, in: {slides: cohort, encoder: mean_rgb}, params: {mpp: 0.5, previews: 2}}
YAML
}
printf 'slurm:\n  cpus: 1\n  mem: 1G\n  poll_seconds: 1\n  max_array_size: 3\n' > "$work/arrays.yaml"
# Five of the six slides first (P004-1 left out), then all six: only the added slide goes out again.
compress_pipeline 'P00[1-3]*.tif' "$work/cohort/labels-five.csv" > "$work/five.yaml"
compress_pipeline '*.tif' "$work/cohort/labels.csv" > "$work/six.yaml"
"$NIC" run "$work/five.yaml" --cache "$work/c-local" --runs "$work/runs-c-local" --quiet > /dev/null
"$NIC" run "$work/six.yaml" --cache "$work/c-local" --runs "$work/runs-c-local" --quiet > /dev/null
"$NIC" run "$work/five.yaml" --executor slurm --executor-config "$work/arrays.yaml" --cache "$work/c-slurm" \
    --runs "$work/runs-five" > "$work/five.out" 2>&1 || { cat "$work/five.out"; fail "the Slurm compressor run failed"; }
"$NIC" run "$work/six.yaml" --executor slurm --executor-config "$work/arrays.yaml" --cache "$work/c-slurm" \
    --runs "$work/runs-six" > "$work/six.out" 2>&1 || { cat "$work/six.out"; fail "the Slurm compressor rerun failed"; }
python3 - "$work"/runs-five/*/run.json "$work"/runs-six/*/run.json <<'PY' || fail "the compressor's job arrays are not as expected"
import json, sys
five, six = (json.load(open(f))["nodes"]["grids"] for f in sys.argv[1:3])
sizes = lambda node: [int(a["id"].split("-")[1].rstrip("]")) + 1 for a in node.get("itemArrays", [])]
assert sizes(five) == [3, 2], f"5 slides with max_array_size 3 must go out as arrays of 3 and 2: {five.get('itemArrays')}"
assert all(a["state"] == "COMPLETED" for a in five["itemArrays"] + six["itemArrays"]), five["itemArrays"]
assert sizes(six) == [1], f"one added slide must go out as one array task: {six.get('itemArrays')}"
assert five["job"]["state"] == six["job"]["state"] == "COMPLETED"
print("slurm-check: 5 slides as arrays of 3 + 2 tasks, then the added slide as 1 task; one gather job each")
PY
same_cache "$work/c-local" "$work/c-slurm" > /dev/null || fail "the Slurm compressor's cache differs from the local run's"
grep -Eq "items: arrays [0-9]+_\[0-2\] COMPLETED, [0-9]+_\[0-1\] COMPLETED; Slurm job [0-9]+ COMPLETED" "$work"/runs-five/*/report.html \
    || fail "the HTML report does not show the compressor's arrays and job"
echo "slurm-check: the compressor's items and grids equal the local executor's"

echo "slurm-check: a failing node names its job and log"
cat > "$work/fail.yaml" <<YAML
pipeline: slurm-fail
inputs:
  subjects: {kind: table, path: $root/pipelines/engine-tour/subjects.csv}
nodes:
  stats: {type: describe, in: {table: subjects}, params: {columns: [no_such_column]}}
YAML
if "$NIC" run "$work/fail.yaml" --executor slurm --executor-config "$work/nic.executor.yaml" \
    --cache "$work/slurm" --runs "$work/runs-fail" > "$work/fail.out" 2>&1; then fail "a failing node passed"; fi
grep -Eq "stats: Slurm job [0-9]+ failed \(log $work/runs-fail/.*/slurm/stats-[0-9]+\.log\): param 'columns': no column 'no_such_column'" "$work/fail.out" \
    || { cat "$work/fail.out"; fail "the failure does not name the job, its log and the reason"; }

echo "slurm-check: a job cancelled with scancel fails its node; SIGTERM of the driver cancels its jobs"
# Held jobs stay pending until released: the test decides when they end.
printf 'slurm:\n  cpus: 1\n  mem: 512M\n  poll_seconds: 1\n  sbatch_flags: ["--hold"]\n' > "$work/held.yaml"
wait_for_job() {  # the id of the run's first job (job name nic-<run folder>), once squeue lists it
    for _ in $(seq 1 60); do
        local id
        id=$(squeue --noheader --format='%i %j' | awk -v run="nic-.*$1" '$2 ~ run {print $1; exit}')
        [[ -n $id ]] && { echo "$id"; return 0; }
        sleep 0.5
    done
    return 1
}
"$NIC" run "$work/fail.yaml" --executor slurm --executor-config "$work/held.yaml" --cache "$work/held-cache" \
    --runs "$work/runs-cancel" > "$work/cancel.out" 2>&1 &
driver=$!
job=$(wait_for_job slurm-fail) || fail "the held job never showed in squeue"
scancel "$job"
if wait "$driver"; then fail "the run passed with its job cancelled"; fi
grep -Eq "Slurm job $job was cancelled \(log .*subjects-$job\.log\): it ended without an exit record" "$work/cancel.out" \
    || { cat "$work/cancel.out"; fail "the cancelled job is not reported"; }

echo "slurm-check: --retries 1 submits a cancelled job once more, then reports both"
"$NIC" run "$work/fail.yaml" --executor slurm --executor-config "$work/held.yaml" --cache "$work/held-cache" --retries 1 \
    --runs "$work/runs-retry" > "$work/retry.out" 2>&1 &
driver=$!
first=$(wait_for_job slurm-fail) || fail "the held job never showed in squeue"
scancel "$first"
for _ in $(seq 1 60); do
    second=$(wait_for_job slurm-fail) || fail "the retried job never showed in squeue"
    [[ $second != "$first" ]] && break
    sleep 0.5
done
[[ $second != "$first" ]] || fail "no second job was submitted"
scancel "$second"
if wait "$driver"; then fail "the run passed with both attempts cancelled"; fi
grep -Eq "Slurm job $second was cancelled .*earlier attempts: job $first was cancelled" "$work/retry.out" \
    || { cat "$work/retry.out"; fail "the retry is not reported with both jobs"; }

"$NIC" run "$work/fail.yaml" --executor slurm --executor-config "$work/held.yaml" --cache "$work/held-cache" \
    --runs "$work/runs-term" > "$work/term.out" 2>&1 &
driver=$!
job=$(wait_for_job slurm-fail) || fail "the held job never showed in squeue"
kill -TERM "$driver"
status=0; wait "$driver" || status=$?
[[ $status == 130 ]] || { cat "$work/term.out"; fail "the driver exited with $status after SIGTERM, expected 130"; }
sleep 1
state=$(squeue --noheader --states=all --jobs="$job" --format=%T 2>/dev/null || true)
[[ -z $state || $state == CANCELLED ]] || fail "job $job is still $state after its driver was stopped"

echo "slurm-check: a driver killed with SIGKILL leaves its job; the next run and that job compute each key once"
cat > "$work/ok.yaml" <<YAML
pipeline: slurm-ok
inputs:
  subjects: {kind: table, path: $root/pipelines/engine-tour/subjects.csv}
nodes:
  stats: {type: describe, in: {table: subjects}, params: {columns: [age]}}
YAML
"$NIC" run "$work/ok.yaml" --executor slurm --executor-config "$work/held.yaml" --cache "$work/kill-cache" \
    --runs "$work/runs-killed" > "$work/killed.out" 2>&1 &
driver=$!
orphan=$(wait_for_job slurm-ok) || fail "the held job never showed in squeue"
kill -KILL "$driver"; wait "$driver" 2>/dev/null || true
"$NIC" run "$work/ok.yaml" --executor slurm --executor-config "$work/nic.executor.yaml" --cache "$work/kill-cache" \
    --runs "$work/runs-after" > "$work/after.out" 2>&1 || { cat "$work/after.out"; fail "the run after a killed driver failed"; }
scontrol release "$orphan"
for _ in $(seq 1 60); do
    [[ -s $(echo "$work"/runs-killed/*/slurm/subjects.exit.json) ]] && break
    sleep 0.5
done
python3 - "$work"/runs-killed/*/slurm/subjects.exit.json "$work"/runs-after/*/slurm/subjects.exit.json <<'PY' || fail "a key was computed twice"
import json, sys
orphan, after = (json.load(open(f))["status"] for f in sys.argv[1:3])
assert (orphan, after) == ("cached", "done"), (orphan, after)
print("slurm-check: the orphaned job found the entry the next run committed (cached), nothing computed twice")
PY
echo "slurm-check: 10 passed, 0 failed"
