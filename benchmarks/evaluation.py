"""Evaluation speed: our one-pass report vs. scikit-learn / fairlearn called one by one.

Run: .venv/bin/python benchmarks/evaluation.py [--rows N] [--seed S]

Measures, on the same synthetic binary data (N rows, default 1,000,000):
  (a) scikit-learn: accuracy, precision, recall, F1, ROC AUC, log loss, Brier, confusion matrix
  (b) core.evaluation.evaluate + write_report (JSON + Markdown, no plots)
  (c) fairlearn MetricFrame: accuracy, precision, recall over a 4-group column
  (d) (b) plus fairness over the same 4-group column
and asserts that our values equal scikit-learn's / fairlearn's within 1e-9.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOL = 1e-9


def progress(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, 0.5-threshold predictions, probabilities and a 4-group column with disparities."""
    rng = np.random.default_rng(seed)
    groups = rng.choice(
        np.array(["group_a", "group_b", "group_c", "group_d"], dtype=object),
        n,
        p=[0.4, 0.3, 0.2, 0.1],
    )
    shift = np.select(
        [groups == "group_a", groups == "group_b", groups == "group_c"], [0.0, 0.3, -0.4], -0.8
    )
    signal = rng.normal(size=n)
    y = (signal + shift + rng.normal(scale=1.0, size=n) > 0).astype(np.int64)
    # Rounded to 4 decimals so there are many tied scores, as with real calibrated models.
    score = np.round(1.0 / (1.0 + np.exp(-(1.6 * signal + shift))), 4)
    pred = (score >= 0.5).astype(np.int64)
    return y, pred, score, groups


def timed(label: str, fn):  # noqa: ANN001, ANN201
    progress(f"{label} ...")
    start = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - start
    progress(f"{label}: {elapsed:.3f} s")
    return value, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fairlearn-check-rows", type=int, default=100_000, help="subsample for DP/EO cross-checks"
    )
    args = parser.parse_args()

    progress("importing scikit-learn, fairlearn, core.evaluation")
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
    )
    from sklearn import metrics as skm

    from core.evaluation import evaluate, write_report

    progress(f"generating {args.rows:,} rows (seed {args.seed})")
    y, pred, score, groups = make_data(args.rows, args.seed)
    tmp = tempfile.TemporaryDirectory(prefix="eval-bench-")
    workdir = Path(tmp.name)

    def sklearn_one_by_one() -> dict:
        return {
            "accuracy": skm.accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred),
            "recall": skm.recall_score(y, pred),
            "f1": skm.f1_score(y, pred),
            "auc_roc": skm.roc_auc_score(y, score),
            "log_loss": skm.log_loss(y, score),
            "brier": skm.brier_score_loss(y, score),
            "confusion_matrix": skm.confusion_matrix(y, pred),
        }

    def ours_report():  # noqa: ANN202
        result = evaluate("classification", y, pred, score)
        write_report(result, workdir / "plain", plots=False)
        return result

    def fairlearn_frame() -> MetricFrame:
        return MetricFrame(
            metrics={
                "accuracy": skm.accuracy_score,
                "precision": skm.precision_score,
                "recall": skm.recall_score,
            },
            y_true=y,
            y_pred=pred,
            sensitive_features=groups,
        )

    def ours_fair_report():  # noqa: ANN202
        result = evaluate("classification", y, pred, score, sensitive_features=groups)
        write_report(result, workdir / "fair", plots=False)
        return result

    # Warm up every path on a small slice so one-off import/first-call costs are not timed.
    progress("warming up all four paths on 2,000 rows")
    full = (y, pred, score, groups)
    y, pred, score, groups = (a[:2000] for a in full)
    sklearn_one_by_one(), ours_report(), fairlearn_frame(), ours_fair_report()
    y, pred, score, groups = full

    sk, t_sk = timed("(a) scikit-learn, 8 metric functions one by one", sklearn_one_by_one)
    ours, t_ours = timed("(b) our full report, no plots", ours_report)
    frame, t_fl = timed("(c) fairlearn MetricFrame, 3 metrics x 4 groups", fairlearn_frame)
    fair, t_fair = timed("(d) our report with fairness over 4 groups", ours_fair_report)

    progress("verifying values")
    for name in ("accuracy", "precision", "recall", "f1", "auc_roc", "log_loss", "brier"):
        assert abs(ours.metrics[name] - sk[name]) <= TOL, (name, ours.metrics[name], sk[name])
        assert abs(fair.metrics[name] - sk[name]) <= TOL, (name, fair.metrics[name], sk[name])
    assert ours.confusion_matrix is not None
    assert np.array_equal(np.array(ours.confusion_matrix.matrix), sk["confusion_matrix"])
    assert fair.fairness is not None
    by_group = frame.by_group
    for g in fair.fairness.groups:
        for name in ("accuracy", "precision", "recall"):
            expected = float(by_group.loc[g.group, name])
            assert abs(g.metrics[name] - expected) <= TOL, (
                g.group,
                name,
                g.metrics[name],
                expected,
            )
    m = min(args.fairlearn_check_rows, args.rows)
    sub = np.random.default_rng(args.seed + 1).choice(args.rows, m, replace=False)
    progress(f"cross-checking DP / EO against fairlearn on a {m:,}-row subsample")
    sub_fair = evaluate(
        "classification",
        y[sub],
        pred[sub],
        score[sub],
        sensitive_features=groups[sub],
        thresholds=False,
    ).fairness
    assert sub_fair is not None
    for name, fn in (
        ("demographic_parity_difference", demographic_parity_difference),
        ("demographic_parity_ratio", demographic_parity_ratio),
        ("equalized_odds_difference", equalized_odds_difference),
    ):
        expected = float(fn(y[sub], pred[sub], sensitive_features=groups[sub]))
        assert abs(sub_fair.metrics[name] - expected) <= TOL, (
            name,
            sub_fair.metrics[name],
            expected,
        )
    progress("all values equal within 1e-9")
    tmp.cleanup()

    rows = [
        ("metrics: sklearn x8 (a) vs our full report (b)", t_sk, t_ours, 1.5),
        ("fairness: MetricFrame (c) vs our report + fairness (d)", t_fl, t_fair, 3.0),
    ]
    print()
    print(f"Evaluation benchmark, {args.rows:,} rows, binary, 4 groups")
    print(f"{'comparison':<56} {'reference s':>11} {'ours s':>8} {'ref/ours':>9} {'target':>8}")
    for label, ref, mine, target in rows:
        status = "ok" if mine < target else "MISSED"
        print(
            f"{label:<56} {ref:>11.3f} {mine:>8.3f} {ref / mine:>8.1f}x {'<' + str(target) + ' s':>6} {status}"
        )
    print()
    print("Our report includes all of (a) plus macro/micro/weighted and per-class metrics,")
    print("average precision, calibration + ECE, ROC/PR curves and exact best thresholds.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
