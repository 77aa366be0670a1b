#!/usr/bin/env python3
"""Generates the committed reference fixtures of Tests/SlidesTests/Fixtures (run once; tests never call Python).

* hed_reference.bin / hed_reference.json: real pixels of the Aperio CMU-1 Small Region slide and
  scikit-image's rgb2hed of them, hed2rgb of those stains, and hed2rgb of stains perturbed with fixed
  (alpha, beta) — the HED augmentation of Tellez et al. The .bin holds, per pixel, little-endian
  float64: r, g, b (0..255), h, e, d, r', g', b' (hed2rgb, 0..1), r'', g'', b'' (perturbed, 0..1).
* openslide_region_*.rgba: regions decoded from `openslide-write-png` (openslide-tools, the reference
  reader) as raw RGBA bytes (non-premultiplied, alpha 0 outside the slide).

Usage (a venv outside the repo):
    python3 -m venv ~/.cache/nic/venv-ref
    ~/.cache/nic/venv-ref/bin/pip install scikit-image numpy pillow
    ~/.cache/nic/venv-ref/bin/python scripts/hed_fixture.py ~/.cache/nic/data/CMU-1-Small-Region.svs
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image
import skimage
from skimage.color import hed2rgb, rgb2hed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "SlidesTests", "Fixtures")

# (x, y, width, height) in level-0 pixels; HED regions: epidermis (haematoxylin-rich) and a stroma
# strand against glass (eosin and background); OpenSlide regions: one inside, one across the corner.
HED_REGIONS = [(1200, 1700, 32, 32), (560, 1050, 32, 32)]
OPENSLIDE_REGIONS = {"inside": (1000, 1200, 96, 96), "corner": (2180, 2930, 64, 64)}
ALPHA = np.array([1.1, 0.9, 1.05])
BETA = np.array([0.02, -0.03, 0.01])


def read_region(slide, x, y, w, h):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "region.png")
        subprocess.run(["openslide-write-png", slide, str(x), str(y), "0", str(w), str(h), path], check=True)
        return np.asarray(Image.open(path).convert("RGBA"))


def main():
    slide = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    meta = {"skimage": skimage.__version__, "slide": os.path.basename(slide), "hed_regions": HED_REGIONS,
            "alpha": ALPHA.tolist(), "beta": BETA.tolist(), "openslide_regions": {}}
    rows = []
    for (x, y, w, h) in HED_REGIONS:
        rgba = read_region(slide, x, y, w, h)
        assert (rgba[..., 3] == 255).all(), "HED regions must lie inside the slide"
        rgb = rgba[..., :3]
        hed = rgb2hed(rgb)
        back = hed2rgb(hed)
        perturbed = hed2rgb(hed * ALPHA + BETA)
        rows.append(np.concatenate([rgb.reshape(-1, 3).astype(np.float64), hed.reshape(-1, 3),
                                    back.reshape(-1, 3), perturbed.reshape(-1, 3)], axis=1))
    table = np.concatenate(rows, axis=0).astype("<f8")
    table.tofile(os.path.join(OUT, "hed_reference.bin"))
    meta["pixels"] = int(table.shape[0])
    for name, (x, y, w, h) in OPENSLIDE_REGIONS.items():
        rgba = read_region(slide, x, y, w, h)
        rgba.astype(np.uint8).tofile(os.path.join(OUT, f"openslide_region_{name}.rgba"))
        meta["openslide_regions"][name] = [x, y, w, h]
    with open(os.path.join(OUT, "hed_reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(f"wrote {table.shape[0]} HED pixels and {len(OPENSLIDE_REGIONS)} OpenSlide regions to {OUT}")


if __name__ == "__main__":
    main()
