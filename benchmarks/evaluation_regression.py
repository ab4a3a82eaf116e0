"""Regression evaluation speed: rows, never distinct target values, set the cost.

Run: .venv/bin/python benchmarks/evaluation_regression.py [--rows N] [--distinct K] [--seed S]

Measures, on the same synthetic regression data (N rows, default 100,000, with exactly K
distinct target values, default 10,000), side by side in one run:
  (a) scikit-learn: mean_absolute_error, root_mean_squared_error, r2_score,
      mean_absolute_percentage_error (one call each)
  (b) core.evaluation.evaluate("regression", ...): the same metrics (plus MSE); (b') the
      same with 100 distinct targets (its time must not depend on the count)
  (c) (b) plus residual slices over 5 feature columns and write_report (JSON + Markdown)
  (d) tools.evaluation_tools.evaluate_version on a registered LinearRegression and a CSV of
      the rows (load, digest check, predict, evaluate), in a temporary MODELOPS_HOME
and asserts that our values equal scikit-learn's within 1e-9 (relative).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOL = 1e-9


def progress(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def timed(label: str, fn, repeat: int = 3):  # noqa: ANN001, ANN201
    """Best of ``repeat`` runs (the first also warms caches)."""
    progress(f"{label} ...")
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    progress(f"{label}: {best:.4f} s")
    return value, best


def make_data(n: int, k: int, seed: int):  # noqa: ANN201
    """Five features, a target with exactly ``k`` distinct values (never 0: MAPE is defined)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    raw = X @ np.array([3.0, -2.0, 1.0, 0.5, 0.0]) + rng.normal(scale=0.5, size=n)
    # Rank the raw signal into k equal-size bins: exactly k distinct values, 1..k.
    y = (np.argsort(np.argsort(raw)) * k // n + 1).astype(np.float64)
    pred = y + rng.normal(scale=k * 0.05, size=n)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    return frame, y, pred


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-tool", action="store_true", help="skip (d), the registry path")
    args = parser.parse_args()

    progress("importing scikit-learn, core.evaluation")
    from sklearn import metrics as skm

    from core.evaluation import evaluate, write_report

    frame, y, pred = make_data(args.rows, args.distinct, args.seed)
    assert len(np.unique(y)) == args.distinct
    progress(f"{args.rows:,} rows, {len(np.unique(y)):,} distinct targets (seed {args.seed})")

    def sklearn_metrics() -> dict[str, float]:
        return {
            "mae": skm.mean_absolute_error(y, pred),
            "rmse": skm.root_mean_squared_error(y, pred),
            "r2": skm.r2_score(y, pred),
            "mape": skm.mean_absolute_percentage_error(y, pred),
        }

    ref, t_sk = timed("(a) scikit-learn metric calls", sklearn_metrics)
    ours, t_core = timed("(b) evaluate(regression)", lambda: evaluate("regression", y, pred))
    for name, value in ref.items():
        got = ours.metrics[name]
        assert abs(got - value) <= TOL * max(1.0, abs(value)), (name, got, value)

    # The same rows with 100 distinct targets: the time must not depend on the count.
    _, y_few, pred_few = make_data(args.rows, 100, args.seed)
    _, t_few = timed(
        "(b') evaluate(regression), 100 distinct", lambda: evaluate("regression", y_few, pred_few)
    )

    def full() -> None:
        result = evaluate("regression", y, pred, features_df=frame)
        with tempfile.TemporaryDirectory() as tmp:
            write_report(result, tmp)

    _, t_full = timed("(c) evaluate + residual slices + report", full)

    t_tool = None
    if not args.skip_tool:
        t_tool = tool_path(frame, y, ref_rows=args.rows)

    rows = [
        ("(a) scikit-learn: MAE, RMSE, R², MAPE", t_sk),
        ("(b) core evaluate (regression metrics)", t_core),
        ("(b') (b) with 100 distinct targets", t_few),
        ("(c) (b) + residual slices + report", t_full),
    ]
    if t_tool is not None:
        rows.append(("(d) evaluate_version (load, predict, evaluate)", t_tool))
    print()
    print(f"regression evaluation, {args.rows:,} rows, {args.distinct:,} distinct targets")
    print(f"{'':48} {'seconds':>9} {'vs (a)':>8}")
    for label, t in rows:
        print(f"{label:48} {t:9.4f} {t / t_sk:7.2f}x")
    print("values equal scikit-learn's within 1e-9 (relative)")
    return 0


def tool_path(frame, y, ref_rows: int) -> float:  # noqa: ANN001
    """(d): the tool path a user runs, on a throwaway home."""
    from sklearn.linear_model import LinearRegression

    with tempfile.TemporaryDirectory() as home:
        os.environ["MODELOPS_HOME"] = home
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from core.honesty import HonestyMetadata
        from core.settings import load_settings
        from tools.context import Services
        from tools.evaluation_tools import evaluate_version

        progress("(d) registering a LinearRegression in a temporary home")
        services = Services(load_settings())
        model = LinearRegression().fit(frame, y)
        honesty = HonestyMetadata(
            implementation_status="HEURISTIC",
            accuracy_claim="benchmark model",
            validation_method="none (benchmark)",
            honesty_warning="UNVALIDATED",
        )
        info = services.registry.log_sklearn_model(
            "bench-regressor", model, X_sample=frame.head(3), honesty=honesty
        )
        path = Path(home) / "rows.csv"
        frame.assign(target=y).to_csv(path, index=False)
        cwd = os.getcwd()
        os.chdir(home)  # datasets are read from under the working directory or the home
        try:
            run, t = timed(
                "(d) evaluate_version",
                lambda: evaluate_version(
                    services, info.name, info.version, str(path), "target", log_run=False
                ),
                repeat=2,
            )
        finally:
            os.chdir(cwd)
        assert run.task == "regression" and run.n == ref_rows
        return t


if __name__ == "__main__":
    raise SystemExit(main())
