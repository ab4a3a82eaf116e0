"""Gateway worker processes (core.serving.workers): several processes on one port seen as one
gateway. /health and /metrics count every worker's traffic, the merged revision waits for the
slowest live worker, a rollout step is judged on all workers, the prediction log keeps every
row, and stopping the gateway leaves no worker behind."""

from __future__ import annotations

import time

import httpx
import psutil
import pytest

from core.serving.workers import merge_health, resolve_workers
from tests.test_serving_helpers import MODEL, approve, env, serving_env

__all__ = ["env", "serving_env"]


def _health(pid: int, revision: int | None, requests: int, on_rev: int | None, **kw) -> dict:
    version = {
        "version": "1",
        "weight": 100.0,
        "requests": requests,
        "server_errors": 1,
        "rejected": 0,
        "timeouts": 0,
        "shadow": None,
        "this_revision": None
        if on_rev is None
        else {
            "requests": on_rev,
            "server_errors": 0,
            "rejected": 0,
            "timeouts": 0,
            "shadow_requests": 0,
            "shadow_errors": 0,
        },
    }
    return {
        "status": "ok",
        "pid": pid,
        "revision": revision,
        "versions": [version],
        "honesty_compliant": True,
        "last_reload_error": None,
        "rejected": {"bad_json": 2},
        "prediction_log": {
            "written": requests,
            "pending": 0,
            "dropped": 0,
            "flush_errors": 0,
            "last_error": None,
        },
        "shadow_dropped": 0,
        "batching": {"enabled": True, "window_ms": 0.5, "max_batch": 64, "batches": 3, "rows": 9},
        **kw,
    }


def _peer(health: dict, alive: bool = True) -> dict:
    return {"pid": health["pid"], "alive": alive, "health": health}


def test_merged_health_sums_every_worker_and_waits_for_the_slowest() -> None:
    own = _health(10, 4, requests=100, on_rev=30)
    same = _peer(_health(11, 4, requests=50, on_rev=20))
    merged = merge_health(own, [same])
    v = merged["versions"][0]
    assert v["requests"] == 150 and v["server_errors"] == 2
    assert v["this_revision"]["requests"] == 50
    assert merged["revision"] == 4 and merged["rejected"] == {"bad_json": 4}
    assert merged["prediction_log"]["written"] == 150 and merged["batching"]["rows"] == 18
    assert [w["pid"] for w in merged["workers"]] == [10, 11]
    # A live worker still on the previous revision: the gateway is not on 4 yet, and no
    # per-revision counts are claimed for it.
    lagging = merge_health(own, [_peer(_health(11, 3, requests=50, on_rev=20))])
    assert lagging["revision"] == 3 and lagging["versions"][0]["this_revision"] is None
    # A live worker on 4 whose counts are not ready (swapping) also withholds them.
    swapping = merge_health(own, [_peer(_health(11, 4, requests=50, on_rev=None))])
    assert swapping["revision"] == 4 and swapping["versions"][0]["this_revision"] is None
    # A dead worker's requests still count, but it does not hold the revision back.
    dead = merge_health(own, [_peer(_health(12, 3, requests=7, on_rev=7), alive=False)])
    assert dead["revision"] == 4 and dead["versions"][0]["requests"] == 107
    assert dead["versions"][0]["this_revision"]["requests"] == 30
    assert dead["workers"][1] == {"pid": 12, "alive": False, "revision": 3}
    # One live worker without a table makes the gateway's status say so.
    empty = merge_health(own, [_peer(_health(13, None, 0, None, status="no_live_version"))])
    assert empty["status"] == "no_live_version" and empty["revision"] is None


def test_worker_counts_are_checked() -> None:
    assert resolve_workers(3) == 3 and resolve_workers(0) >= 1 and resolve_workers(None) >= 1
    with pytest.raises(ValueError, match="one per core"):
        resolve_workers(-1)


def test_by_default_a_gateway_runs_one_worker_per_core(monkeypatch, tmp_path) -> None:
    """The setting, the command line and the gateways the agent starts all default to 0: one
    worker per core the machine gives (conftest pins the tests' own gateways to 1)."""
    import os

    from core.serving import workers
    from core.serving.gateway_cli import parser
    from core.settings import load_settings

    monkeypatch.delenv("MODELOPS_GATEWAY_WORKERS")
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))
    assert load_settings().gateway_workers == 0
    assert parser().parse_args(["--model", "m"]).workers is None  # then the setting decides
    monkeypatch.setattr(workers, "CGROUP_CPU_MAX", tmp_path / "absent")
    assert resolve_workers(None) == resolve_workers(0) == len(os.sched_getaffinity(0))


