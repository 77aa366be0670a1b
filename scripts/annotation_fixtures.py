"""Writes the QuPath GeoJSON / ASAP XML fixtures of the `annotations` node's tests and, computed with
shapely (exact areas, distances), what nic must derive from them. Slide: 2048 x 2048 level-0 px at
0.5 um/px; patches of 64 um = 128 px; centres of the 128 px grid from the slide's corner.

  regions.geojson          tumour (with a hole), stroma, a necrosis MultiPolygon, a stroma island in the hole
  regions.expected.csv     x, y, coverage, label, margin: per grid centre, the covered fraction and the
                           class with the largest intersection area (margin = its lead over the second,
                           as a fraction of the patch)
  points.geojson           mitosis Points and a MultiPoint, nucleus MultiPoint, a tumour region
  points.expected.csv      x, y, near_mitosis (a mitosis within 8 um = 16 px), nuclei (in the patch square)
  bad_*.geojson            one defect each; asap.xml an ASAP file

    python scripts/annotation_fixtures.py Tests/NICNodesTests/Fixtures/annotations
"""
import json
import os
import sys

import numpy as np
from shapely.geometry import MultiPolygon, Point, Polygon, box, mapping

SIDE, SIZE = 128, 2048


_ids = iter(range(1, 10**6))


def feature(geometry, name, extra=None):
    props = {"objectType": "annotation", "classification": {"name": name, "color": [200, 0, 0]}}
    props.update(extra or {})
    return {"type": "Feature", "id": f"00000000-0000-0000-0000-{next(_ids):012d}", "geometry": geometry, "properties": props}


def collection(features):
    return {"type": "FeatureCollection", "features": features}


def write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def grid_centres():
    return [((i + 0.5) * SIDE, (j + 0.5) * SIDE) for j in range(SIZE // SIDE) for i in range(SIZE // SIDE)]


def regions(out):
    tumour = Polygon([(200, 180), (1300, 260), (1250, 1200), (300, 1100)],
                     holes=[[(600, 500), (900, 520), (880, 800), (620, 780)]])
    island = Polygon([(680, 580), (820, 590), (810, 720), (690, 700)])   # stroma inside the hole
    stroma = Polygon([(1300, 260), (1900, 300), (1950, 1300), (1250, 1200)])
    necrosis = MultiPolygon([Polygon([(300, 1400), (700, 1420), (650, 1800), (320, 1750)]),
                             Polygon([(1000, 1500), (1500, 1480), (1480, 1900), (1050, 1880)])])
    for g in (tumour, island, stroma, necrosis):
        assert g.is_valid
    shapes = [("tumour", tumour), ("stroma", island), ("stroma", stroma), ("necrosis", necrosis)]
    write(os.path.join(out, "regions.geojson"), collection([feature(mapping(g), c) for c, g in shapes]
                                                           + [feature({"type": "LineString", "coordinates": [[0, 0], [100, 100]]}, "tumour")]))
    with open(os.path.join(out, "regions.expected.csv"), "w") as f:
        f.write("x,y,coverage,label,margin\n")
        for x, y in grid_centres():
            patch = box(x - SIDE / 2, y - SIDE / 2, x + SIDE / 2, y + SIDE / 2)
            areas = {}
            for c, g in shapes:
                areas[c] = areas.get(c, 0) + g.intersection(patch).area
            total = sum(areas.values())
            if total == 0:
                continue
            ranked = sorted(areas.items(), key=lambda kv: -kv[1])
            margin = (ranked[0][1] - (ranked[1][1] if len(ranked) > 1 else 0)) / patch.area
            f.write(f"{x:.0f},{y:.0f},{total / patch.area:.6f},{ranked[0][0]},{margin:.6f}\n")


def points(out):
    rng = np.random.default_rng(21)
    tumour = Polygon([(100, 100), (1900, 120), (1880, 1900), (120, 1880)])
    mitoses = [(float(x), float(y)) for x, y in rng.uniform(40, 2000, size=(14, 2)).round()]
    mitoses.append((30.0, 1000.0))   # too close to the edge for a whole patch: dropped
    nuclei = [(float(x), float(y)) for x, y in rng.uniform(0, 2047, size=(400, 2)).round(1)]
    features = [feature(mapping(tumour), "tumour")]
    features += [feature({"type": "Point", "coordinates": list(p)}, "mitosis", {"objectType": "detection"}) for p in mitoses[:8]]
    features.append(feature({"type": "MultiPoint", "coordinates": [list(p) for p in mitoses[8:]]}, "mitosis"))
    features.append(feature({"type": "MultiPoint", "coordinates": [list(p) for p in nuclei]}, "nucleus"))
    features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 5]}, "properties": {"objectType": "annotation"}})
    write(os.path.join(out, "points.geojson"), collection(features))
    probes = grid_centres() + [(x + 5, y - 7) for x, y in mitoses[:6]]
    with open(os.path.join(out, "points.expected.csv"), "w") as f:
        f.write("x,y,near_mitosis,nuclei\n")
        for x, y in probes:
            near = any(Point(x, y).distance(Point(m)) <= 16 for m in mitoses)
            count = sum(1 for (px, py) in nuclei if x - SIDE / 2 <= px < x + SIDE / 2 and y - SIDE / 2 <= py < y + SIDE / 2)
            f.write(f"{x:.0f},{y:.0f},{int(near)},{count}\n")


