#!/usr/bin/env bash
# libFuzzer on nic's parsers of untrusted files (Tests/Fuzz): builds the harnesses with
# -sanitize=fuzzer,address (every Swift module instrumented), then runs each for FUZZ_SECONDS
# (default 60) from its committed seed corpus plus what earlier runs found (.build/fuzz-corpus).
# Prints executions, coverage and corpus size per harness; exits 1 on a crash, leak, timeout or
# out-of-memory, leaving the input in Tests/Fuzz/.build/fuzz-artifacts/ (add it to the seed
# corpus once fixed, so it stays fixed).
#   make fuzz FUZZ_SECONDS=600            all six (hdf5: FUZZ_TARGETS=hdf5)
#   FUZZ_TARGETS="zarr csv" make fuzz     some
set -euo pipefail
seconds=${FUZZ_SECONDS:-60}
# hdf5 is not in the default set: libhdf5 itself allocates what a hostile header declares (4 GiB
# from a 1 KiB file, beyond -malloc_limit_mb), which nic cannot bound; run it with FUZZ_TARGETS=hdf5.
targets=${FUZZ_TARGETS:-spec csv zarr safetensors geojson asap}
cd "$(dirname "$0")/../Tests/Fuzz"
swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library 2>&1 | grep -E "error|warning: unre|Compiling fuzz|Build" || true
test -x .build/release/fuzz-spec || { echo "fuzz: build failed"; exit 1; }
mkdir -p .build/fuzz-artifacts
status=0
printf '%-12s %12s %9s %8s %9s %s\n' harness executions exec/s cov features corpus
for name in $targets; do
    work=.build/fuzz-corpus/$name
    log=.build/fuzz-$name.log
    mkdir -p "$work"
    # ASan's leak check is off: the harnesses run in one process for millions of inputs and
    # Foundation keeps caches that look like leaks; crashes, overflows and traps are what we look for.
    if ASAN_OPTIONS=detect_leaks=0 .build/release/fuzz-$name "$work" "corpus/$name" -max_total_time="$seconds" \
        -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix=.build/fuzz-artifacts/$name- >"$log" 2>&1; then
        done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
        execs=$(sed -nE 's/^stat::number_of_executed_units:[[:space:]]+([0-9]+)/\1/p' "$log")
        per_second=$(sed -nE 's/^stat::average_exec_per_sec:[[:space:]]+([0-9]+)/\1/p' "$log")
        cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$done_line")
        ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$done_line")
        corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$done_line")
        printf '%-12s %12s %9s %8s %9s %s\n' "$name" "$execs" "$per_second" "$cov" "$ft" "$corp"
    else
        status=1
        echo "fuzz-$name FAILED (log: Tests/Fuzz/$log):"
        grep -E 'ERROR|Fatal error|SUMMARY|Test unit written|deadly signal' "$log" | head -10
    fi
done
exit $status
