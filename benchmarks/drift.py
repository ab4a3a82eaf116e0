"""Data drift on 1,000,000 rows x (20 numeric + 5 categorical) against a 100,000-row reference:
core.monitoring.drift vs Evidently's DataDriftPreset on the same data, in the same run.

Evidently runs in its own virtual environment (its pins clash with ours): by default
``benchmarks/.venv-evidently`` (gitignored), created on first use with ``python -m venv`` and
``pip install evidently``; ``--evidently-python PATH`` uses another interpreter, ``--no-evidently``
skips it. The data is written once to a temporary Parquet file that both sides read.

    .venv/bin/python benchmarks/drift.py [--rows 1000000] [--reference 100000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVIDENTLY_VENV = ROOT / "benchmarks" / ".venv-evidently"
EVIDENTLY_VERSION = "0.7.23"
N_NUM, N_CAT = 20, 5

EVIDENTLY_SCRIPT = r"""
import json, sys, time
import pandas as pd
from evidently import Dataset, DataDefinition, Report
from evidently.presets import DataDriftPreset
ref = pd.read_parquet(sys.argv[1]); cur = pd.read_parquet(sys.argv[2])
num = [c for c in ref.columns if c.startswith("num_")]
cat = [c for c in ref.columns if c.startswith("cat_")]
dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
t0 = time.perf_counter()
r = Dataset.from_pandas(ref, data_definition=dd)
c = Dataset.from_pandas(cur, data_definition=dd)
snap = Report([DataDriftPreset()]).run(c, r)
seconds = time.perf_counter() - t0
out = {}
for m in snap.dict()["metrics"]:
    cfg = m.get("config", {})
    col = cfg.get("column")
    if col is None:
        continue
    method = cfg.get("method") or ""
    thr = cfg.get("threshold")
    value = m["value"]
    value = value if isinstance(value, (int, float)) else None
    out[col] = {"method": method, "score": value, "threshold": thr}
print(json.dumps({"seconds": seconds, "columns": out}))
"""


def make_data(rows: int, ref_rows: int, seed: int = 0):  # noqa: ANN201
    """Known shifts: numeric 0-4 mean shift, 5-7 variance shift, 8-19 unchanged;
    cat_0 gets a new category, cat_1 changed shares, cat_2-4 unchanged."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    cats = np.array(list("ABCDEFGH"))

    def frame(n: int, current: bool) -> pd.DataFrame:
        data = {}
        for j in range(N_NUM):
            loc = 0.3 if current and j < 5 else 0.0
            scale = 1.6 if current and 5 <= j < 8 else 1.0
            data[f"num_{j}"] = rng.normal(loc, scale, n)
        for j in range(N_CAT):
            p = np.full(8, 1 / 8)
            if current and j == 1:
                p = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])
            values = cats[rng.choice(8, size=n, p=p)]
            if current and j == 0:
                values[rng.random(n) < 0.1] = "NEW"
            data[f"cat_{j}"] = values
        return pd.DataFrame(data)

    return frame(ref_rows, False), frame(rows, True)


def ours(ref, cur) -> tuple[float, dict]:  # noqa: ANN001
    from core.monitoring.drift import DriftConfig, dataset_drift, value_counts

    t0 = time.perf_counter()
    kinds = {c: ("numeric" if c.startswith("num_") else "categorical") for c in ref.columns}
    reference = {
        c: (ref[c].to_numpy() if kinds[c] == "numeric" else value_counts(ref[c]))
        for c in ref.columns
    }
    current = {
        c: (cur[c].to_numpy() if kinds[c] == "numeric" else value_counts(cur[c]))
        for c in cur.columns
    }
    result = dataset_drift(reference, current, kinds, DriftConfig())
    return time.perf_counter() - t0, {c.column: c for c in result.columns}


def evidently_python(given: str | None) -> Path | None:
    if given:
        return Path(given)
    py = EVIDENTLY_VENV / "bin" / "python"
    if not py.exists():
        print(
            f"creating {EVIDENTLY_VENV.relative_to(ROOT)} (evidently=={EVIDENTLY_VERSION})…",
            flush=True,
        )
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        done = subprocess.run(
            # Evidently 0.7 fails to import under pandas 3 (its own pin is looser).
            [str(py), "-m", "pip", "install", "-q", f"evidently=={EVIDENTLY_VERSION}", "pandas<3"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            print(f"pip could not install evidently: {done.stderr.strip()[-2000:]}")
            return None
    return py


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--reference", type=int, default=100_000)
    p.add_argument("--evidently-python", default=None)
    p.add_argument("--no-evidently", action="store_true")
    p.add_argument("--repeat", type=int, default=3, help="Our timing: best of N runs.")
    args = p.parse_args()
    ref, cur = make_data(args.rows, args.reference)
    print(
        f"data: current {len(cur):,} rows x {N_NUM} numeric + {N_CAT} categorical; reference {len(ref):,} rows"
    )
    times = []
    for _ in range(args.repeat):
        seconds, mine = ours(ref, cur)
        times.append(seconds)
    ours_s = min(times)
    drifted = sorted(c for c, r in mine.items() if r.drifted)
    print(
        f"core.monitoring.drift: {ours_s:.3f} s (best of {args.repeat}: {', '.join(f'{t:.3f}' for t in times)}); drifted: {', '.join(drifted)}"
    )
    if args.no_evidently:
        return
    py = evidently_python(args.evidently_python)
    if py is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        rp, cp = Path(tmp) / "ref.parquet", Path(tmp) / "cur.parquet"
        ref.to_parquet(rp, index=False)
        cur.to_parquet(cp, index=False)
        done = subprocess.run(
            [str(py), "-c", EVIDENTLY_SCRIPT, str(rp), str(cp)], capture_output=True, text=True
        )
    if done.returncode != 0:
        print(f"evidently failed: {done.stderr.strip()[-3000:]}")
        return
    ev = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"evidently {EVIDENTLY_VERSION} DataDriftPreset: {ev['seconds']:.3f} s")
    print(
        f"ratio: {ev['seconds'] / ours_s:.1f}x faster (target >= 25x); ours under 1.5 s: {ours_s < 1.5}"
    )
    same = differ = 0
    for col, r in sorted(mine.items()):
        e = ev["columns"].get(col)
        if e is None:
            print(f"  {col}: not in Evidently's output")
            continue
        method = {"wasserstein": "wasserstein", "jensenshannon": "jensenshannon"}.get(
            r.method, r.method
        )
        e_method = str(e["method"]).lower()
        method_same = method.split("_")[0][:6] in e_method.replace("-", "").replace(
            " ", ""
        ) or e_method.startswith(method[:4])
        e_drift = (
            None
            if e["score"] is None or e["threshold"] is None
            else (
                e["score"] >= e["threshold"]
                if r.method not in ("ks", "chisquare", "z")
                else e["score"] < e["threshold"]
            )
        )
        agree = e_drift == r.drifted
        same += agree
        differ += not agree
        flag = "" if agree else "  <-- DIFFERENT"
        print(
            f"  {col}: ours {r.method} {r.score:.5f} drift={r.drifted} | evidently {e['method']} {e['score'] if e['score'] is None else round(e['score'], 5)} drift={e_drift} (same method: {method_same}){flag}"
        )
    print(f"agreement: {same} of {same + differ} columns have the same verdict")


if __name__ == "__main__":
    main()
