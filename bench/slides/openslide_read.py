#!/usr/bin/env python3
"""Reads the tiles listed by `nic synth --read-benchmark` (bench-tiles.csv) with openslide-python,
the way Python pipelines do (read_region + RGBA→RGB numpy array), and prints tiles per second.

--system-lib makes openslide-python use the system libopenslide (the one nic links) instead of the
openslide-bin wheel, so both readers decode with the same library version.
"""
import argparse
import csv
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("tiles", help="bench-tiles.csv (slide,x,y,size)")
parser.add_argument("--system-lib", action="store_true")
args = parser.parse_args()
if args.system_lib:
    sys.modules["openslide_bin"] = None  # makes `import openslide_bin` fail: openslide falls back to the system library

import numpy as np
import openslide

rows = list(csv.DictReader(open(args.tiles)))
by_slide = {}
for r in rows:
    by_slide.setdefault(r["slide"], []).append((int(r["x"]), int(r["y"]), int(r["size"])))
for path, tiles in by_slide.items():
    slide = openslide.OpenSlide(path)
    start = time.perf_counter()
    checksum = 0
    for x, y, size in tiles:
        tile = np.asarray(slide.read_region((x, y), 0, (size, size)).convert("RGB"))
        checksum += int(tile[64, 64, 0])
    seconds = time.perf_counter() - start
    print(f"openslide-python {openslide.__library_version__} {path.split('/')[-1]}: {len(tiles)} tiles, 1 thread: "
          f"{seconds:.2f} s, {len(tiles) / seconds:.0f} tiles/s (checksum {checksum})")
