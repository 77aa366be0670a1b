"""Writes the HDF5 patch-feature fixtures of the `features` node's tests, in the layouts TRIDENT and CLAM
write (see Sources/NICNodes/Nodes/features.swift for where in their code):

  trident/<slide>.h5      features float32 [N, D], coords int64 [N, 2] (level-0 top-left corners), chunked
                          (1, ...) and resizable like trident/IO.py save_h5; on coords the attributes of
                          IO.coords_to_h5 (patch_size, patch_size_level0, level0/target magnification,
                          overlap, name, savetodir, level0_width/height); on features name, savetodir, encoder
  trident/labels.csv      slide, patient, score (the patient's latent, which feature 0 carries)
  trident/expected/<slide>.csv   x, y, f0..f(D-1) as text: what the GridSet's cells must hold
  clam/<slide>.h5         CLAM's extract_features_fp layout: features float32, coords int32, chunks of 32,
                          no attributes; two tissue contours patched from their own corners (offsets that
                          are not multiples of the patch side)
  bad/*.h5                one defect each: rank3, no_coords, count_mismatch, off_grid, overlap, nan,
                          zero_magnification, negative_magnification, beyond_slide
  blank/                  a TRIDENT run with a blank slide: A, C, E, F.h5 (2 x 2 patches) and B.h5 written as
                          TRIDENT writes a slide whose tissue segmentation found nothing (features [0, D],
                          coords [0, 2] with the usual attributes); labels.csv also lists D, a slide
                          TRIDENT failed on (no file)
  large/L.h5              features beyond float16's range (1e5, -7e4): float32 is kept
  clam_overlap/S2.h5      CLAM, two contours whose own grids put two patches in one cell (nearest)

    python scripts/features_fixture.py Tests/NICNodesTests/Fixtures/features

With --demo, a cohort for pipelines/trident-features.yaml instead: 48 patients, 128 features per patch
(the width of nodes/patient/abmil-gated.yaml), grids of 10-16 cells a side; in about 40 % of a slide's
patches ("tumour", in blobs) features 0-3 carry the patient's score, elsewhere only noise, so an
attention model has something to attend to:

    python scripts/features_fixture.py --demo data/trident-demo
"""
import os
import sys

import h5py
import numpy as np

D = 8
PATCH = 256            # pixels at the target magnification (20x)
LEVEL0_MAG, TARGET_MAG = 40, 20
SIDE = PATCH * LEVEL0_MAG // TARGET_MAG   # 512 level-0 pixels, as coords_to_h5 computes it


def save_h5(path, assets, attributes, chunk_rows=1):
    """The shape of TRIDENT's save_h5 (chunks of one row; resizable first axis)."""
    with h5py.File(path, "w") as f:
        for key, value in assets.items():
            d = f.create_dataset(key, shape=value.shape, maxshape=(None,) + value.shape[1:],
                                 chunks=(min(chunk_rows, max(1, value.shape[0])),) + value.shape[1:], dtype=value.dtype)
            d[:] = value
            for k, v in attributes.get(key, {}).items():
                d.attrs[k] = v


def trident_attrs(name, savetodir, width, height, overlap=0):
    return {"patch_size": PATCH, "patch_size_level0": SIDE, "level0_magnification": LEVEL0_MAG,
            "target_magnification": TARGET_MAG, "overlap": overlap, "name": name, "savetodir": savetodir,
            "level0_width": width, "level0_height": height}


def tissue_cells(rng, columns, rows):
    """A blob of cells (an ellipse with ragged edges), row-major."""
    cx, cy = rng.uniform(2, columns - 2), rng.uniform(2, rows - 2)
    rx, ry = rng.uniform(1.8, columns / 2), rng.uniform(1.8, rows / 2)
    return [(c, r) for r in range(rows) for c in range(columns)
            if ((c - cx) / rx) ** 2 + ((r - cy) / ry) ** 2 < 1 + rng.uniform(-0.3, 0.3)]


