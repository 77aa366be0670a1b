#!/usr/bin/env bash
# Installs what nic needs on Debian: system libraries (apt-get, when root) and, with --python, a venv
# outside the repository with the Python packages the interoperability checks use; --torch adds the
# CPU build of PyTorch for the parity checks (scripts/parity_*.py).
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
        echo "deps: installing CPU PyTorch, safetensors, pyyaml into $VENV"
        "$VENV/bin/pip" install -q torch --index-url https://download.pytorch.org/whl/cpu
        "$VENV/bin/pip" install -q safetensors pyyaml numpy
    fi
fi
