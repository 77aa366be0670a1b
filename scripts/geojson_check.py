"""Checks GeoJSON written by `nic export geojson` from TRIDENT-layout feature files: every file is a
valid FeatureCollection (python-geojson's validator), every polygon valid (shapely), every feature a
QuPath tile with numeric measurements, and the tiles are exactly the patches of the .h5 file (top-left
corner = coords row, side = patch_size_level0, code 0 = features[:, 0] to float16 precision).

    python scripts/geojson_check.py EXPORT_DIR H5_DIR
"""
import glob
import json
import os
import sys

import geojson
import h5py
import numpy as np
from shapely.geometry import shape


def check(path, h5_path):
    with open(path) as f:
        text = f.read()
    collection = geojson.loads(text)
    assert isinstance(collection, geojson.FeatureCollection), f"{path}: not a FeatureCollection"
    assert collection.is_valid, f"{path}: {collection.errors()}"
    with h5py.File(h5_path, "r") as h5:
        coords = h5["coords"][:]
        features = h5["features"][:]
        side = int(h5["coords"].attrs["patch_size_level0"])
    expected = {(int(x), int(y)): features[i, 0] for i, (x, y) in enumerate(coords)}
    seen = set()
    for k, feature in enumerate(json.loads(text)["features"]):
        geometry = shape(feature["geometry"])
        assert geometry.is_valid, f"{path}: feature {k}: invalid polygon"
        props = feature["properties"]
        assert props["objectType"] == "tile", f"{path}: feature {k}: objectType {props['objectType']}"
        assert props["classification"]["name"].startswith("cluster "), f"{path}: feature {k}: {props['classification']}"
        assert all(isinstance(v, (int, float)) for v in props["measurements"].values()), f"{path}: feature {k}: measurements"
        x0, y0, x1, y1 = geometry.bounds
        corner = (int(round(x0)), int(round(y0)))
        assert corner in expected, f"{path}: feature {k}: tile at {corner} is no patch of {h5_path}"
        assert abs((x1 - x0) - side) < 1e-6 and abs((y1 - y0) - side) < 1e-6, f"{path}: feature {k}: side {x1 - x0}"
        assert abs(geometry.area - side * side) < 1e-6
        code0 = props["measurements"]["code 0"]
        assert abs(code0 - expected[corner]) <= max(1e-3, abs(expected[corner]) * 1e-3), f"{path}: feature {k}: code 0 {code0} vs {expected[corner]}"
        seen.add(corner)
    assert seen == set(expected), f"{path}: {len(seen)} tiles for {len(expected)} patches"
    return len(seen)


if __name__ == "__main__":
    export, h5_dir = sys.argv[1], sys.argv[2]
    files = sorted(glob.glob(os.path.join(export, "*.geojson")))
    assert files, f"no .geojson files in {export}"
    tiles = sum(check(p, os.path.join(h5_dir, os.path.basename(p)[:-len(".geojson")] + ".h5")) for p in files)
    print(f"geojson: {len(files)} files, {tiles} tiles valid and on their patches")