def trident(out):
    rng = np.random.default_rng(15)
    os.makedirs(os.path.join(out, "expected"), exist_ok=True)
    labels = ["slide,patient,score"]
    slides = [(f"P{p:02d}", f"P{p:02d}-{k}") for p in range(10) for k in range(2 if p in (3, 7) else 1)]
    latent = {f"P{p:02d}": rng.uniform(0, 1) for p in range(10)}
    for patient, stem in slides:
        columns, rows = int(rng.integers(6, 9)), int(rng.integers(5, 8))
        cells = tissue_cells(rng, columns, rows)
        coords = np.array([(c * SIDE, r * SIDE) for c, r in cells], dtype=np.int64)
        features = rng.normal(0, 0.5, size=(len(cells), D)).astype(np.float32)
        features[:, 0] += 2 * latent[patient]
        save_h5(os.path.join(out, f"{stem}.h5"), {"features": features, "coords": coords},
                {"features": {"name": stem, "savetodir": "features_fixture", "encoder": "fixture"},
                 "coords": trident_attrs(stem, "patches", (columns + 1) * SIDE, (rows + 1) * SIDE)})
        with open(os.path.join(out, "expected", f"{stem}.csv"), "w") as f:
            f.write("x,y," + ",".join(f"f{k}" for k in range(D)) + "\n")
            for (x, y), v in zip(coords, features):
                f.write(f"{x},{y}," + ",".join(repr(float(a)) for a in v) + "\n")
        labels.append(f"{stem},{patient},{latent[patient]:.4f}")
    with open(os.path.join(out, "labels.csv"), "w") as f:
        f.write("\n".join(labels) + "\n")


def clam(out):
    rng = np.random.default_rng(16)
    coords = []
    for x0, y0, columns, rows in [(1000, 700, 3, 2), (4100, 3000, 2, 3)]:
        coords += [(x0 + c * SIDE, y0 + r * SIDE) for r in range(rows) for c in range(columns)]
    coords = np.array(coords, dtype=np.int32)
    features = rng.normal(0, 1, size=(len(coords), D)).astype(np.float32)
    save_h5(os.path.join(out, "S1.h5"), {"features": features, "coords": coords}, {}, chunk_rows=32)
    with open(os.path.join(out, "expected.csv"), "w") as f:
        f.write("x,y," + ",".join(f"f{k}" for k in range(D)) + "\n")
        for (x, y), v in zip(coords, features):
            f.write(f"{x},{y}," + ",".join(repr(float(a)) for a in v) + "\n")


def bad(out):
    rng = np.random.default_rng(17)
    coords = np.array([(c * SIDE, r * SIDE) for r in range(2) for c in range(3)], dtype=np.int64)
    features = rng.normal(size=(6, D)).astype(np.float32)
    attrs = {"coords": trident_attrs("x", "patches", 4 * SIDE, 3 * SIDE)}
    save_h5(os.path.join(out, "rank3.h5"), {"features": features[:, None, :], "coords": coords}, attrs)
    save_h5(os.path.join(out, "no_coords.h5"), {"features": features}, {})
    save_h5(os.path.join(out, "count_mismatch.h5"), {"features": features, "coords": coords[:5]}, attrs)
    off = coords.copy()
    off[4] += (100, 0)
    save_h5(os.path.join(out, "off_grid.h5"), {"features": features, "coords": off}, attrs)
    save_h5(os.path.join(out, "overlap.h5"), {"features": features, "coords": coords},
            {"coords": trident_attrs("x", "patches", 4 * SIDE, 3 * SIDE, overlap=64)})
    nan = features.copy()
    nan[2, 3] = np.nan
    save_h5(os.path.join(out, "nan.h5"), {"features": nan, "coords": coords}, attrs)


def bad_more(out):
    rng = np.random.default_rng(18)
    coords = np.array([(c * SIDE, r * SIDE) for r in range(2) for c in range(3)], dtype=np.int64)
    features = rng.normal(size=(6, D)).astype(np.float32)
    for name, magnification in [("zero_magnification", 0), ("negative_magnification", -1)]:
        attrs = trident_attrs("x", "patches", 4 * SIDE, 3 * SIDE)
        attrs["level0_magnification"] = magnification
        save_h5(os.path.join(out, f"{name}.h5"), {"features": features, "coords": coords}, {"coords": attrs})
    beyond = coords.copy()
    beyond[5] = (6 * SIDE, SIDE)   # the slide is 4 * SIDE wide
    save_h5(os.path.join(out, "beyond_slide.h5"), {"features": features, "coords": beyond},
            {"coords": trident_attrs("x", "patches", 4 * SIDE, 3 * SIDE)})


