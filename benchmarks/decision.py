"""Decision-to-serving: how long an approver waits for the answer to a decision, and how long
until production serves what they approved, on the quickstart models.

Set-up, in a temp MODELOPS_HOME: ``agent quickstart --as dana --no-prompt`` (two registered
breast-cancer models and a pending promotion). Then N decisions per case, alternating the
promoted version, each one as the control plane runs it: ``decide_approval`` and the job row
(the answer), then the job (``agents.execution.run_job``: routes, gateway, health, alias)
until production serves the approved revision. Cases: (a) the model's gateway already runs
(a new revision is a routing change), (b) cold: no gateway, the job starts one.

    python benchmarks/decision.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def setup(home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELOPS_", "MLFLOW_"))}
    env.update(MODELOPS_HOME=str(home), MLFLOW_DISABLE_TELEMETRY="true", PYTHONPATH=str(ROOT))
    subprocess.run(
        [sys.executable, "-m", "agents.cli.main", "quickstart", "--as", "dana", "--no-prompt"],
        env=env,
        cwd=home.parent,
        check=True,
        capture_output=True,
        timeout=900,
    )


def decide_and_serve(rt, approval_id: str) -> tuple[float, float, dict]:  # noqa: ANN001
    """(seconds to the answer, seconds to serving, the job's outcome)."""
    from agents.execution import run_job

    s = rt.services
    alice = s.policy.human("alice")
    t0 = time.perf_counter()
    rt.dispatcher.call_or_raise(
        alice,
        "decide_approval",
        {
            "approval_id": approval_id,
            "approve": True,
            "evidence_hash": s.approvals.get(approval_id).evidence_hash,
        },
    )
    s.execution_jobs.queue(approval_id, alice.name)
    answered = time.perf_counter() - t0
    out = run_job(rt, approval_id, alice)
    served = time.perf_counter() - t0
    if out is None or out.get("status") != "deployed":
        raise SystemExit(f"{approval_id} did not deploy: {out}")
    return answered, served, out


def next_request(rt, name: str, dataset: str) -> str:  # noqa: ANN001
    champion = rt.services.registry.alias_version(name, "champion")
    version = "1" if champion == "2" else "2"
    out = rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana"),
        "request_promotion",
        {"name": name, "version": version, "dataset": dataset},
    )
    if out["status"] != "pending_approval":
        raise SystemExit(f"request of v{version} did not reach approval: {out['status']}")
    return out["approval_id"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="Decisions per case (1-10).")
    args = parser.parse_args()
    runs = max(1, min(args.runs, 10))
    with tempfile.TemporaryDirectory(prefix="modelops-bench-decision-") as tmp:
        home = Path(tmp) / "home"
        progress("set-up: agent quickstart --as dana --no-prompt (trains two models)…")
        setup(home)
        os.environ["MODELOPS_HOME"] = str(home)
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        os.chdir(tmp)
        from agents.runtime import build_runtime
        from core.settings import load_settings

        rt = build_runtime(load_settings())
        s = rt.services
        first = s.approvals.list(status="pending")[0]
        name, dataset = first.model_name, first.evidence["dataset"]["path"]
        results: dict[str, list[tuple[float, float]]] = {"warm": [], "cold": []}
        pending = first.id
        try:
            for case in ("cold", "warm"):
                for i in range(runs + (1 if case == "warm" else 0)):
                    if case == "cold":
                        s.deployments.stop_gateway(name)
                    aid = pending or next_request(rt, name, dataset)
                    pending = None
                    answered, served, _ = decide_and_serve(rt, aid)
                    if case == "warm" and i == 0:
                        continue  # the warm case's first gateway may still be settling
                    results[case].append((answered, served))
                    progress(f"{case} #{len(results[case])}: answer {answered:.3f} s, "
                             f"serving {served:.2f} s")  # fmt: skip
        finally:
            s.deployments.stop_gateway(name)
    print(f"\ndecision benchmark, {runs} decision(s) per case, p50 seconds")
    print(f"{'case':36} {'answer':>8} {'serving':>8}")
    for case, label in (
        ("warm", "(a) gateway already running"),
        ("cold", "(b) gateway cold start"),
    ):
        rows = results[case]
        print(
            f"{label:36} {statistics.median(r[0] for r in rows):8.3f} "
            f"{statistics.median(r[1] for r in rows):8.2f}"
        )


if __name__ == "__main__":
    main()
