#!/usr/bin/env bash
# Installs what nic needs on Debian: system libraries (apt-get, when root) and, with --python, a venv
# outside the repository with the Python packages the interoperability checks use; --torch adds
# PyTorch for regenerating the parity fixtures (`make parity`, `make parity-fixtures`; not part of
# `make test`, which checks nic against the stored fixtures). Every package comes from Debian's archive
# or PyPI by name: nothing else is reachable from a fresh machine.
set -euo pipefail

SYSTEM_PACKAGES=(libzstd-dev pkg-config libopenblas-dev libopenslide-dev libtiff-dev libhdf5-dev zlib1g-dev openslide-tools)
# Only for tests: the report is checked in a real browser.
TEST_PACKAGES=(chromium chromium-driver)
PYTHON_PACKAGES=(numpy "zarr>=3" selenium h5py shapely geojson)
VENV="${NIC_VENV:-$HOME/.cache/nic/venv}"

wanted=("${SYSTEM_PACKAGES[@]}")
[ "${1:-}" = "--python" ] && wanted+=("${TEST_PACKAGES[@]}")
[ "${1:-}" = "--torch" ] && wanted+=(python3-venv)
missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ]; then
        echo "deps: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "deps: missing system packages: ${missing[*]}" >&2
        echo "deps: install them with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

if [ "${1:-}" = "--python" ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        echo "deps: creating Python venv at $VENV"
        python3 -m venv "$VENV"
    fi
    if ! "$VENV/bin/python" -c "import zarr, numpy, google_crc32c, selenium, h5py, shapely, geojson" 2>/dev/null; then
        echo "deps: installing ${PYTHON_PACKAGES[*]} into $VENV"
        "$VENV/bin/pip" install -q "${PYTHON_PACKAGES[@]}"
    fi
fi

if [ "${1:-}" = "--torch" ]; then
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    if ! "$VENV/bin/python" -c "import torch, safetensors, yaml, numpy" 2>/dev/null; then
        # PyPI's Linux wheel of torch brings its CUDA libraries (several GB, minutes); the CPU-only
        # wheels live on an index a fresh machine cannot reach. Only the parity targets need it.
        echo "deps: installing PyTorch (PyPI; several GB with its CUDA libraries), safetensors, pyyaml into $VENV"
        "$VENV/bin/pip" install -q torch safetensors pyyaml numpy
    fi
fi
