"""What the agent machinery adds per step, and how fast the agent CLI starts.

Per step: a role agent run against the scripted OpenAI-compatible server (answering at once)
whose model calls ``list_approvals`` K times and then answers. The time inside the model call
(the openai client's HTTP round trip) and inside the tool function is measured and subtracted;
what remains is the graph (LLM node + tool node, SQLite checkpoints), the dispatcher
(validation, policy) and the audit append. Start-up: whole-process wall time of ``agent
--help`` and ``agent agents list`` next to ``python -c pass``, in the same run.

    .venv/bin/python benchmarks/agent_overhead.py [--runs 30] [--steps 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_STEP_MS = 5.0
TARGET_START_S = 0.5


class Timed:
    """Accumulates the time spent inside a wrapped callable."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.total = 0.0
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.func(*args, **kwargs)
        finally:
            self.total += time.perf_counter() - start
            self.calls += 1

    def reset(self) -> None:
        self.total, self.calls = 0.0, 0


def serve_script(runs: int, steps: int, conn: Connection) -> None:
    """The scripted server in its own process, so its threads do not share our GIL and
    their work is not counted as ours. The whole script is queued up front."""
    from tests.fakes.openai_server import ScriptedOpenAIServer

    with ScriptedOpenAIServer() as server:
        for _ in range(runs):
            for _ in range(steps):
                server.enqueue_tool_calls([{"name": "list_approvals", "arguments": {}}])
            server.enqueue_text("No approvals pending.")
        conn.send(server.base_url)
        conn.recv()  # until the parent is done


def measure_steps(runs: int, steps: int) -> dict[str, float]:
    from agents.role_agent import LLMChatModel
    from agents.runtime import build_runtime
    from agents.supervisor import AgentSystem
    from core.settings import load_settings

    warmup = 3
    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.Process(target=serve_script, args=(runs + warmup, steps, child))
    proc.start()
    base_url = parent.recv()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(MODELOPS_HOME=tmp, OPENAI_BASE_URL=base_url, OPENAI_API_KEY="sk-bench")
        rt = build_runtime(load_settings())
        system = AgentSystem(rt, max_steps=steps + 1)
        catalog = rt.dispatcher.catalog
        tool_timer = Timed(catalog["list_approvals"].func)
        catalog["list_approvals"] = dataclasses.replace(catalog["list_approvals"], func=tool_timer)
        audit = rt.services.audit
        audit_timer = Timed(audit.append)
        audit.append = audit_timer  # type: ignore[method-assign]  (instance attribute wins)
        llm_timer = Timed(LLMChatModel.respond)
        LLMChatModel.respond = lambda self, *a, **k: llm_timer(self, *a, **k)  # type: ignore[method-assign]

        per_step, without_audit, per_step_with_llm, llm_calls, tool_calls = [], [], [], [], []
        audits, dispatch = [], []
        for i in range(runs + warmup):  # the first runs warm caches and imports
            llm_timer.reset()
            tool_timer.reset()
            audit_timer.reset()
            start = time.perf_counter()
            result = system.run("ml-engineer", "list approvals", user="alice")
            total = time.perf_counter() - start
            assert result["status"] == "done", result
            if i < warmup:
                continue
            n_steps = steps + 1  # K tool steps + the answering step
            per_step.append((total - llm_timer.total - tool_timer.total) / n_steps)
            without_audit.append(
                (total - llm_timer.total - tool_timer.total - audit_timer.total) / n_steps
            )
            audits.append(audit_timer.total / audit_timer.calls)
            per_step_with_llm.append((total - tool_timer.total) / n_steps)
            llm_calls.append(llm_timer.total / llm_timer.calls)
            tool_calls.append(tool_timer.total / tool_timer.calls)

        # The dispatcher alone (validate + authorize + audit), for the breakdown.
        actor = rt.services.policy.agent("ml-engineer", "alice")
        for _ in range(200):
            tool_timer.reset()
            start = time.perf_counter()
            rt.dispatcher.call(actor, "list_approvals", {})
            dispatch.append(time.perf_counter() - start - tool_timer.total)
        system.close()
    parent.send("stop")
    proc.join(timeout=10)
    ms = 1000.0
    return {
        "step_overhead_ms": statistics.median(per_step) * ms,
        "step_overhead_p90_ms": statistics.quantiles(per_step, n=10)[-1] * ms,
        "step_without_audit_ms": statistics.median(without_audit) * ms,
        "audit_append_ms": statistics.median(audits) * ms,
        "step_with_llm_roundtrip_ms": statistics.median(per_step_with_llm) * ms,
        "llm_roundtrip_ms": statistics.median(llm_calls) * ms,
        "tool_work_ms": statistics.median(tool_calls) * ms,
        "dispatch_audit_ms": statistics.median(dispatch) * ms,
    }


def wall(cmd: list[str], repeat: int) -> float:
    times = []
    env = {**os.environ, "MODELOPS_HOME": tempfile.mkdtemp()}
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_startup(repeat: int) -> dict[str, float]:
    agent = Path(sys.executable).parent / "agent"
    base = [str(agent)] if agent.exists() else [sys.executable, "-m", "agents.cli.main"]
    return {
        "python -c pass": wall([sys.executable, "-c", "pass"], repeat),
        "agent --help": wall([*base, "--help"], repeat),
        "agent agents list": wall([*base, "agents", "list"], repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=7, help="Process start-up repetitions.")
    args = parser.parse_args()

    steps = measure_steps(args.runs, args.steps)
    start = measure_startup(args.repeat)

    print(f"Agent step overhead ({args.runs} runs x {args.steps + 1} steps, median)")
    print(f"{'measure':44} {'ms':>9} {'vs target':>10}")
    rows = [
        ("per step: graph + dispatch + policy + audit", steps["step_overhead_ms"], TARGET_STEP_MS),
        ("  p90", steps["step_overhead_p90_ms"], TARGET_STEP_MS),
        ("  of which not the audit append", steps["step_without_audit_ms"], TARGET_STEP_MS),
        ("  one audit append (policies/audit.py)", steps["audit_append_ms"], None),
        ("per step incl. openai client round trip", steps["step_with_llm_roundtrip_ms"], None),
        ("  openai client round trip (subtracted)", steps["llm_roundtrip_ms"], None),
        ("  list_approvals tool work (subtracted)", steps["tool_work_ms"], None),
        ("  dispatcher alone (validate+policy+audit)", steps["dispatch_audit_ms"], None),
    ]
    for name, value, target in rows:
        ratio = f"{value / target:.2f}x" if target else ""
        print(f"{name:44} {value:9.2f} {ratio:>10}")
    print()
    print("Process start-up (whole process, median wall time)")
    print(f"{'command':22} {'s':>7} {'vs python -c pass':>18} {'vs 0.5 s target':>16}")
    base = start["python -c pass"]
    for name, value in start.items():
        print(f"{name:22} {value:7.3f} {value / base:17.1f}x {value / TARGET_START_S:15.2f}x")


if __name__ == "__main__":
    main()