def test_the_core_count_honours_a_container_cpu_limit(monkeypatch, tmp_path) -> None:
    from core.serving import workers

    cpu_max = tmp_path / "cpu.max"
    for text, limit in (
        ("max 100000", None),
        ("100000 100000", 1),
        ("150000 100000", 2),  # 1.5 CPUs: a second worker gets the half
        ("5000 100000", 1),
        ("garbage", None),
        ("", None),
    ):
        cpu_max.write_text(text)
        assert workers.cgroup_cpu_limit(cpu_max) == limit, text
    assert workers.cgroup_cpu_limit(tmp_path / "absent") is None
    cpu_max.write_text("100000 100000")
    monkeypatch.setattr(workers, "CGROUP_CPU_MAX", cpu_max)
    assert workers.default_workers() == 1


def test_two_workers_serve_one_port_and_count_as_one_gateway(env) -> None:
    rt = env.runtime("workers", workers=2)
    alice = rt.services.policy.human("alice")
    base = env.versions["lr_onnx"]
    promoted = rt.dispatcher.call_or_raise(
        alice, "promote_model", {"approval_id": approve(rt, MODEL, base, "bob")}
    )
    url = promoted["gateway_url"]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            health = httpx.get(f"{url}/health", timeout=5).json()
            if len([w for w in health.get("workers", []) if w["alive"]]) == 2:
                break
            time.sleep(0.2)
        workers = {w["pid"] for w in health["workers"]}
        assert len(workers) == 2, health
        # Each worker hands the GIL over within 0.5 ms (gateway_cli.SWITCH_INTERVAL_S).
        assert health["server"]["switch_interval_ms"] == "0.5", health["server"]
        answered_by: set[int] = set()
        n = 300
        for _ in range(n):  # a new connection each time: the kernel hands them to both
            r = httpx.post(f"{url}/predict", json={"features": env.row}, timeout=10)
            assert r.status_code == 200
        for _ in range(40):
            answered_by.add(httpx.get(f"{url}/health", timeout=5).json()["pid"])
        assert answered_by == workers  # both workers took connections
        # A snapshot file no worker wrote (here: from this test's own, live, pid) is ignored.
        import json
        import os

        folder = env.home / "gateways" / MODEL / "workers"
        own = json.loads(next(folder.glob("[0-9]*.json")).read_text())
        own["pid"] = os.getpid()
        own["health"]["versions"][0]["requests"] = 10**6
        (folder / f"{os.getpid()}.json").write_text(json.dumps(own))
        time.sleep(1.5)  # every worker has written its counters since (a poll tick is 0.5 s)
        health = httpx.get(f"{url}/health", timeout=5).json()
        assert health["versions"][0]["requests"] == n, health
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        line = next(
            ln
            for ln in metrics.splitlines()
            if ln.startswith("modelops_predictions_total{") and f'model_version="{base}"' in ln
        )
        assert float(line.rsplit(" ", 1)[1]) == n
        from core.serving.prediction_log import wait_for_rows

        engine = rt.services.deployments.engine
        assert wait_for_rows(engine, MODEL, n, environment="production", timeout=10) == n
        # The manifests run the gateway as this installation does (workers and batching).
        carol = rt.services.policy.human("carol")
        files = rt.dispatcher.call_or_raise(carol, "render_deployment", {"name": MODEL})["files"]
        assert "- --workers\n" in files["k8s/deployment.yaml"]
        assert "- '2'" in files["k8s/deployment.yaml"] or '- "2"' in files["k8s/deployment.yaml"]
    finally:
        rt.services.deployments.stop_gateway(MODEL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in workers):
        time.sleep(0.1)
    assert not any(psutil.pid_exists(p) for p in workers), "a worker outlived its gateway"


def test_the_gateway_command_line_refuses_a_bad_worker_count() -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "core.serving.gateway", "--model", "m", "--workers", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--workers: workers must be 0 (one per core)" in r.stderr
