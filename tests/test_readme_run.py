"""The README's commands, run in the order it gives them, on a fresh home, as a new user would.

Every ``agent …`` line in README.md's shell blocks runs through bash in a new working directory
(``MODELOPS_HOME`` is the default ``./.modelops``), starting with what ``make demo`` runs.
Placeholders are filled from what the earlier commands printed, as a reader fills them:
``apr-…`` is the approval the last command opened, the evidence hash is the one
``agent approvals show`` prints, ``EVALUATION_ID`` the evaluation the last run stored, and an
optional part in brackets (``[--to 1]``) is left out. Each command must exit 0 without a
traceback, unless it is listed below with the reason. A command that cannot run inside a test
(a server that runs until stopped, GitHub) is listed with the test that covers it instead, and
the list may hold nothing the README does not show, so neither side drifts.

The static checks (every command exists, every ``--input`` validates) are in
tests/test_readme_truth.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_breast_cancer

from tests.test_readme_truth import shell_commands

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

# Commands the README shows that are not run here, by prefix, and why.
NOT_RUN = {
    "agent serve": "runs until stopped; tests/test_server_api.py starts it on a free port",
    "agent mcp": "an MCP server runs until its client leaves; tests/test_mcp.py connects the SDK's client",
    "agent --server": "needs that server; tests/test_server_flow.py runs the CLI against one",
    "agent review --git": "needs a git checkout with a main branch; tests/test_review_checks.py makes one",
    "agent review --github": "needs GitHub; tests/test_review_github.py uses a fake GitHub API",
}
# Input a command reads on stdin (a REPL leaves at /exit).
STDIN = {
    "agent chat": "Which models do we have?\n/exit\n",
    # A batch of three rows, as a person would pipe it in.
    "agent predict breast-cancer-classifier --as alice --input -": json.dumps(
        {"features": load_breast_cancer().data[:3].tolist()}
    ),
}
# The same command, bounded for a test.
SHORTER = {"--for 10m": "--for 3s"}
_APPROVAL = re.compile(r"\bapr-[0-9a-f]{6,}\b")
_EVALUATION = re.compile(r"\beval show ([0-9a-f]{16,})\b")
_OPTIONAL = re.compile(r"\s\[--[^\]]*\]")


def readme_commands() -> list[tuple[int, str]]:
    return shell_commands(README, raw=True)


def _skip_reason(command: str) -> str | None:
    return next((why for prefix, why in NOT_RUN.items() if command.startswith(prefix)), None)


def test_every_skipped_command_is_in_the_readme() -> None:
    """A stale entry in NOT_RUN would hide a command that was renamed or removed."""
    commands = [c for _, c in readme_commands()]
    for prefix in NOT_RUN:
        assert any(c.startswith(prefix) for c in commands), f"NOT_RUN lists {prefix!r}"
    assert sum(_skip_reason(c) is None for c in commands) >= 30


class Reader:
    """The reader following the README: runs each command and remembers what it printed."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MODELOPS_", "OPENAI_")) or k == "MODELOPS_REQUIRE_PG"
        }
        self.env.update(
            PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            MODELOPS_HOME=str(cwd / ".modelops"),  # the default, named so a leak is found
            XDG_CONFIG_HOME=str(cwd / "xdg-config"),  # no token from the developer's config
            MLFLOW_DISABLE_TELEMETRY="true",
            PYTHONPATH=str(ROOT),
        )
        self.approval: str | None = None
        self.evaluation: str | None = None
        self.log: list[str] = []

    def sh(self, command: str, stdin: str | None = None, timeout: int = 300):
        started = time.monotonic()
        res = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.log.append(f"[{time.monotonic() - started:5.1f}s rc={res.returncode}] {command}")
        for found in _APPROVAL.findall(res.stdout + res.stderr)[-1:]:
            self.approval = found
        for found in _EVALUATION.findall(res.stdout)[-1:]:
            self.evaluation = found
        return res

    def evidence_hash(self, approval: str) -> str:
        shown = self.sh(f"agent approvals show {approval} --as alice --json")
        assert shown.returncode == 0, shown.stderr
        return json.loads(shown.stdout)["evidence_hash"]

    def fill(self, command: str) -> str:
        command = _OPTIONAL.sub("", command)
        for long, short in SHORTER.items():
            command = command.replace(long, short)
        if "apr-" in command:
            assert self.approval, f"no approval printed before: {command}"
            command = re.sub(r"apr-(?:[0-9a-f]+|…)", self.approval, command)
        if "--evidence-hash" in command:
            digest = self.evidence_hash(self.approval or "")
            command = re.sub(r"--evidence-hash \S+", f"--evidence-hash {digest}", command)
        if "EVALUATION_ID" in command:
            assert self.evaluation, f"no evaluation printed before: {command}"
            command = command.replace("EVALUATION_ID", self.evaluation)
        return command


NAME = "breast-cancer-classifier"


def _production(reader: Reader) -> dict:
    status = reader.sh("agent deploy status --as carol --json")
    assert status.returncode == 0, status.stderr
    deployments = json.loads(status.stdout)["deployments"]
    return next(d for d in deployments if d["name"] == NAME and d["environment"] == "production")


