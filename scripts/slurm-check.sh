#!/usr/bin/env bash
# The Slurm executor on a real one-node Slurm (scripts/slurm-local.sh): a pipeline run with
# `--executor slurm` commits the same cache keys, the same bytes and the same metrics as the local
# executor; a rerun submits nothing; a failing node names its job and log; a cancelled job fails its
# node; a driver stopped with SIGTERM cancels its jobs. Needs root (it starts Slurm) and a built nic.
set -euo pipefail
NIC=${NIC:-.build/debug/nic}
cd "$(dirname "$0")/.."
root=$PWD
scripts/slurm-local.sh
work=$(mktemp -d /tmp/nic-slurm-check.XXXXXX)   # on this one machine /tmp is the "shared" file system
trap 'rm -rf "$work"' EXIT
fail() { echo "slurm-check: FAILED: $*" >&2; exit 1; }
cat > "$work/nic.executor.yaml" <<CONF
slurm:
  cpus: 1
  mem: 512M
  time: 10m
  poll_seconds: 1
CONF

echo "slurm-check: engine-tour, local then Slurm"
"$NIC" run pipelines/engine-tour.yaml --cache "$work/local" --runs "$work/runs-local" --quiet >/dev/null
"$NIC" run pipelines/engine-tour.yaml --executor slurm --executor-config "$work/nic.executor.yaml" \
    --cache "$work/slurm" --runs "$work/runs-slurm" > "$work/slurm.out" 2>&1 || { cat "$work/slurm.out"; fail "the Slurm run failed"; }
# The same entries (keys) with the same bytes (manifests differ only in their times).
digest() { (cd "$1/objects" && find . -type f ! -name manifest.json | LC_ALL=C sort | xargs sha256sum); }
diff <(digest "$work/local") <(digest "$work/slurm") > /dev/null || fail "the Slurm run's cache differs from the local run's"
entries=$(digest "$work/slurm" | wc -l)
diff <("$NIC" metrics pipelines/engine-tour.yaml --csv --cache "$work/local") \
     <("$NIC" metrics pipelines/engine-tour.yaml --csv --cache "$work/slurm") || fail "metrics differ"
record=$(ls -d "$work"/runs-slurm/*/ | head -1)
python3 - "$record/run.json" <<'PY' || fail "run.json lacks the jobs"
import json, sys
run = json.load(open(sys.argv[1]))
nodes = run["nodes"]
done = [n for n in nodes.values() if n["status"] == "done"]
assert done and all(n.get("job", {}).get("id") and n["job"]["state"] == "COMPLETED" for n in done), nodes
assert len({n["job"]["id"] for n in done}) == len(done), "one job per node"
print(f"slurm-check: {len(done)} nodes ran as {len(done)} Slurm jobs, all COMPLETED")
PY
echo "slurm-check: same keys and bytes ($entries files) and the same metrics as the local executor"

echo "slurm-check: a rerun submits nothing"
"$NIC" run pipelines/engine-tour.yaml --executor slurm --executor-config "$work/nic.executor.yaml" \
    --cache "$work/slurm" --runs "$work/runs-slurm2" > "$work/rerun.out" 2>&1 || { cat "$work/rerun.out"; fail "the rerun failed"; }
grep -q "0 to run" "$work/rerun.out" || fail "the rerun planned work"
! grep -Eq "Slurm job [0-9]+" "$work/rerun.out" || fail "the rerun submitted jobs"

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
wait_for_job() {  # the id of the first job of the run in $1, once squeue lists it
    for _ in $(seq 1 60); do
        local id
        id=$(squeue --noheader --format='%i %j' | awk -v run="$1" '$2 ~ run {print $1; exit}')
        [[ -n $id ]] && { echo "$id"; return 0; }
        sleep 0.5
    done
    return 1
}
"$NIC" run "$work/fail.yaml" --executor slurm --executor-config "$work/held.yaml" --cache "$work/held-cache" \
    --runs "$work/runs-cancel" > "$work/cancel.out" 2>&1 &
driver=$!
job=$(wait_for_job nic-) || fail "the held job never showed in squeue"
scancel "$job"
if wait "$driver"; then fail "the run passed with its job cancelled"; fi
grep -Eq "Slurm job $job was cancelled \(log .*subjects-$job\.log\): it ended without an exit record" "$work/cancel.out" \
    || { cat "$work/cancel.out"; fail "the cancelled job is not reported"; }

"$NIC" run "$work/fail.yaml" --executor slurm --executor-config "$work/held.yaml" --cache "$work/held-cache" \
    --runs "$work/runs-term" > "$work/term.out" 2>&1 &
driver=$!
job=$(wait_for_job nic-) || fail "the held job never showed in squeue"
kill -TERM "$driver"
status=0; wait "$driver" || status=$?
[[ $status == 130 ]] || { cat "$work/term.out"; fail "the driver exited with $status after SIGTERM, expected 130"; }
sleep 1
state=$(squeue --noheader --states=all --jobs="$job" --format=%T 2>/dev/null || true)
[[ -z $state || $state == CANCELLED ]] || fail "job $job is still $state after its driver was stopped"
echo "slurm-check: 5 passed, 0 failed"