def bad(out):
    bowtie = Polygon([(100, 100), (500, 500), (500, 100), (100, 500)])
    assert not bowtie.is_valid
    ok = mapping(Polygon([(10, 10), (200, 10), (200, 200)]))
    write(os.path.join(out, "bad_selfintersect.geojson"), collection([feature(ok, "stroma"), feature(mapping(bowtie), "tumour")]))
    write(os.path.join(out, "bad_unclosed.geojson"), collection([feature(
        {"type": "Polygon", "coordinates": [[[100, 100], [400, 100], [400, 400], [100, 400]]]}, "tumour")]))
    write(os.path.join(out, "bad_point_outside.geojson"), collection([feature({"type": "Point", "coordinates": [2500, 30]}, "mitosis")]))
    write(os.path.join(out, "bad_short_ring.geojson"), collection([feature(ok, "stroma"), feature(ok, "stroma"), feature(
        {"type": "Polygon", "coordinates": [[[100, 100], [400, 100], [100, 100]]]}, "tumour")]))


def asap(out):
    with open(os.path.join(out, "asap.xml"), "w") as f:
        f.write("""<?xml version="1.0"?>
<ASAP_Annotations>
  <Annotations>
    <Annotation Name="Annotation 0" Type="Polygon" PartOfGroup="tumor" Color="#F4FA58">
      <Coordinates>
        <Coordinate Order="0" X="100" Y="100" />
        <Coordinate Order="2" X="900" Y="900" />
        <Coordinate Order="1" X="900" Y="100" />
        <Coordinate Order="3" X="100" Y="900" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Annotation 1" Type="Dot" PartOfGroup="mitosis" Color="#F4FA58">
      <Coordinates><Coordinate Order="0" X="500.5" Y="400" /></Coordinates>
    </Annotation>
    <Annotation Name="Annotation 2" Type="PointSet" PartOfGroup="mitosis" Color="#F4FA58">
      <Coordinates><Coordinate Order="0" X="300" Y="300" /><Coordinate Order="1" X="700" Y="650" /></Coordinates>
    </Annotation>
  </Annotations>
  <AnnotationGroups>
    <Group Name="tumor" PartOfGroup="None" Color="#ff0000"><Attributes /></Group>
  </AnnotationGroups>
</ASAP_Annotations>
""")


if __name__ == "__main__":
    root = sys.argv[1]
    os.makedirs(root, exist_ok=True)
    for write_fixture in (regions, points, bad, asap):
        write_fixture(root)
    print(f"wrote fixtures to {root}")
