#!/usr/bin/env bash
# `make test` as on a new user's machine: a clean clone of HEAD run with HOME, XDG caches, pip's cache,
# the venv (NIC_VENV) and the test data (NIC_TEST_DATA) in an empty temporary folder, no standard
# input, CI=true — so nothing that an earlier run installed under a home folder is found. What it
# cannot reset: Debian packages already installed system-wide (deps.sh and slurm-local.sh install
# the missing ones with apt-get) and the Swift toolchain with its package mirror.
#
#     scripts/test-fresh.sh [--keep]      # --keep leaves the folder for a look afterwards
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work=$(mktemp -d /tmp/nic-fresh.XXXXXX)
[ "${1:-}" = "--keep" ] || trap 'rm -rf "$work"' EXIT
git clone -q --no-local "$root" "$work/nic"
mkdir -p "$work/home"
start=$(date +%s)
set +e
(
    cd "$work/nic"
    env -u NIC_VENV -u NIC_TEST_DATA -u XDG_CONFIG_HOME -u PIP_CONFIG_FILE \
        HOME="$work/home" XDG_CACHE_HOME="$work/home/.cache" PIP_NO_INPUT=1 CI=true \
        bash .ci/run </dev/null
) 2>&1 | tee "$work/log"
status=${PIPESTATUS[0]}
set -e
seconds=$(( $(date +%s) - start ))
echo "test-fresh: $( [ "$status" = 0 ] && echo passed || echo "FAILED (exit $status)" ) in $((seconds / 60)) min $((seconds % 60)) s;" \
     "fresh HOME at $work/home ($(du -sh "$work/home" | cut -f1) downloaded or built there)"
exit "$status"
