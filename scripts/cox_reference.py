# Reference partial log-likelihoods for Tests/NeuralTests/CoxRiskSetTests.swift (run once in a venv with
# numpy, pandas, statsmodels, lifelines; the test stores the printed numbers; the suite never runs Python).
# Risk scores f enter as one covariate with coefficient 1, so loglik(beta=1) is the partial likelihood of f.
import numpy as np
from statsmodels.duration.hazard_regression import PHReg
time = np.array([5, 2, 2, 9, 4, 4, 4, 7, 1, 6, 6, 3], dtype=float)
event = np.array([1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 1])
f = np.array([0.3, -1.2, 0.8, 0.1, 1.5, -0.4, 0.0, 0.6, -0.9, 2.1, -0.7, 0.25])
for ties in ["breslow", "efron"]:
    m = PHReg(time, f[:, None], status=event, ties=ties)
    print(ties, "statsmodels loglik", repr(m.loglike(np.array([1.0]))), "events", event.sum())
import pandas as pd
from lifelines import CoxPHFitter
df = pd.DataFrame({"f": f, "T": time, "E": event})
from lifelines.fitters.coxph_fitter import SemiParametricPHFitter
cph = SemiParametricPHFitter()
# lifelines is Efron-only: its log-likelihood at beta = 1 (private but stable helper used by fit).
X = df[["f"]].values; T = df["T"].values; E = df["E"].values.astype(bool)
order = np.argsort(T, kind="stable")
d = df.iloc[order]
_, _, ll = cph._get_efron_values_single(d[["f"]], d["T"], d["E"].astype(bool), pd.Series(np.ones(len(T)), index=d.index), None, np.array([1.0]))
print("efron lifelines loglik", repr(ll))
