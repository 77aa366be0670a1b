#!/usr/bin/env python3
"""Cross-checks TensorStore (Swift) and zarr-python 3 on the same set of zarr v3 arrays.

    python scripts/zarr_interop.py check DIR   # read arrays written by Swift, compare to the formulas
    python scripts/zarr_interop.py write DIR   # write the same arrays with zarr-python, for Swift to check

The fixture table and the value formulas must stay identical to
Tests/NicTestKit/ZarrInterop.swift. Values are simple functions of the flat C-order
index i, chosen to be exactly representable in their data type, so that comparisons
are exact. Needs: zarr>=3, numpy (crc32c support comes with zarr's dependencies).
"""

from __future__ import annotations

import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec

ROOT_ATTRIBUTES = {"fixture_set": "nic-zarr-interop", "version": 1}
ARRAY_ATTRIBUTES = {
    "unit": "m",
    "scale": 0.5,
    "axes": ["y", "x"],
    "count": 3,
    "flag": True,
    "nothing": None,
    "nested": {"k": [1, 2.5, "s"]},
}


@dataclass(frozen=True)
class Fixture:
    name: str  # folder below DIR; may contain one "/" for a nested group
    dtype: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    fill: float = 0
    # Chunk indices that hold data; None means every chunk. The others are never
    # written, so readers must produce the fill value there.
    written_chunks: tuple[tuple[int, ...], ...] | None = None
    attributes: dict = field(default_factory=dict)


FIXTURES = [
    Fixture("uint8_edge_5x7x3", "uint8", (5, 7, 3), (2, 3, 2)),
    Fixture("int32_edge_13x9", "int32", (13, 9), (4, 4)),
    Fixture("int64_1d_100", "int64", (100,), (32,)),
    Fixture("float16_edge_17x5", "float16", (17, 5), (8, 2)),
    Fixture("float32_exact_6x10x4", "float32", (6, 10, 4), (3, 5, 4)),
    Fixture("float64_edge_9x11_attrs", "float64", (9, 11), (4, 4), attributes=ARRAY_ATTRIBUTES),
    Fixture("float32_single_chunk_4x4", "float32", (4, 4), (4, 4)),
    Fixture("int32_chunk_larger_than_array_3x5", "int32", (3, 5), (8, 8)),
    Fixture("float64_0d", "float64", (), ()),
    Fixture("float32_empty_3x0x2", "float32", (3, 0, 2), (2, 2, 2)),
    Fixture("float32_sparse_nan_fill_4x6", "float32", (4, 6), (2, 3), fill=math.nan,
            written_chunks=((0, 0), (1, 1))),
    Fixture("int64_sparse_fill_minus1_5", "int64", (5,), (2,), fill=-1, written_chunks=((1,),)),
    Fixture("nested/int32_in_subgroup_10", "int32", (10,), (3,)),
]


def formula(dtype: str, count: int) -> np.ndarray:
    """Value of flat C-order element i, for i in 0..<count."""
    i = np.arange(count, dtype=np.int64)
    if dtype == "uint8":
        return ((i * 7 + 3) % 256).astype(np.uint8)
    if dtype == "int32":
        return (i * 1000 - 500000).astype(np.int32)
    if dtype == "int64":
        return i * 3_000_000_000 - 7
    if dtype == "float16":
        return ((i % 1000) * 0.5 - 100).astype(np.float16)
    if dtype == "float32":
        return (i * 0.25 - 3.5).astype(np.float32)
    if dtype == "float64":
        return i * 0.125 - 1e6
    raise ValueError(f"unknown dtype {dtype}")


def chunk_slices(f: Fixture, index: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(k * c, min((k + 1) * c, s)) for k, c, s in zip(index, f.chunks, f.shape))


def expected(f: Fixture) -> np.ndarray:
    full = formula(f.dtype, math.prod(f.shape)).reshape(f.shape)
    if f.written_chunks is None:
        return full
    out = np.full(f.shape, f.fill, dtype=f.dtype)
    for index in f.written_chunks:
        region = chunk_slices(f, index)
        out[region] = full[region]
    return out


def same_fill(a, b) -> bool:
    a, b = float(a), float(b)
    return (math.isnan(a) and math.isnan(b)) or a == b


