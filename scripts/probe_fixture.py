#!/usr/bin/env python3
"""Writes Tests/StatsTests/Fixtures/probe.json: reference fits for the linear probe and reference
paired-bootstrap comparisons, computed by scikit-learn, lifelines, scipy and numpy. Run once, commit
the output:

    ~/.cache/nic/venv/bin/pip install numpy scipy scikit-learn lifelines
    ~/.cache/nic/venv/bin/python scripts/probe_fixture.py

Penalty convention of nic's probe: mean loss per subject + lambda/2 * ||w||^2 on features
standardised on the training rows (mean 0, sample sd with ddof=1), intercept unpenalised. So:
- scikit-learn Ridge(alpha = n * lambda) and LogisticRegression(C = 1 / (n * lambda)) are fitted
  here on the features standardised the same way (scikit-learn does not standardise by itself);
- lifelines' CoxPHFitter(penalizer = lambda, l1_ratio = 0) is given the raw features: it adds
  n * penalizer / 2 * ||beta||^2 to minus the log partial likelihood, on covariates it standardises
  itself with pandas' std (ddof=1), and reports params_ on the raw scale (beta / sd).

Paired bootstrap: resample r draws `n` indices `splitmix64() % n` from one SplitMix64 stream seeded
with `seed` (nic's Stats.Bootstrap); both models are scored on the same indices; resamples where
either statistic is undefined are skipped; CIs are numpy's linear percentiles.
"""
import json, pathlib, warnings
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import Ridge, LogisticRegression
from sklearn.metrics import roc_auc_score
from lifelines import CoxPHFitter
from lifelines.utils import concordance_index

rng = np.random.default_rng(20261129)
out = {"ridge": [], "logistic": [], "multinomial": [], "cox": [], "paired_bootstrap": []}


def standardise(train, test):
    mean, sd = train.mean(0), train.std(0, ddof=1)
    sd[sd == 0] = 1
    return (train - mean) / sd, (test - mean) / sd, sd


def design(n, p, n_test):
    scales = rng.uniform(0.5, 5, size=p)
    x = rng.normal(size=(n + n_test, p)) * scales + rng.normal(size=p) * 3
    x = np.round(x, 3)  # short in the JSON; every fit sees the rounded values
    return x[:n], x[n:]


for n, p, penalty in [(40, 6, 0.05), (24, 50, 0.3)]:
    x, x_test = design(n, p, 5)
    w = rng.normal(size=p) / np.sqrt(p)
    xs, xs_test, sd = standardise(x, x_test)
    y = xs @ w * 2 + 1.5 + rng.normal(size=n) * 0.5
    ridge = Ridge(alpha=n * penalty, tol=1e-12, solver="cholesky").fit(xs, y)
    out["ridge"].append({"x": x.tolist(), "y": y.tolist(), "x_test": x_test.tolist(), "penalty": penalty,
                         "raw_weights": (ridge.coef_ / sd).tolist(), "predictions": ridge.predict(xs_test).tolist()})

    labels = (xs @ w + rng.normal(size=n) * 0.7 > 0).astype(int)
    logistic = LogisticRegression(C=1 / (n * penalty), tol=1e-12, max_iter=100000).fit(xs, labels)
    out["logistic"].append({"x": x.tolist(), "y": labels.tolist(), "x_test": x_test.tolist(), "penalty": penalty,
                            "raw_weights": (logistic.coef_[0] / sd).tolist(), "intercept": float(logistic.intercept_[0]),
                            "predictions": logistic.predict_proba(xs_test)[:, 1].tolist()})

    logits = np.stack([xs @ rng.normal(size=p) / np.sqrt(p) * 2 for _ in range(3)], 1) + rng.gumbel(size=(n, 3))
    classes = logits.argmax(1)
    classes[:3] = [0, 1, 2]
    multinomial = LogisticRegression(C=1 / (n * penalty), tol=1e-12, max_iter=100000).fit(xs, classes)
    out["multinomial"].append({"x": x.tolist(), "y": classes.tolist(), "x_test": x_test.tolist(), "penalty": penalty,
                               "probabilities": multinomial.predict_proba(xs_test).tolist()})