def _weights(reader: Reader) -> dict[str, float]:
    return {v: w for v, w in _production(reader)["weights"].items() if w > 0}


def _send_traffic(reader: Reader, requests: int) -> None:
    """Production traffic between two README commands (a canary step advances only after the
    candidate served the policy's minimum), as the gateway's users would send it."""
    url = _production(reader)["gateway"]["url"]
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer().data.tolist()
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(requests):
            assert client.post("/predict", json={"features": rows[i % len(rows)]}).is_success


def _prediction_is_the_documented_one(reader: Reader, out: str) -> str | None:
    """The README's sample answer is what the gateway returns for that row (the curl line):
    the same fields, the same values (the id differs per call, probabilities to 1e-3)."""
    text = README.read_text()
    sample = text[text.index("```json", text.index("agent predict")) + 7 :]
    documented = json.loads(sample[: sample.index("```")])
    from sklearn.datasets import load_breast_cancer

    row = load_breast_cancer().data[0].tolist()
    url = _production(reader)["gateway"]["url"]
    real = httpx.post(f"{url}/predict", json={"features": row}, timeout=10).json()
    if set(real) != set(documented):
        return f"fields {sorted(real)} vs documented {sorted(documented)}"
    for field, value in documented.items():
        if field == "prediction_id":
            continue
        if field == "probabilities":
            if any(abs(a - b) > 1e-3 for a, b in zip(real[field], value, strict=True)):
                return f"probabilities {real[field]} vs documented {value}"
        elif _undated(real[field]) != _undated(value):
            return f"{field} {real[field]!r} vs documented {value!r}"
    header = f"{documented['model_name']} v{documented['model_version']}"
    # The CLI wraps a long claim in a pipe: compare the words, not the line breaks.
    claim = " ".join(_undated(documented["accuracy_claim"]).split())
    printed = " ".join(_undated(out).split())
    return None if header in out and claim in printed else f"printed {out!r}"


def _undated(value: object) -> object:
    """The claim names the day QA measured it: the README's sample shows one such day."""
    return re.sub(r"\d{4}-\d{2}-\d{2}", "DATE", value) if isinstance(value, str) else value


def _first_approval_served(reader: Reader, out: str) -> str | None:
    weights = _weights(reader)
    return None if weights == {"1": 100.0} else f"production weights {weights}"


def _canary_at(percent: float) -> Callable[[Reader, str], str | None]:
    def check(reader: Reader, out: str) -> str | None:
        weights = _weights(reader)
        return None if weights.get("3") == percent else f"production weights {weights}"

    return check


def _back_on_v1(reader: Reader, out: str) -> str | None:
    weights = _weights(reader)
    return None if weights == {"1": 100.0} else f"production weights {weights}"


def _report_written(reader: Reader, out: str) -> str | None:
    page = reader.cwd / "monitor.html"
    return None if page.is_file() and "<img" in page.read_text() else "no monitor.html with plots"


# What a command's README comment promises, checked right after it ran.
CLAIMS: dict[str, Callable[[Reader, str], str | None]] = {
    "agent approvals approve apr-1a2b3c4d": _first_approval_served,
    "agent predict": _prediction_is_the_documented_one,
    "agent approvals approve apr-… --as alice --evidence-hash …": _canary_at(10.0),
    "agent deploy rollout advance": _canary_at(50.0),
    "agent deploy rollback breast-cancer-classifier --to 1": _back_on_v1,
    "agent monitor report": _report_written,
}


def test_every_claim_names_a_readme_command() -> None:
    commands = [c for _, c in readme_commands()]
    for prefix in CLAIMS:
        assert any(c.startswith(prefix) for c in commands), f"CLAIMS lists {prefix!r}"


def test_the_readme_runs_in_order_on_a_fresh_home(tmp_path: Path) -> None:
    reader = Reader(tmp_path)
    failures: list[str] = []
    try:
        demo = reader.sh("agent quickstart --as dana")  # what `make demo` runs
        assert demo.returncode == 0, demo.stderr
        for line, command in readme_commands():
            if _skip_reason(command):
                continue
            if command.startswith("agent deploy rollout advance"):
                _send_traffic(reader, 1500)
            filled = reader.fill(command)
            stdin = next((s for p, s in STDIN.items() if command.startswith(p)), None)
            res = reader.sh(filled, stdin=stdin)
            if res.returncode != 0 or "Traceback" in res.stderr:
                failures.append(f"README.md:{line}: rc={res.returncode}: {filled}\n{res.stderr}")
                continue
            claim = next((c for p, c in CLAIMS.items() if command.startswith(p)), None)
            if claim and (wrong := claim(reader, res.stdout)):
                failures.append(f"README.md:{line}: {filled}\nthe comment says otherwise: {wrong}")
    finally:
        stop = reader.sh(f"agent deploy stop {NAME} --as alice")
        print("\n".join(reader.log))
    assert not failures, "\n\n".join(failures)
    assert stop.returncode == 0, stop.stderr
