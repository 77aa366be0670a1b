#!/usr/bin/env python3
"""Writes Tests/StatsTests/Fixtures/stats.json: reference values computed by scipy, scikit-learn,
lifelines and scikit-survival on small data with ties (in scores and in times), plus the Rossi
recidivism data with scikit-survival's Cox coefficients. Run once, commit the output:

    python -m venv ~/.cache/nic/venv-stats
    ~/.cache/nic/venv-stats/bin/pip install numpy scipy scikit-learn lifelines scikit-survival
    ~/.cache/nic/venv-stats/bin/python scripts/stats_fixtures.py
"""
import json, pathlib
import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score
from lifelines import KaplanMeierFitter, CoxPHFitter
from lifelines.utils import concordance_index
from lifelines.statistics import multivariate_logrank_test
from lifelines.datasets import load_rossi
from sksurv.metrics import concordance_index_censored
from sksurv.linear_model import CoxPHSurvivalAnalysis

rng = np.random.default_rng(20261123)
out = {"correlation": [], "auc": [], "multiclass_auc": [], "concordance": [], "kaplan_meier": [], "logrank": []}

for n, digits in [(12, 0), (40, 1), (200, 0)]:
    x = np.round(rng.normal(size=n) * 3, digits)
    y = np.round(0.5 * x + rng.normal(size=n) * 2, digits)
    out["correlation"].append({"x": x.tolist(), "y": y.tolist(),
                               "spearman": float(stats.spearmanr(x, y).statistic),
                               "pearson": float(stats.pearsonr(x, y).statistic)})

for n, digits in [(10, 0), (60, 1), (300, 2)]:
    labels = rng.integers(0, 2, size=n)
    labels[0], labels[1] = 0, 1
    scores = np.round(labels * 0.8 + rng.normal(size=n), digits)
    out["auc"].append({"labels": labels.tolist(), "scores": scores.tolist(), "auc": float(roc_auc_score(labels, scores))})

for n in [30, 120]:
    labels = rng.integers(0, 3, size=n)
    logits = rng.normal(size=(n, 3)) + np.eye(3)[labels] * 1.2
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probabilities = np.round(probabilities, 2)
    probabilities = probabilities / probabilities.sum(1, keepdims=True)
    out["multiclass_auc"].append({"labels": labels.tolist(), "probabilities": probabilities.tolist(),
                                  "auc": float(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"))})

for n, time_digits, risk_digits in [(8, 0, 0), (50, 0, 1), (200, 1, 1), (300, 0, 0)]:
    time = np.round(rng.exponential(10, size=n), time_digits) + 1
    event = rng.random(n) < 0.7
    risk = np.round(-0.1 * time + rng.normal(size=n), risk_digits)
    c, concordant, discordant, tied_risk, tied_time = concordance_index_censored(event, time, risk)
    out["concordance"].append({"time": time.tolist(), "event": event.tolist(), "risk": risk.tolist(),
                               "sksurv": {"cindex": float(c), "concordant": int(concordant), "discordant": int(discordant),
                                          "tied_risk": int(tied_risk), "tied_time": int(tied_time)},
                               "lifelines": float(concordance_index(time, -risk, event))})

for n in [15, 80]:
    time = np.round(rng.exponential(8, size=n)) + 1
    event = rng.random(n) < 0.6
    kmf = KaplanMeierFitter().fit(time, event)
    sf = kmf.survival_function_.iloc[1:] if kmf.survival_function_.index[0] == 0 else kmf.survival_function_
    table = kmf.event_table.loc[sf.index]
    out["kaplan_meier"].append({"time": time.tolist(), "event": event.tolist(),
                                "times": sf.index.tolist(), "survival": sf.iloc[:, 0].tolist(),
                                "at_risk": table["at_risk"].astype(int).tolist(), "events": table["observed"].astype(int).tolist()})

for n, groups in [(40, 2), (90, 3), (25, 2)]:
    group = rng.integers(0, groups, size=n)
    time = np.round(rng.exponential(10 + 5 * group)) + 1
    event = rng.random(n) < 0.7
    result = multivariate_logrank_test(time, group, event)
    out["logrank"].append({"time": time.tolist(), "event": event.tolist(), "group": group.tolist(),
                           "statistic": float(result.test_statistic), "p_value": float(result.p_value),
                           "df": int(groups - 1)})

rossi = load_rossi()
covariates = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
structured = np.array(list(zip(rossi["arrest"].astype(bool), rossi["week"].astype(float))), dtype=[("event", bool), ("time", float)])
cox = {}
for ties in ["breslow", "efron"]:
    model = CoxPHSurvivalAnalysis(ties=ties).fit(rossi[covariates].astype(float).values, structured)
    cox[ties] = model.coef_.tolist()
risk = rossi[covariates].astype(float).values @ np.array(cox["breslow"])
cph = CoxPHFitter().fit(rossi, duration_col="week", event_col="arrest")
out["rossi"] = {"covariates": covariates, "x": rossi[covariates].astype(float).values.tolist(),
                "time": rossi["week"].astype(float).tolist(), "event": rossi["arrest"].astype(bool).tolist(),
                "sksurv_coefficients": cox, "lifelines_efron_coefficients": cph.params_[covariates].tolist(),
                "lifelines_cindex_of_breslow_risk": float(concordance_index(rossi["week"], -risk, rossi["arrest"]))}

path = pathlib.Path(__file__).resolve().parent.parent / "Tests/StatsTests/Fixtures/stats.json"
path.write_text(json.dumps(out, indent=None, separators=(",", ":")))
print(f"wrote {path} ({path.stat().st_size} bytes)")
