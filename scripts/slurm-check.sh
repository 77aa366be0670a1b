#!/usr/bin/env bash
# The Slurm executor on a real one-node Slurm (scripts/slurm-local.sh): a pipeline run with
# `--executor slurm` commits the same cache keys, the same content and the same metrics as the local
# executor; a compressor's slides go out as job arrays and an added slide as one task; the NIC chain
# (tiles → encoder → compressor → patient model → evaluator) gives the local keys and metrics; a rerun
# submits nothing; a failing node names its job and log; a cancelled job or array task fails its node
# (naming the slide) and the rerun computes only what is missing; a driver stopped with SIGTERM
# cancels its jobs; the jobs of a driver killed with SIGKILL are adopted by the next run; two drivers
# on one cache compute every key once. Needs root (it starts Slurm) and a built nic and nic-testkit.
set -euo pipefail
NIC=${NIC:-.build/debug/nic}
KIT=${KIT:-.build/debug/nic-testkit}   # nic with the toy node types (they trace what they compute)
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
compress_pipeline() {  # $1: the slides' file pattern, $2 their labels; $3 the cohort (default $work/cohort)
    local cohort=${3:-$work/cohort}
    cat <<YAML
pipeline: slurm-compress
inputs:
  all:         {kind: slides, dir: $cohort/slides, pattern: "*.tif", labels: $cohort/labels.csv}
  cohort:      {kind: slides, dir: $cohort/slides, pattern: "$1", labels: $2}
  annotations: {kind: table, path: $cohort/patches.csv}
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

echo "slurm-check: the NIC chain (tiles → encoder → compressor → patient model → evaluator) on Slurm: the local run's keys, content and metrics"
# A cut of pipelines/nic-tiny.yaml (one encoder, one patient model, few epochs): under Slurm every
# node is a job, and the whole of nic-tiny would take most of CI's time on 2 cores.
"$NIC" synth --out "$work/nic-cohort" --patients 8 --size 1024 --seed 2 > /dev/null 2>&1
{ compress_pipeline '*.tif' "$work/nic-cohort/labels.csv" "$work/nic-cohort"; cat <<YAML
  score:
    type: patient_model
    in: {grids: grids}
    params: {architecture: $root/nodes/patient/nic-sepconv-small.yaml, head: $root/nodes/heads/regression.yaml, target: [score], epochs: 2, seed: 4}
  eval_score: {type: evaluator, in: {predictions: score}, params: {bootstrap: 50}}
YAML
} > "$work/nic.yaml"
"$NIC" run "$work/nic.yaml" --cache "$work/nic-local" --runs "$work/runs-nic-local" --quiet > /dev/null
"$NIC" run "$work/nic.yaml" --executor slurm --executor-config "$work/nic.executor.yaml" --cache "$work/nic-slurm" \
    --runs "$work/runs-nic-slurm" > "$work/nic-slurm.out" 2>&1 || { cat "$work/nic-slurm.out"; fail "the NIC chain failed on Slurm"; }
same_cache "$work/nic-local" "$work/nic-slurm" > /dev/null || fail "the NIC chain's cache differs from the local run's"
diff <("$NIC" metrics "$work/nic.yaml" --csv --cache "$work/nic-local") <("$NIC" metrics "$work/nic.yaml" --csv --cache "$work/nic-slurm") \
    || fail "the NIC chain's metrics differ from the local run's"
slides=$(ls "$work"/nic-cohort/slides/*.tif | wc -l)
python3 - "$slides" "$work"/runs-nic-local/*/run.json "$work"/runs-nic-slurm/*/run.json <<'PY' || fail "the NIC chain's Slurm run is not as expected"
import json, sys
slides, local, slurm = int(sys.argv[1]), *(json.load(open(f))["nodes"] for f in sys.argv[2:4])
assert {n: v["key"] for n, v in local.items()} == {n: v["key"] for n, v in slurm.items()}, "different keys"
arrays = slurm["grids"]["itemArrays"]
assert len(arrays) == 1 and arrays[0]["id"].endswith(f"_[0-{slides - 1}]") and arrays[0]["state"] == "COMPLETED", arrays
jobs = {n: v["job"]["id"] for n, v in slurm.items() if v["status"] == "done"}
assert set(jobs) >= {"tiles", "mean_rgb", "grids", "score", "eval_score"}, jobs
print(f"slurm-check: same keys as local; the {slides} slides as one array {arrays[0]['id']}, nodes as jobs {', '.join(f'{n} {j}' for n, j in sorted(jobs.items()))}")
PY
grep -Eq "items +grids +0 queued · 0 running · $slides/$slides done" "$work/nic-slurm.out" || { cat "$work/nic-slurm.out"; fail "no progress line counts the compressor's tasks"; }

echo "slurm-check: scancel of one array task fails the compressor naming the slide, the task and its log; a rerun computes only that slide"
grep -v '^  grids:' "$work/six.yaml" > "$work/encoder-only.yaml"   # the same tiles and encoder entries
"$NIC" run "$work/encoder-only.yaml" --cache "$work/c-cancel" --runs "$work/runs-c-cancel" --quiet > /dev/null
printf 'slurm:\n  cpus: 1\n  mem: 1G\n  poll_seconds: 1\n  sbatch_flags: ["--hold"]\n' > "$work/held-arrays.yaml"
"$NIC" run "$work/six.yaml" --executor slurm --executor-config "$work/held-arrays.yaml" --cache "$work/c-cancel" \
    --runs "$work/runs-c-cancel" > "$work/c-cancel.out" 2>&1 &
driver=$!
for _ in $(seq 1 60); do array=$(squeue --noheader --format='%F %j' | awk '$2 ~ /slurm-compress/ {print $1; exit}'); [[ -n $array ]] && break; sleep 0.5; done
[[ -n $array ]] || fail "the compressor's array never showed in squeue"
scancel "${array}_2"          # the third slide's task ...
scontrol release "$array"     # ... while the others run
if wait "$driver"; then fail "the compressor passed with one of its tasks cancelled"; fi
slide=$(cd "$work/cohort/slides" && ls *.tif | LC_ALL=C sort | sed -n 3p)   # item 2: the third slide in file order
# Slurm forgets a task cancelled before it started (no accounting here): it "left the queue".
grep -Eq "item 2 \($slide\): Slurm job ${array}_2 (was cancelled|left the queue) \(log $work/runs-c-cancel/.*/slurm/grids-${array}_2\.log\)" "$work/c-cancel.out" \
    || { cat "$work/c-cancel.out"; fail "the failure does not name the slide ($slide), the task and its log"; }
"$NIC" run "$work/six.yaml" --executor slurm --executor-config "$work/arrays.yaml" --cache "$work/c-cancel" \
    --runs "$work/runs-c-rerun" > "$work/c-rerun.out" 2>&1 || { cat "$work/c-rerun.out"; fail "the rerun after a cancelled task failed"; }
python3 - "$work"/runs-c-rerun/*/run.json "$work"/runs-c-rerun/*/slurm <<'PY' || fail "the rerun computed more than the missing slide"
import glob, json, os, sys
node = json.load(open(sys.argv[1]))["nodes"]["grids"]
arrays = node["itemArrays"]
assert [a["id"].endswith("_[0-0]") for a in arrays] == [True], arrays
exits = [json.load(open(f)) for f in glob.glob(os.path.join(sys.argv[2], "grids.item-*.exit.json"))]
assert [(e["status"], e["job"]) for e in exits] == [("done", arrays[0]["id"].replace("[0-0]", "0"))], exits
print(f"slurm-check: the rerun computed one slide ({os.path.basename(glob.glob(os.path.join(sys.argv[2], 'grids.item-*.exit.json'))[0])}) as task {exits[0]['job']}")
PY
diff -r -x manifest.json -x time.json "$("$NIC" output "$work/six.yaml" grids --cache "$work/c-local")" \
    "$("$NIC" output "$work/six.yaml" grids --cache "$work/c-cancel")" || fail "after the rerun the grids differ from the local run's"

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

echo "slurm-check: a driver killed with SIGKILL leaves its job; the next run adopts it instead of submitting again"
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
: > "$work/after.out"
"$NIC" run "$work/ok.yaml" --executor slurm --executor-config "$work/nic.executor.yaml" --cache "$work/kill-cache" \
    --runs "$work/runs-after" > "$work/after.out" 2>&1 &
driver=$!
for _ in $(seq 1 60); do grep -q "Slurm job $orphan of an earlier run" "$work/after.out" && break; sleep 0.5; done
grep -q "Slurm job $orphan of an earlier run .* is pending; waiting for it instead of submitting again" "$work/after.out" \
    || { cat "$work/after.out"; fail "the next run did not adopt the pending job"; }
scontrol release "$orphan"
wait "$driver" || { cat "$work/after.out"; fail "the run that adopted the job failed"; }
python3 - "$orphan" "$work"/runs-killed/*/slurm/subjects.exit.json "$work"/runs-after/*/run.json <<'PY' || fail "the adopted job is not as expected"
import json, os, sys
orphan, exit_record, run = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
assert exit_record["status"] == "done", exit_record              # the orphan computed its node ...
job = run["nodes"]["subjects"]["job"]
assert job["id"] == orphan and job.get("adopted") and job["state"] == "COMPLETED", job   # ... for the next run,
own = os.path.join(os.path.dirname(sys.argv[3]), "slurm", "subjects.sbatch")
assert not os.path.exists(own), "the next run submitted the node again"   # which did not submit it again
print(f"slurm-check: job {orphan} of the killed driver computed its node once; the next run adopted it, submitting only the node after it")
PY
[[ -z $(ls "$work/kill-cache/locks/jobs" 2>/dev/null) ]] || fail "job records left behind: $(ls "$work/kill-cache/locks/jobs")"

# The toy node types (nic-testkit) trace each computation to $NIC_TOY_TRACE: counts across processes.
computed_once() {  # $1: the trace file, then the names expected, each exactly once
    python3 - "$@" <<'PY'
import collections, sys
lines = [l.split()[0] for l in open(sys.argv[1])]
counts = collections.Counter(lines)
expected = sys.argv[2:]
twice = {k: v for k, v in counts.items() if v > 1}
assert not twice, f"computed more than once: {twice}"
assert sorted(counts) == sorted(expected), f"computed {sorted(counts)}, expected {sorted(expected)}"
by_job = sum(1 for l in open(sys.argv[1]) if "job=-" not in l)
print(f"{len(lines)} keys computed once each ({by_job} in Slurm jobs, {len(lines) - by_job} in a driver)")
PY
}
toy_pipeline() {  # $1: seconds per item
    cat <<YAML
pipeline: slurm-toy
nodes:
  w: {type: emit, params: {value: "a b c d e f"}}
  s: {type: emit, params: {value: "!"}}
  items: {type: split, in: {words: w, suffix: s}, params: {item_seconds: $1}}
  tail: {type: concat, in: {a: items, b: s}}
YAML
}
toy_keys=(w s "items[a]" "items[b]" "items[c]" "items[d]" "items[e]" "items[f]" items tail)
toy_pipeline 3 > "$work/toy.yaml"

echo "slurm-check: SIGKILL of a driver while its array tasks run; the next run adopts them, each item computed once"
NIC_TOY_TRACE="$work/trace-kill" "$KIT" run "$work/toy.yaml" --executor slurm --executor-config "$work/nic.executor.yaml" \
    --cache "$work/toy-kill" --runs "$work/runs-toy-killed" > "$work/toy-killed.out" 2>&1 &
driver=$!
for _ in $(seq 1 120); do squeue --noheader --array --format='%i %T %j' | grep -q "_[0-9]* RUNNING nic-.*slurm-toy" && break; sleep 0.5; done
squeue --noheader --array --format='%i %T %j' | grep -q "_[0-9]* RUNNING nic-.*slurm-toy" || { cat "$work/toy-killed.out"; fail "no array task ever ran"; }
kill -KILL "$driver"; wait "$driver" 2>/dev/null || true
NIC_TOY_TRACE="$work/trace-kill" "$KIT" run "$work/toy.yaml" --executor slurm --executor-config "$work/nic.executor.yaml" \
    --cache "$work/toy-kill" --runs "$work/runs-toy-after" > "$work/toy-after.out" 2>&1 || { cat "$work/toy-after.out"; fail "the run after the killed driver failed"; }
once=$(computed_once "$work/trace-kill" "${toy_keys[@]}") || { cat "$work/toy-after.out"; fail "an item was computed twice or not at all"; }
echo "slurm-check: killed driver and next run: $once"
grep -Eq "items +[0-9]+ queued · [0-9]+ running · 6/6 done" "$work/toy-after.out" || { cat "$work/toy-after.out"; fail "no progress line counts the adopted tasks"; }
python3 - "$work"/runs-toy-after/*/run.json <<'PY' || fail "the adopted tasks are not recorded"
import json, sys
node = json.load(open(sys.argv[1]))["nodes"]["items"]
arrays = node.get("itemArrays", [])
assert arrays and all(a.get("adopted") and a["state"] == "COMPLETED" for a in arrays), arrays
print(f"slurm-check: the next run adopted {', '.join(a['id'] for a in arrays)} and submitted only the gather job {node['job']['id']}")
PY

echo "slurm-check: two drivers at once on one cache (local + local, Slurm + local): every key computed once"
toy_pipeline 2 > "$work/toy-two.yaml"
for pair in local-local slurm-local; do
    first=${pair%-*}
    NIC_TOY_TRACE="$work/trace-$pair" "$KIT" run "$work/toy-two.yaml" --executor "$first" --executor-config "$work/nic.executor.yaml" \
        --cache "$work/toy-$pair" --runs "$work/runs-$pair-1" > "$work/$pair-1.out" 2>&1 &
    one=$!
    if [[ $first == slurm ]]; then  # the local driver joins while the array's first tasks run
        for _ in $(seq 1 120); do squeue --noheader --array --format='%i %T %j' | grep -q "_[0-9]* RUNNING nic-.*slurm-toy" && break; sleep 0.5; done
    fi
    NIC_TOY_TRACE="$work/trace-$pair" "$KIT" run "$work/toy-two.yaml" --cache "$work/toy-$pair" --runs "$work/runs-$pair-2" > "$work/$pair-2.out" 2>&1 &
    two=$!
    wait "$one" || { cat "$work/$pair-1.out"; fail "$pair: the first driver failed"; }
    wait "$two" || { cat "$work/$pair-2.out"; fail "$pair: the second driver failed"; }
    once=$(computed_once "$work/trace-$pair" "${toy_keys[@]}") || fail "$pair: a key was computed twice or not at all"
    python3 - "$pair" "$work"/runs-$pair-1/*/run.json "$work"/runs-$pair-2/*/run.json <<'PY' || fail "$pair: the two runs disagree"
import json, sys
pair, a, b = sys.argv[1], *(json.load(open(f)) for f in sys.argv[2:4])
assert a["status"] == b["status"] == "done", (a["status"], b["status"])
keys = lambda r: {n: v["key"] for n, v in r["nodes"].items()}
assert keys(a) == keys(b), "different keys"
done = sorted(n for r in (a, b) for n, v in r["nodes"].items() if v["status"] == "done")
print(f"slurm-check: {pair}: both runs done with the same keys; nodes computed by one or the other: {', '.join(done)}")
PY
    echo "slurm-check: $pair: $once"
done

echo "slurm-check: all passed"
