"""Writes Tests/SlidesTests/Fixtures/stain-normalisation.json: two small H&E-like images (a source
and a reference, drawn with numpy from Beer-Lambert stains) and their Macenko and Reinhard
normalisations computed here with numpy, following TIAToolbox's / StainTools' definitions
(MacenkoExtractor: beta 0.15, alpha 1, eigenvectors of the OD covariance, angle percentiles;
ReinhardNormalizer: per-channel mean/std matching in L*a*b*, here float CIE Lab, sRGB, D65).
nic's Swift implementation (Sources/Slides/StainNormalization.swift) is held to these numbers.

    python3 scripts/stain_fixture.py Tests/SlidesTests/Fixtures/stain-normalisation.json
"""
import json
import sys

import numpy as np

BETA, ALPHA = 0.15, 1.0


def image(seed, h_vec, e_vec, h_scale, e_scale, size=32):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    nuclei = np.zeros((size, size))
    for _ in range(14):
        cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(1.5, 3.5)
        nuclei = np.maximum(nuclei, (((xx - cx) ** 2 + (yy - cy) ** 2) < r * r) * rng.uniform(0.5, 1.0))
    eosin = 0.25 + 0.2 * rng.random((size, size))
    glass = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2) > (0.45 * size) ** 2
    h = h_scale * nuclei * ~glass
    e = e_scale * eosin * ~glass
    od = h[..., None] * np.array(h_vec) + e[..., None] * np.array(e_vec)
    rgb = 245 * np.exp(-od) + rng.normal(0, 2, od.shape)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def od_of(img):
    return -np.log(np.maximum(img.reshape(-1, 3).astype(np.float64), 1) / 255)


def macenko_stains(od):
    tissue = od[~np.any(od < BETA, axis=1)]
    _, vecs = np.linalg.eigh(np.cov(tissue, rowvar=False))
    vecs = vecs[:, [2, 1]]
    if vecs[0, 0] < 0:
        vecs[:, 0] *= -1
    if vecs[0, 1] < 0:
        vecs[:, 1] *= -1
    proj = tissue @ vecs
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, ALPHA), np.percentile(phi, 100 - ALPHA)
    v_min = vecs @ np.array([np.cos(lo), np.sin(lo)])
    v_max = vecs @ np.array([np.cos(hi), np.sin(hi)])
    he = np.array([v_min, v_max]) if v_min[0] > v_max[0] else np.array([v_max, v_min])
    return he / np.linalg.norm(he, axis=1)[:, None]


def concentrations(od, stains):
    return np.linalg.lstsq(stains.T, od.T, rcond=None)[0].T


def macenko(source, target):
    t_od = od_of(target)
    t_stains = macenko_stains(t_od)
    t_max = np.percentile(concentrations(t_od, t_stains), 99, axis=0)
    s_od = od_of(source)
    s_stains = macenko_stains(s_od)
    c = concentrations(s_od, s_stains)
    c = c * (t_max / np.percentile(c, 99, axis=0))
    out = np.clip(255 * np.exp(-c @ t_stains), 0, 255)
    return t_stains, t_max, out


WHITE = np.array([0.95047, 1.0, 1.08883])
M = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
MI = np.array([[3.240479, -1.537150, -0.498535], [-0.969256, 1.875992, 0.041556], [0.055648, -0.204043, 1.057311]])


def rgb2lab(img):
    c = img.reshape(-1, 3).astype(np.float64) / 255
    lin = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = lin @ M.T / WHITE
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    y = xyz[:, 1]
    L = np.where(y > 0.008856, 116 * np.cbrt(y) - 16, 903.3 * y)
    return np.stack([L, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def lab2rgb(lab):
    fy = (lab[:, 0] + 16) / 116
    fx, fz = fy + lab[:, 1] / 500, fy - lab[:, 2] / 200
    f = np.stack([fx, fy, fz], axis=1)
    xyz = np.where(f > 0.206893, f ** 3, (f - 16 / 116) / 7.787) * WHITE
    lin = xyz @ MI.T
    return np.where(lin > 0.0031308, 1.055 * np.maximum(lin, 0) ** (1 / 2.4) - 0.055, 12.92 * lin) * 255


def reinhard(source, target):
    t = rgb2lab(target)
    t_mean, t_std = t.mean(axis=0), t.std(axis=0)
    s = rgb2lab(source)
    out = lab2rgb((s - s.mean(axis=0)) / s.std(axis=0) * t_std + t_mean)
    return t_mean, t_std, np.clip(out, 0, 255)


def main(path):
    # The source: the renderer's nominal stains; the reference: another lab's (bluer H, pinker E).
    source = image(1, [0.65, 0.70, 0.29], [0.07, 0.99, 0.11], 1.6, 0.9)
    target = image(2, [0.55, 0.76, 0.35], [0.10, 0.95, 0.28], 1.2, 1.3)
    stains, maxc, mac = macenko(source, target)
    mean, std, rei = reinhard(source, target)
    fixture = {
        "width": 32, "height": 32,
        "source": source.reshape(-1).tolist(), "reference": target.reshape(-1).tolist(),
        "macenko": {"stains": stains.tolist(), "max_concentrations": maxc.tolist(), "output": np.round(mac.reshape(-1), 6).tolist()},
        "reinhard": {"mean": mean.tolist(), "std": std.tolist(), "output": np.round(rei.reshape(-1), 6).tolist()},
        "numpy": np.__version__,
    }
    with open(path, "w") as f:
        json.dump(fixture, f)


if __name__ == "__main__":
    main(sys.argv[1])
