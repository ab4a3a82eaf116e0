"""Estimated performance under covariate shift: core.monitoring's CBPE vs NannyML 0.13.1's CBPE
on the same predictions, beside the realized value (breast cancer, a feature-quantile shift).

NannyML runs in its own virtual environment: by default ``benchmarks/.venv-nannyml``
(gitignored), created on first use with ``python -m venv`` and ``pip install nannyml==0.13.1
statsmodels``; ``--nannyml-python PATH`` uses another interpreter.

    .venv/bin/python benchmarks/cbpe.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NANNYML_VENV = ROOT / "benchmarks" / ".venv-nannyml"
NANNYML_VERSION = "0.13.1"
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")

NANNYML_SCRIPT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import nannyml as nml
spec = json.load(open(sys.argv[1]))
ref, cur = pd.DataFrame(spec["reference"]), pd.DataFrame(spec["analysis"])
classes = spec["classes"]
if len(classes) == 2:
    problem, proba, metrics = "classification_binary", "p1", spec["metrics"]
else:
    problem, metrics = "classification_multiclass", ["accuracy", "roc_auc"]
    proba = {c: f"p{i}" for i, c in enumerate(classes)}
est = nml.CBPE(problem_type=problem, y_pred_proba=proba, y_pred="y_pred", y_true="y_true",
               metrics=metrics, chunk_number=1)
est.fit(ref)
res = est.estimate(cur).filter(period="analysis").to_df()
out = {m: float(res[(m, "value")].iloc[0]) for m in metrics}
print(json.dumps({"metrics": out, "rows": int(len(cur))}))
"""


def nannyml_python(given: str | None = None) -> tuple[Path | None, str]:
    """An interpreter with NannyML importable (the venv is created once, then reused), or
    None and pip's reason."""
    if given:
        return Path(given), ""
    py = NANNYML_VENV / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import nannyml"], capture_output=True)
    if ok and ok.returncode == 0:
        return py, ""
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(NANNYML_VENV)], check=True)
    # CBPE imports statsmodels without declaring it (see the NOTES).
    done = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", f"nannyml=={NANNYML_VERSION}", "statsmodels"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return None, f"pip could not install nannyml: {done.stderr.strip()[-1500:]}"
    return py, ""


def shifted_breast_cancer(feature: str = "mean texture", q: float = 0.6, seed: int = 0):  # noqa: ANN201
    """(X_train, y_train, X_ref, y_ref, X_cur, y_cur): rows below the feature's q-quantile split
    in halves for training and the labelled reference; the rows above it are the shifted
    traffic. P(label | features) is unchanged: covariate shift only."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    x, y = data.data, data.target.to_numpy()
    low = (x[feature] <= x[feature].quantile(q)).to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(np.flatnonzero(low))
    tr, ref = idx[: len(idx) // 2], idx[len(idx) // 2 :]
    cur = np.flatnonzero(~low)
    return x.iloc[tr], y[tr], x.iloc[ref], y[ref], x.iloc[cur], y[cur]


def ours(
    ref_proba: np.ndarray, ref_y: np.ndarray, ref_pred: np.ndarray, proba: np.ndarray, pred: Any
) -> dict[str, Any]:
    from core.monitoring.performance import Reference, estimate_performance

    reference = Reference(ref_proba, ref_y, ref_pred)
    return estimate_performance(
        proba.tolist(), predictions=list(pred), reference=reference, min_rows=1
    )


def nannyml(
    py: Path,
    classes: list[Any],
    ref: tuple[np.ndarray, np.ndarray, np.ndarray],
    cur: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, float]:
    """NannyML's CBPE estimates on the analysis rows: ``ref``/``cur`` = (proba, y_pred, y_true)."""

    def frame(proba: np.ndarray, pred: np.ndarray, y: np.ndarray) -> dict[str, list[Any]]:
        cols = {f"p{i}": proba[:, i].tolist() for i in range(proba.shape[1])}
        return {**cols, "y_pred": np.asarray(pred).tolist(), "y_true": np.asarray(y).tolist()}

    spec = {"classes": classes, "metrics": list(METRICS), "reference": frame(*ref),
            "analysis": frame(*cur)}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec))
        done = subprocess.run(
            [str(py), "-c", NANNYML_SCRIPT, str(path)], capture_output=True, text=True, timeout=300
        )
    if done.returncode != 0:
        raise RuntimeError(f"nannyml failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["metrics"]


def realized(y: np.ndarray, pred: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from sklearn import metrics as m

    return {
        "accuracy": m.accuracy_score(y, pred),
        "precision": m.precision_score(y, pred, zero_division=0),
        "recall": m.recall_score(y, pred),
        "f1": m.f1_score(y, pred),
        "roc_auc": m.roc_auc_score(y, proba[:, 1]),
    }


def compare(model: Any, py: Path | None) -> dict[str, dict[str, float]]:
    """Our estimate, NannyML's (when ``py``) and the realized value for one fitted model."""
    x_tr, y_tr, x_ref, y_ref, x_cur, y_cur = shifted_breast_cancer()
    model.fit(x_tr, y_tr)
    ref_p, ref_pred = model.predict_proba(x_ref), model.predict(x_ref)
    cur_p, cur_pred = model.predict_proba(x_cur), model.predict(x_cur)
    est = ours(ref_p, y_ref, ref_pred, cur_p, cur_pred)
    out = {"ours": est["metrics"], "realized": realized(y_cur, cur_pred, cur_p)}
    if py is not None:
        out["nannyml"] = nannyml(py, [0, 1], (ref_p, ref_pred, y_ref), (cur_p, cur_pred, y_cur))
    return out


def models() -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "random_forest": RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1),
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--nannyml-python", default=None)
    p.add_argument("--no-nannyml", action="store_true")
    args = p.parse_args()
    py, why = (None, "skipped") if args.no_nannyml else nannyml_python(args.nannyml_python)
    if py is None:
        print(f"NannyML not run: {why}")
    for name, model in models().items():
        res = compare(model, py)
        print(f"\n{name}")
        for metric in METRICS:
            row = "  ".join(
                f"{who} {vals[metric]:.4f}" for who, vals in res.items() if metric in vals
            )
            print(f"  {metric:<10} {row}")


if __name__ == "__main__":
    main()