def blank(out):
    rng = np.random.default_rng(19)
    labels = ["slide,patient,score"]
    for stem, score in [("A", 0.2), ("B", 0.5), ("C", 0.9), ("E", 0.4), ("F", 0.6)]:
        if stem == "B":
            coords = np.zeros((0, 2), dtype=np.int64)
            features = np.zeros((0, D), dtype=np.float32)
        else:
            coords = np.array([(c * SIDE, r * SIDE) for r in range(2) for c in range(2)], dtype=np.int64)
            features = rng.normal(size=(4, D)).astype(np.float32)
        save_h5(os.path.join(out, f"{stem}.h5"), {"features": features, "coords": coords},
                {"features": {"name": stem, "savetodir": "blank"}, "coords": trident_attrs(stem, "patches", 3 * SIDE, 3 * SIDE)})
        labels.append(f"{stem},P{stem},{score}")
    labels.append("D,PD,0.7")
    with open(os.path.join(out, "labels.csv"), "w") as f:
        f.write("\n".join(labels) + "\n")


def large(out):
    coords = np.array([(c * SIDE, 0) for c in range(3)], dtype=np.int64)
    features = np.ones((3, D), dtype=np.float32)
    features[0, 0], features[1, 1], features[2, 2] = 1e5, -7e4, 123456.789
    save_h5(os.path.join(out, "L.h5"), {"features": features, "coords": coords},
            {"coords": trident_attrs("L", "patches", 4 * SIDE, SIDE)})


def clam_overlap(out):
    rng = np.random.default_rng(20)
    # Contour 1 from (1000, 700), contour 2 from (2124, 700): its first patch is 100 px right of contour
    # 1's third, so both snap to one cell of the grid through (1000 % 512, 700 % 512).
    coords = np.array([(1000 + c * SIDE, 700) for c in range(3)] + [(2124 + c * SIDE, 700) for c in range(2)], dtype=np.int32)
    features = rng.normal(size=(5, D)).astype(np.float32)
    save_h5(os.path.join(out, "S2.h5"), {"features": features, "coords": coords}, {}, chunk_rows=32)
    with open(os.path.join(out, "expected.csv"), "w") as f:
        f.write("x,y," + ",".join(f"f{k}" for k in range(D)) + "\n")
        for (x, y), v in zip(coords, features):
            f.write(f"{x},{y}," + ",".join(repr(float(a)) for a in v) + "\n")


def demo(out):
    rng = np.random.default_rng(48)
    os.makedirs(out, exist_ok=True)
    d = 128
    labels = ["slide,patient,score"]
    for p in range(48):
        patient, score = f"T{p:02d}", rng.uniform(0, 1)
        columns, rows = int(rng.integers(10, 17)), int(rng.integers(10, 17))
        cells = tissue_cells(rng, columns, rows)
        tumour = tissue_cells(rng, columns, rows)
        coords = np.array([(c * SIDE, r * SIDE) for c, r in cells], dtype=np.int64)
        features = rng.normal(0, 1, size=(len(cells), d)).astype(np.float32)
        for i, cell in enumerate(cells):
            if cell in tumour:
                features[i, :4] += 3 * score
        save_h5(os.path.join(out, f"{patient}.h5"), {"features": features, "coords": coords},
                {"features": {"name": patient, "savetodir": out, "encoder": "demo"},
                 "coords": trident_attrs(patient, "patches", (columns + 1) * SIDE, (rows + 1) * SIDE)})
        labels.append(f"{patient},{patient},{score:.4f}")
    with open(os.path.join(out, "labels.csv"), "w") as f:
        f.write("\n".join(labels) + "\n")
    print(f"wrote 48 slides to {out}")


if __name__ == "__main__":
    if sys.argv[1] == "--demo":
        demo(sys.argv[2])
        sys.exit(0)
    root = sys.argv[1]
    for name, write in [("trident", trident), ("clam", clam), ("bad", bad), ("bad", bad_more), ("blank", blank),
                        ("large", large), ("clam_overlap", clam_overlap)]:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        write(os.path.join(root, name))
    print(f"wrote fixtures to {root}")
