"""CLI read-command benchmark: wall time of a whole ``agent`` process, side by side in one run.

Measured against a bare process that imports MLflow and calls
``MlflowClient().search_registered_models()`` on the same store (what any MLflow-backed read
pays before answering). Targets, per command: median ≤ 1.5 × that baseline and ≤ 1.0 s.
A reference row shows the registry read through the MLflow library (``ModelRegistry``), the
path the read tools leave for the SQLite view (core/registry_view.py).

Set-up, in a temp MODELOPS_HOME: ``agent quickstart --as dana --no-prompt`` (two registered
versions, a pending promotion), then the printed approve command, so that ``deploy status``
reports a live deployment with a running gateway; the gateway is stopped at the end.
Commands run round-robin (one warm-up round first), so machine noise hits all of them alike.

Run: .venv/bin/python benchmarks/cli.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "breast-cancer-classifier"
TARGET_RATIO = 1.5
TARGET_WALL_S = 1.0

BASELINE = (
    "import os\n"
    "import mlflow\n"
    "from mlflow import MlflowClient\n"
    "uri = os.environ['BENCH_TRACKING_URI']\n"
    "MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()\n"
)
LIBRARY_PATH = (
    "import os\n"
    "from core.registry import ModelRegistry\n"
    "uri = os.environ['BENCH_TRACKING_URI']\n"
    "ModelRegistry(uri, os.environ['BENCH_ARTIFACT_ROOT']).list_models()\n"
)
COMMANDS = [
    ("models", "list", "--as", "dana"),
    ("models", "show", MODEL, "--as", "dana"),
    ("approvals", "list", "--as", "dana"),
    ("deploy", "status", MODEL, "--as", "dana"),
]


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def agent_argv() -> list[str]:
    script = Path(sys.executable).parent / "agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agents.cli.main"]


def run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float = 600) -> str:
    res = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if res.returncode != 0:
        shown = " ".join(a if "/" not in a else Path(a).name for a in argv)
        raise SystemExit(f"`{shown}` failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return res.stdout


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the process and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    run(argv, env, cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Timed rounds (median reported).")
    args = parser.parse_args()
    agent = agent_argv()
    with tempfile.TemporaryDirectory(prefix="modelops-bench-cli-") as tmp:
        work = Path(tmp)
        home = work / "home"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MODELOPS_", "MLFLOW_")) and k not in ("OPENAI_BASE_URL",)
        }
        env.update(
            MODELOPS_HOME=str(home),
            XDG_CONFIG_HOME=str(work / "config"),  # no personal token file: claimed identity
            MLFLOW_DISABLE_TELEMETRY="true",
            BENCH_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}",
            BENCH_ARTIFACT_ROOT=(home / "artifacts").as_uri(),
            PYTHONPATH=str(ROOT),
        )
        progress("set-up: agent quickstart --as dana --no-prompt (trains two models)…")
        out = run([*agent, "quickstart", "--as", "dana", "--no-prompt"], env, work)
        approve = next(
            ln.strip()
            for ln in out.splitlines()
            if ln.strip().startswith("agent approvals approve")
        )
        progress("set-up: approving as alice (deploys v1, starts its gateway)…")
        run([*agent, *shlex.split(approve)[1:], "--json"], env, work)
        try:
            cases: list[tuple[str, list[str]]] = [
                ("bare mlflow search_registered_models", [sys.executable, "-c", BASELINE]),
                ("ModelRegistry.list_models (mlflow)", [sys.executable, "-c", LIBRARY_PATH]),
            ]
            cases += [("agent " + " ".join(c), [*agent, *c]) for c in COMMANDS]
            times: dict[str, list[float]] = {name: [] for name, _ in cases}
            cpu: dict[str, list[float]] = {name: [] for name, _ in cases}
            load_before = os.getloadavg()[0]
            progress(f"timing: 1 warm-up round + {args.runs} rounds of {len(cases)} processes…")
            for round_no in range(args.runs + 1):
                for name, argv in cases:
                    wall, used = timed(argv, env, work)
                    if round_no:
                        times[name].append(wall)
                        cpu[name].append(used)
            load_after = os.getloadavg()[0]
        finally:
            subprocess.run(
                [*agent, "deploy", "stop", MODEL, "--as", "alice"],
                env=env,
                cwd=work,
                capture_output=True,
                timeout=120,
            )
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    base = medians[cases[0][0]]
    print()
    print(
        f"CLI read commands: median of {args.runs} runs per process, {os.cpu_count()} cores, "
        f"load average {load_before:.1f} before / {load_after:.1f} after timing"
    )
    print(
        f"{'command':56} {'wall s':>7} {'cpu s':>6} {'vs bare mlflow':>15} "
        f"{'≤ ' + format(TARGET_RATIO, 'g') + '×':>7} {'≤ ' + format(TARGET_WALL_S, 'g') + ' s':>7}"
    )
    failed = 0
    for name, _ in cases:
        value = medians[name]
        ratio = value / base
        used = statistics.median(cpu[name])
        line = f"{name:56} {value:7.3f} {used:6.2f} {ratio:14.2f}×"
        if name.startswith("agent "):
            ok_ratio, ok_wall = ratio <= TARGET_RATIO, value <= TARGET_WALL_S
            failed += not (ok_ratio and ok_wall)
            line += f" {'PASS' if ok_ratio else 'FAIL':>7} {'PASS' if ok_wall else 'FAIL':>7}"
        else:
            line += f" {'-':>7} {'-':>7}"
        print(line)
    print()
    print("Targets are on wall time; cpu s (user + system) shows what a busy machine adds.")
    print(
        "PASS: every command meets both targets." if not failed else f"FAIL: {failed} command(s)."
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