# Cox: tie-free times (Breslow = Efron there, both checked), then tied times (Efron, lifelines' only
# method), then more covariates than subjects.
for n, p, penalty, digits in [(60, 5, 0.1, None), (50, 8, 0.02, 0), (30, 40, 0.5, 0)]:
    x, _ = design(n, p, 0)
    xs = (x - x.mean(0)) / x.std(0, ddof=1)
    eta = xs @ (rng.normal(size=p) / np.sqrt(p))
    t = rng.exponential(10 * np.exp(-eta))
    c = rng.uniform(0, 25, size=n)
    time = np.minimum(t, c)
    time = time if digits is None else np.round(time, digits) + 1
    event = (t <= c).astype(int)
    df = pd.DataFrame(x, columns=[f"x{j}" for j in range(p)])
    df["time"], df["event"] = time, event
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Tighter than lifelines' defaults (its relative log-likelihood stop, 1e-9, leaves ~1e-5 in β when p > n).
        cph = CoxPHFitter(penalizer=penalty, l1_ratio=0.0).fit(df, duration_col="time", event_col="event",
                                                               fit_options={"precision": 1e-12, "r_precision": 1e-15, "max_steps": 500})
    out["cox"].append({"x": x.tolist(), "time": time.tolist(), "event": event.tolist(), "penalty": penalty,
                       "ties": ["breslow", "efron"] if digits is None else ["efron"],
                       "raw_weights": cph.params_.values.tolist()})


def splitmix64(seed):
    mask = (1 << 64) - 1
    state = seed & mask
    while True:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        yield z ^ (z >> 31)


def statistic(metric, case, score, idx):
    if metric == "spearman":
        r = stats.spearmanr(np.array(case["truth"])[idx], np.array(score)[idx]).statistic
        return None if np.isnan(r) else float(r)
    if metric == "auc":
        labels = np.array(case["truth"])[idx]
        return None if len(set(labels.tolist())) < 2 else float(roc_auc_score(labels, np.array(score)[idx]))
    time, event = np.array(case["time"])[idx], np.array(case["event"])[idx]
    try:
        return float(concordance_index(time, -np.array(score)[idx], event))
    except ZeroDivisionError:
        return None


for metric, n in [("spearman", 30), ("auc", 26), ("cindex", 32)]:
    case = {"metric": metric, "seed": 17 + n, "resamples": 400, "confidence": 0.9}
    if metric == "spearman":
        truth = np.round(rng.normal(size=n), 2)
        case["truth"] = truth.tolist()
        case["a"] = np.round(truth + rng.normal(size=n) * 0.6, 2).tolist()
        case["b"] = np.round(truth + rng.normal(size=n) * 1.2, 2).tolist()
    elif metric == "auc":
        truth = rng.integers(0, 2, size=n)
        truth[:2] = [0, 1]
        case["truth"] = truth.tolist()
        case["a"] = np.round(1 / (1 + np.exp(-(truth * 1.5 + rng.normal(size=n)))), 2).tolist()
        case["b"] = np.round(1 / (1 + np.exp(-(truth * 0.7 + rng.normal(size=n)))), 2).tolist()
    else:
        time = np.round(rng.exponential(10, size=n)) + 1
        case["time"], case["event"] = time.tolist(), (rng.random(n) < 0.7).astype(int).tolist()
        case["a"] = np.round(-0.2 * time + rng.normal(size=n), 1).tolist()
        case["b"] = np.round(-0.05 * time + rng.normal(size=n), 1).tolist()
    all_idx = np.arange(n)
    value_a, value_b = statistic(metric, case, case["a"], all_idx), statistic(metric, case, case["b"], all_idx)
    draws = splitmix64(case["seed"])
    pairs = []
    for _ in range(case["resamples"]):
        idx = np.array([next(draws) % n for _ in range(n)])
        sa, sb = statistic(metric, case, case["a"], idx), statistic(metric, case, case["b"], idx)
        if sa is not None and sb is not None:
            pairs.append((sa, sb))
    pairs = np.array(pairs)
    diff = pairs[:, 0] - pairs[:, 1]
    alpha = (1 - case["confidence"]) / 2
    case["expected"] = {"a": value_a, "b": value_b, "difference": value_a - value_b,
                        "a_ci": np.percentile(pairs[:, 0], [100 * alpha, 100 * (1 - alpha)]).tolist(),
                        "b_ci": np.percentile(pairs[:, 1], [100 * alpha, 100 * (1 - alpha)]).tolist(),
                        "difference_ci": np.percentile(diff, [100 * alpha, 100 * (1 - alpha)]).tolist(),
                        "fraction_a_better": float((diff > 0).mean()), "valid": int(len(pairs))}
    out["paired_bootstrap"].append(case)

path = pathlib.Path(__file__).resolve().parent.parent / "Tests/StatsTests/Fixtures/probe.json"
path.write_text(json.dumps(out))
print(f"wrote {path} ({path.stat().st_size} bytes)")