def check_one(directory: Path, f: Fixture) -> list[str]:
    problems = []
    path = directory / f.name
    if not (path / "zarr.json").is_file():
        return [f"missing array folder {path}"]
    a = zarr.open_array(str(path), mode="r")
    if a.metadata.zarr_format != 3:
        problems.append(f"zarr_format {a.metadata.zarr_format}, expected 3")
    if a.shape != f.shape:
        problems.append(f"shape {a.shape}, expected {f.shape}")
    if a.dtype != np.dtype(f.dtype):
        problems.append(f"dtype {a.dtype}, expected {f.dtype}")
    if a.chunks != f.chunks:
        problems.append(f"chunks {a.chunks}, expected {f.chunks}")
    if not same_fill(a.fill_value, f.fill):
        problems.append(f"fill_value {a.fill_value!r}, expected {f.fill!r}")
    codecs = [c["name"] for c in a.metadata.to_dict()["codecs"]]
    if codecs != ["bytes", "zstd", "crc32c"]:
        problems.append(f"codecs {codecs}, expected ['bytes', 'zstd', 'crc32c']")
    if dict(a.attrs) != f.attributes:
        problems.append(f"attributes {dict(a.attrs)}, expected {f.attributes}")
    if problems:  # reading values of a differently shaped array would only add noise
        return problems
    got = np.asarray(a[...])
    want = expected(f)
    if got.shape != want.shape or got.dtype != want.dtype:
        return [f"read {got.dtype}{got.shape}, expected {want.dtype}{want.shape}"]
    equal_nan = np.issubdtype(want.dtype, np.floating)
    if not np.array_equal(got, want, equal_nan=equal_nan):
        flat_got, flat_want = got.reshape(-1), want.reshape(-1)
        if equal_nan:
            differs = ~((flat_got == flat_want) | (np.isnan(flat_got) & np.isnan(flat_want)))
        else:
            differs = flat_got != flat_want
        bad = np.flatnonzero(differs)
        first = int(bad[0])
        problems.append(
            f"{len(bad)} of {flat_want.size} values differ; first at flat index {first}: "
            f"got {flat_got[first]!r}, expected {flat_want[first]!r}"
        )
    return problems


def check(directory: Path) -> int:
    passed = failed = 0
    try:
        group = zarr.open_group(str(directory), mode="r")
        if dict(group.attrs) != ROOT_ATTRIBUTES:
            print(f"FAIL  (root group)  attributes {dict(group.attrs)}, expected {ROOT_ATTRIBUTES}")
            failed += 1
    except Exception as e:  # noqa: BLE001 - report any failure to open as a check failure
        print(f"FAIL  (root group)  cannot open {directory} as a zarr v3 group: {e}")
        failed += 1
    for f in FIXTURES:
        try:
            problems = check_one(directory, f)
        except Exception as e:  # noqa: BLE001
            problems = [f"{type(e).__name__}: {e}"]
        if problems:
            failed += 1
            for p in problems:
                print(f"FAIL  {f.name}  {p}")
        else:
            passed += 1
            print(f"ok    {f.name}  {f.dtype} shape={f.shape} chunks={f.chunks}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def write(directory: Path) -> int:
    if directory.exists():
        shutil.rmtree(directory)
    root = zarr.create_group(store=str(directory), zarr_format=3, attributes=ROOT_ATTRIBUTES)
    for f in FIXTURES:
        parent = root
        parts = f.name.split("/")
        for part in parts[:-1]:
            parent = parent.require_group(part)
        a = parent.create_array(
            name=parts[-1],
            shape=f.shape,
            chunks=f.chunks,
            dtype=f.dtype,
            fill_value=f.fill,
            serializer=BytesCodec(endian="little"),
            compressors=[ZstdCodec(level=3), Crc32cCodec()],
            attributes=f.attributes,
        )
        want = expected(f)
        if f.written_chunks is None:
            if want.size > 0:
                a[...] = want
        else:
            for index in f.written_chunks:
                region = chunk_slices(f, index)
                a[region] = want[region]
        print(f"wrote {f.name}  {f.dtype} shape={f.shape} chunks={f.chunks}")
    print(f"{len(FIXTURES)} arrays written to {directory}")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("check", "write"):
        print("usage: zarr_interop.py check|write DIR", file=sys.stderr)
        return 2
    directory = Path(argv[2])
    return check(directory) if argv[1] == "check" else write(directory)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
