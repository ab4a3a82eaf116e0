"""Canary health: a rollout step advances only on the candidate's own traffic at that step.

Real gateways on 127.0.0.1 (the serving env's models: v-lr is scikit-learn, float64 input,
run on a thread; v-lr_onnx the same model in ONNX, float32 input, run inline):

- a step needs ``min_requests`` candidate requests *on its revision*: the version counters
  outlive revisions, so step 2 must not inherit step 1's traffic;
- failures are the candidate's server errors, the 4xx its own input contract caused (a value
  beyond float32 that the float64 baseline takes), and its timeouts; a client's malformed
  JSON or wrong types are nobody's failure;
- a candidate the gateway does not report is unhealthy with a reason, never "0 errors";
- production takes its floor from the policy (``rollout.min_requests_per_step``).

A small fake /health server (a real HTTP server thread) covers a gateway that reports no
per-revision counts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.serving.rollout import check_gateway
from tests.test_serving_helpers import MODEL, approve, env, serving_env, wait_for_revision

__all__ = ["env", "serving_env"]
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _post(client: httpx.Client, url: str, n: int, body: str) -> list[tuple[int, str | None]]:
    out = []
    for _ in range(n):
        r = client.post(
            f"{url}/predict", content=body, headers={"content-type": "application/json"}
        )
        out.append((r.status_code, r.json().get("model_version")))
    return out


def _version(health: dict[str, Any], version: str) -> dict[str, Any]:
    return next(v for v in health["versions"] if v["version"] == version)


def _staging_canary(env, name: str, base: str, cand: str, steps: list[float]):  # noqa: ANN001, ANN202
    rt = env.runtime(name)
    dana = rt.services.policy.human("dana")
    out = rt.dispatcher.call_or_raise(dana, "deploy_to_staging", {"name": MODEL, "version": base})
    url = out["gateway_url"]
    started = rt.dispatcher.call_or_raise(
        dana,
        "start_rollout",
        {
            "name": MODEL,
            "version": cand,
            "strategy": "canary",
            "steps": steps,
            "environment": "staging",
        },
    )
    wait_for_revision(url, started["revision"])
    return rt, dana, url, started["revision"]


def _advance(rt, dana, **args: Any) -> Any:  # noqa: ANN001
    return rt.dispatcher.call(
        dana,
        "advance_rollout",
        {"name": MODEL, "environment": "staging", "wait_seconds": 0, **args},
    )


def test_a_step_advances_only_after_min_requests_on_its_own_revision(env) -> None:
    base, cand = env.versions["lr"], env.versions["lr_onnx"]
    rt, dana, url, rev = _staging_canary(env, "canary-min", base, cand, [10, 50, 100])
    good = json.dumps({"features": env.row})

    verdict = check_gateway(
        url, expect_revision=rev, candidate_version=cand, min_requests=20, wait_seconds=0
    )
    assert not verdict.healthy
    assert verdict.reasons == [f"v{cand} answered 0 requests on revision {rev}, fewer than 20"], (
        verdict.reasons
    )

    with httpx.Client(timeout=30) as client:
        # 90/10 is a fixed 10-slot schedule: 100 requests give the candidate exactly 10.
        assert [v for _, v in _post(client, url, 100, good)].count(cand) == 10
        res = _advance(rt, dana, min_requests=20)
        assert res.error is not None and res.error.code == "gate_failed", res
        assert f"v{cand} answered 10 requests on revision {rev}, fewer than 20" in (
            res.error.message
        )
        _post(client, url, 100, good)
        moved = _advance(rt, dana, min_requests=20, wait_seconds=5)
        assert moved.ok, moved
        assert moved.output["rollout"]["weight"] == 50.0
        rev2 = moved.output["revision"]
        health = wait_for_revision(url, rev2)
        # The candidate's 20 requests belong to step 1; step 2 starts from nothing.
        stats = _version(health, cand)
        assert stats["requests"] == 20 and stats["this_revision"]["requests"] == 0, stats
        res = _advance(rt, dana, min_requests=20)
        assert res.error is not None and res.error.code == "gate_failed", res
        assert f"answered 0 requests on revision {rev2}, fewer than 20" in res.error.message
        assert [v for _, v in _post(client, url, 40, good)].count(cand) == 20
        assert _advance(rt, dana, min_requests=20, wait_seconds=5).ok

    # A version the gateway does not serve has no health at all: never "0 errors".
    rf = env.versions["rf"]
    verdict = check_gateway(
        url, expect_revision=rev2 + 1, candidate_version=rf, max_error_rate=1.0, wait_seconds=0
    )
    assert not verdict.healthy
    assert any(r.startswith(f"v{rf} is not among the versions") for r in verdict.reasons), (
        verdict.reasons
    )


def test_inputs_refused_at_the_edge_never_count_for_or_against_the_candidate(env) -> None:
    """Any 4xx is the client's, even one the candidate's own input contract refused: it
    counts neither as served nor as failed, so no client can stall or hurry a step."""
    base, cand = env.versions["lr"], env.versions["lr_onnx"]
    rt, dana, url, rev = _staging_canary(env, "canary-rejects", base, cand, [10, 100])
    row = env.row
    with httpx.Client(timeout=30) as client:
        bad_json = _post(client, url, 30, "not json")
        strings = _post(client, url, 30, json.dumps({"features": ["1.5"] + row[1:]}))
        assert {s for s, _ in bad_json} == {400} and {s for s, _ in strings} == {422}
        health = httpx.get(f"{url}/health").json()
        for version in (base, cand):
            counts = _version(health, version)["this_revision"]
            assert counts["rejected"] == counts["requests"] == 0, (version, counts)
        verdict = check_gateway(
            url, expect_revision=rev, candidate_version=cand, min_requests=1, wait_seconds=0
        )
        assert verdict.reasons == [f"v{cand} answered 0 requests on revision {rev}, fewer than 1"]

        # A value beyond float32's range: the float64 baseline answers, the ONNX candidate
        # (float32 input) refuses it. The refusal names the candidate (shown in /health as
        # `rejected`), but any client can send it, so it is not a failure of the candidate.
        wide = json.dumps({"features": [1e39] + row[1:]})
        answers = _post(client, url, 100, wide)
    assert answers.count((200, base)) == 90
    assert [s for s, _ in answers].count(422) == 10
    stats = _version(httpx.get(f"{url}/health").json(), cand)
    assert stats["this_revision"]["rejected"] == 10 and stats["rejected"] == 10, stats
    verdict = check_gateway(
        url, expect_revision=rev, candidate_version=cand, min_requests=1, wait_seconds=0
    )
    assert verdict.reasons == [f"v{cand} answered 0 requests on revision {rev}, fewer than 1"]
    res = _advance(rt, dana, min_requests=1)
    assert res.error is not None and res.error.code == "gate_failed", res
    assert "answered 0 requests" in res.error.message
    assert rt.services.deployments.rollouts.active(MODEL, "staging").step == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_candidate_timeouts_count_as_failures(env, tmp_path: Path) -> None:
    """A gateway whose deadline a thread-run model cannot meet: the inline ONNX baseline
    answers, every candidate (scikit-learn) call is a 504 and counts against it."""
    base, cand = env.versions["lr_onnx"], env.versions["rf"]
    rt, dana, _, rev = _staging_canary(env, "canary-timeouts", base, cand, [10, 100])
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.serving.gateway",
            "--model",
            MODEL,
            "--environment",
            "staging",
            "--port",
            str(port),
            "--predict-timeout",
            "0.000001",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "MODELOPS_HOME": str(env.home),
            "MODELOPS_STATE_DB_URL": rt.settings.state_db_url,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "gateway.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/health", timeout=1).json().get("revision") == rev:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.1)
        with httpx.Client(timeout=30) as client:
            answers = _post(client, url, 50, json.dumps({"features": env.row}))
            timed_out = client.post(f"{url}/predict", json={"features": env.row})
        assert answers.count((200, base)) == 45
        # Every candidate call misses the deadline, except one whose thread happened to finish
        # before the event loop looked (a busy machine): either way each 504 is counted.
        timeouts = [s for s, _ in answers].count(504)
        assert timeouts >= 1 and timeouts + answers.count((200, cand)) == 5, answers
        # The next request in the schedule goes to the baseline again; one 504 body says why.
        assert timed_out.status_code == 200
        stats = _version(httpx.get(f"{url}/health").json(), cand)
        assert stats["this_revision"]["timeouts"] == stats["timeouts"] == timeouts, stats
        verdict = check_gateway(url, expect_revision=rev, candidate_version=cand, wait_seconds=0)
        assert not verdict.healthy
        assert f"0 server errors, {timeouts} timeouts" in verdict.reasons[0]
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_production_steps_take_the_policys_floor(env) -> None:
    """advance_rollout on production: at least rollout.min_requests_per_step (100 in
    policies/roles.yaml) candidate requests on the step, whatever the caller asks."""
    rt = env.runtime("canary-production")
    assert rt.services.policy.rollout.min_requests_per_step == 100
    policy = rt.services.policy
    alice = policy.human("alice")
    base, cand = env.versions["lr_onnx"], env.versions["rf_onnx"]
    promoted = rt.dispatcher.call_or_raise(
        alice, "promote_model", {"approval_id": approve(rt, MODEL, base, "bob")}
    )
    url = promoted["gateway_url"]
    info = rt.services.registry.get(MODEL, cand)
    req = rt.services.approvals.create(
        MODEL,
        info.version,
        {
            "candidate": {
                "name": MODEL,
                "version": info.version,
                "artifact_sha256": info.artifact_sha256,
                "honesty": info.honesty,
            }
        },
        policy.human("dana"),
        plan={"strategy": "canary", "steps": [10.0, 100.0]},
    )
    rt.dispatcher.call_or_raise(
        policy.human("bob"),
        "decide_approval",
        {"approval_id": req.id, "approve": True, "evidence_hash": req.evidence_hash},
    )
    started = rt.dispatcher.call_or_raise(
        alice,
        "start_rollout",
        {
            "name": MODEL,
            "version": cand,
            "strategy": "canary",
            "steps": [10.0, 100.0],
            "approval_id": req.id,
        },
    )
    rev = started["revision"]
    wait_for_revision(url, rev)

    def advance(**args: Any) -> Any:
        return rt.dispatcher.call(alice, "advance_rollout", {"name": MODEL, **args})

    res = advance(min_requests=1, wait_seconds=0)
    assert res.error is not None and res.error.code == "gate_failed", res
    assert f"answered 0 requests on revision {rev}, fewer than 100" in res.error.message
    good = json.dumps({"features": env.row})
    with httpx.Client(timeout=30) as client:
        _post(client, url, 990, good)
        res = advance(wait_seconds=0)
        assert res.error is not None and "answered 99 requests" in res.error.message, res
        _post(client, url, 10, good)
    done = advance(wait_seconds=5)
    assert done.ok, done
    assert done.output["rollout"]["state"] == "completed"


# A gateway that reports no per-revision counts ---------------------------------------------
class _Health(BaseHTTPRequestHandler):
    payload: dict[str, Any] = {}

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps(self.server.payload).encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_health() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    server.payload = {}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _fake(server: ThreadingHTTPServer, versions: list[dict[str, Any]]) -> str:
    server.payload = {"status": "ok", "revision": 3, "versions": versions}  # type: ignore[attr-defined]
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_a_gateway_without_per_revision_counts_is_not_judged_healthy(fake_health) -> None:
    old = {"version": "2", "role": "canary", "requests": 500, "server_errors": 0}
    url = _fake(fake_health, [{"version": "1", "role": "primary"}, old])
    verdict = check_gateway(
        url, expect_revision=3, candidate_version="2", max_error_rate=1.0, wait_seconds=0
    )
    assert not verdict.healthy
    assert "reports no per-revision counts for v2" in verdict.reasons[0]
    # No versions at all (a gateway with an empty table that still says ok).
    url = _fake(fake_health, [])
    verdict = check_gateway(url, expect_revision=3, candidate_version="2", wait_seconds=0)
    assert verdict.reasons == [
        "v2 is not among the versions the gateway reports at revision 3 (no version), "
        "so it has no health to judge"
    ]
    # The same gateway with the counts: judged on them.
    counts = {"requests": 99, "server_errors": 1, "rejected": 7, "timeouts": 0}
    url = _fake(fake_health, [{**old, "this_revision": counts}])
    assert check_gateway(
        url,
        expect_revision=3,
        candidate_version="2",
        max_error_rate=0.02,
        min_requests=100,
        wait_seconds=0,
    ).healthy
    assert not check_gateway(
        url, expect_revision=3, candidate_version="2", max_error_rate=0.005, wait_seconds=0
    ).healthy
