#!/usr/bin/env bash
# How long an unchanged rerun takes: a 200-node pipeline reading a 2 GiB input file. The first run
# hashes the file once; reruns must only stat it (the state file) and find every node cached.
# Usage: bench/engine/rerun.sh [path/to/nic]   (default: .build/release/nic)
set -euo pipefail
NIC="$(realpath "${1:-.build/release/nic}")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir nodes data
head -c $((2 << 30)) /dev/urandom > data/big.bin
printf 'id,x\n1,2\n' > data/t.csv
{
  echo "pipeline: rerun-bench"
  echo "inputs:"
  echo "  big: {kind: files, dir: data, pattern: '*.bin'}"
  echo "  t: {kind: table, path: data/t.csv}"
  echo "nodes:"
  for i in $(seq 1 198); do
    if (( i % 2 )); then echo "  n$i: {type: describe, in: {table: t}, params: {columns: [x]}}"
    else echo "  n$i: {type: join, in: {left: t, right: t}, params: {on: id}}"; fi
  done
} > p.yaml
export NIC_CACHE="$work/cache"
t0=$(date +%s.%N); "$NIC" run p.yaml --quiet >/dev/null; t1=$(date +%s.%N)
echo "first run (hashes 2 GiB, runs 200 nodes): $(echo "$t1 - $t0" | bc) s"
for i in 1 2 3; do
  t0=$(date +%s.%N); out=$("$NIC" run p.yaml --quiet); t1=$(date +%s.%N)
  echo "unchanged rerun $i: $(echo "$t1 - $t0" | bc) s   ($out)"
done
