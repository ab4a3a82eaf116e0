"""The gateway process: bad input, shadow mirroring, blue-green, sticky routing, metrics,
prediction log, and refusal of a tampered artifact."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from core.serving.prediction_log import read_prediction_log, wait_for_rows
from tests.test_serving_helpers import MODEL, env, serving_env, wait_for_revision

__all__ = ["env", "serving_env"]
pytestmark = pytest.mark.slow


def _staging(env, name: str, version: str):  # noqa: ANN001, ANN202
    rt = env.runtime(name)
    dana = rt.services.policy.human("dana")
    out = rt.dispatcher.call_or_raise(
        dana, "deploy_to_staging", {"name": MODEL, "version": version}
    )
    wait_for_revision(out["gateway_url"], out["revision"])
    return rt, dana, out["gateway_url"]


def test_bad_input_gets_a_4xx_with_a_message_and_the_gateway_stays_up(env):
    rt, _, url = _staging(env, "bad-input", env.versions["lr_onnx"])
    pid = httpx.get(f"{url}/health").json()["pid"]
    row = env.row
    cases = {
        "wrong count": (json.dumps({"features": row[:3]}), 422, "expected 30 features, got 3"),
        "string": (
            json.dumps({"features": ["a"] + row[1:]}),
            422,
            "expected a number, got a string",
        ),
        "numeric string": (json.dumps({"features": ["1.5"] + row[1:]}), 422, "got a string"),
        "NaN literal": ('{"features": [NaN' + ", 1.0" * 29 + "]}", 400, "malformed JSON"),
        "NaN string": (json.dumps({"features": ["NaN"] + row[1:]}), 422, "got a string"),
        "null": (json.dumps({"features": [None] + row[1:]}), 422, "got null"),
        "boolean": (json.dumps({"features": [True] + row[1:]}), 422, "got a boolean"),
        "float32 overflow": (json.dumps({"features": [1e39] + row[1:]}), 422, "float32 range"),
        "ragged batch": (json.dumps({"features": [row, row[:5]]}), 422, "row 1: expected 30"),
        "too many rows": (json.dumps({"features": [row] * 1001}), 422, "at most 1000 rows"),
        "no features": (json.dumps({"rows": row}), 422, '"features"'),
        "not an object": (json.dumps(row), 422, "JSON object"),
        "not JSON": ("hello", 400, "malformed JSON"),
        "empty": ("", 400, "malformed JSON"),
        "10 MB": ('{"features": [' + "1.0," * 2_600_000 + "1.0]}", 413, "larger than"),
    }
    with httpx.Client(timeout=30) as client:
        for label, (body, status, message) in cases.items():
            r = client.post(
                f"{url}/predict", content=body, headers={"content-type": "application/json"}
            )
            assert r.status_code == status, (label, r.status_code, r.text[:200])
            assert message in r.json()["error"], (label, r.json())
        assert client.get(f"{url}/predict").status_code == 405
        assert client.get(f"{url}/nope").status_code == 404
        ok = client.post(f"{url}/predict", json={"features": row})
        assert ok.status_code == 200 and ok.json()["model_version"] == env.versions["lr_onnx"]
        batch = client.post(f"{url}/predict", json={"features": [row, row]}).json()
        assert len(batch["prediction"]) == 2 and len(batch["probabilities"]) == 2
        health = client.get(f"{url}/health").json()
    assert health["status"] == "ok" and health["pid"] == pid
    assert health["rejected"]["bad_input"] >= 10 and health["rejected"]["too_large"] == 1
    # Rejections are logged too, with the reason and no features.
    engine = rt.services.engine
    wait_for_rows(engine, MODEL, len(cases) + 2, environment="staging", timeout=10)
    rows = read_prediction_log(engine, MODEL, environment="staging", limit=100)
    rejected = [r for r in rows if r["status"] == 413]
    assert rejected and rejected[0]["features"] is None and "larger than" in rejected[0]["error"]


def test_onnx_and_sklearn_versions_answer_with_honesty_labels_and_metrics(env):
    rt, dana, url = _staging(env, "runtimes", env.versions["rf"])
    sk = httpx.post(f"{url}/predict", json={"features": env.row}).json()
    assert httpx.get(f"{url}/health").json()["versions"][0]["runtime"] == "sklearn"
    out = rt.dispatcher.call_or_raise(
        dana, "deploy_to_staging", {"name": MODEL, "version": env.versions["rf_onnx"]}
    )
    health = wait_for_revision(url, out["revision"])
    assert health["versions"][0]["runtime"] == "onnxruntime"
    fast = httpx.post(f"{url}/predict", json={"features": env.row}).json()
    for body in (sk, fast):
        for key in (
            "prediction",
            "model_version",
            "implementation_status",
            "accuracy_claim",
            "validation_status",
        ):
            assert key in body
        assert body["implementation_status"] == "IMPLEMENTED" and body["accuracy_claim"]
    assert fast["prediction"] == sk["prediction"]
    assert all(
        math.isclose(a, b, abs_tol=1e-5)
        for a, b in zip(fast["probabilities"], sk["probabilities"], strict=True)
    )
    metrics = httpx.get(f"{url}/metrics").text
    model = f'model_name="{MODEL}"'
    assert (
        f'modelops_predictions_total{{implementation_status="IMPLEMENTED",{model},'
        f'model_version="{env.versions["rf_onnx"]}"}} 1.0' in metrics
    )
    assert "modelops_prediction_latency_seconds_bucket" in metrics
    # No QA verdict on record for these versions: their responses say so (UNVALIDATED, from
    # the state DB, never a tag), which is a complete, honest label.
    assert sk["validation_status"] == fast["validation_status"] == "UNVALIDATED"
    assert f"modelops_honesty_compliant_responses_total{{{model}}} 2.0" in metrics


def test_shadow_answers_from_the_primary_and_logs_both_predictions(env):
    primary, shadow = env.versions["lr_onnx"], env.versions["rf_onnx"]
    rt, dana, url = _staging(env, "shadow", primary)
    out = rt.dispatcher.call_or_raise(
        dana,
        "start_rollout",
        {"name": MODEL, "version": shadow, "strategy": "shadow", "environment": "staging"},
    )
    assert out["routes"][1]["role"] == "shadow" and out["routes"][1]["weight"] == 0
    wait_for_revision(url, out["revision"])
    with httpx.Client() as client:
        answers = [
            client.post(f"{url}/predict", json={"features": env.row}).json() for _ in range(20)
        ]
    assert {a["model_version"] for a in answers} == {primary}
    engine = rt.services.engine
    wait_for_rows(engine, MODEL, 40, environment="staging", timeout=10)
    rows = [
        r
        for r in read_prediction_log(engine, MODEL, environment="staging")
        if r["revision"] == out["revision"]
    ]
    by_request: dict[str, dict] = {}
    for r in rows:
        by_request.setdefault(r["request_id"], {})[r["role"]] = r
    assert len(by_request) == 20
    for pair in by_request.values():
        assert (
            pair["primary"]["model_version"] == primary
            and pair["shadow"]["model_version"] == shadow
        )
        assert pair["shadow"]["features"] == pair["primary"]["features"] == env.row
        assert (
            "prediction" in pair["shadow"]["output"] and "probabilities" in pair["shadow"]["output"]
        )
    health = httpx.get(f"{url}/health").json()
    stats = next(v for v in health["versions"] if v["version"] == shadow)
    assert (
        stats["role"] == "shadow" and stats["shadow"]["requests"] == 20 and stats["requests"] == 0
    )
    # Ending the shadow: advancing makes it the primary.
    done = rt.dispatcher.call_or_raise(
        dana, "advance_rollout", {"name": MODEL, "environment": "staging"}
    )
    assert done["rollout"]["state"] == "completed"
    wait_for_revision(url, done["revision"])
    assert (
        httpx.post(f"{url}/predict", json={"features": env.row}).json()["model_version"] == shadow
    )


def test_blue_green_switches_atomically_and_keeps_the_old_slot_loaded(env):
    blue, green = env.versions["lr_onnx"], env.versions["rf_onnx"]
    rt, dana, url = _staging(env, "blue-green", blue)
    staged = rt.dispatcher.call_or_raise(
        dana,
        "start_rollout",
        {"name": MODEL, "version": green, "strategy": "blue-green", "environment": "staging"},
    )
    health = wait_for_revision(url, staged["revision"])
    assert {(v["version"], v["role"], v["slot"]) for v in health["versions"]} == {
        (blue, "primary", "blue"),
        (green, "standby", "green"),
    }
    assert httpx.post(f"{url}/predict", json={"features": env.row}).json()["model_version"] == blue
    switched = rt.dispatcher.call_or_raise(
        dana, "advance_rollout", {"name": MODEL, "environment": "staging"}
    )
    health = wait_for_revision(url, switched["revision"])
    assert {(v["version"], v["role"], v["slot"]) for v in health["versions"]} == {
        (green, "primary", "green"),
        (blue, "standby", "blue"),
    }
    assert httpx.post(f"{url}/predict", json={"features": env.row}).json()["model_version"] == green
    back = rt.dispatcher.call_or_raise(
        dana, "rollback_deployment", {"name": MODEL, "environment": "staging"}
    )
    assert back["live_versions"] == [blue]
    health = wait_for_revision(url, back["revision"])
    assert {(v["version"], v["role"], v["slot"]) for v in health["versions"]} == {
        (blue, "primary", "blue"),
        (green, "standby", "green"),
    }


def test_sticky_routing_keeps_a_key_on_one_version(env):
    base, cand = env.versions["lr_onnx"], env.versions["rf_onnx"]
    rt, dana, url = _staging(env, "sticky", base)
    out = rt.dispatcher.call_or_raise(
        dana,
        "start_rollout",
        {"name": MODEL, "version": cand, "environment": "staging", "steps": [50, 100]},
    )
    wait_for_revision(url, out["revision"])
    seen: dict[str, set] = {}
    with httpx.Client() as client:
        for i in range(100):
            for _ in range(3):
                r = client.post(
                    f"{url}/predict",
                    json={"features": env.row},
                    headers={"x-routing-key": f"user-{i}"},
                )
                seen.setdefault(f"user-{i}", set()).add(r.json()["model_version"])
    assert all(len(v) == 1 for v in seen.values())
    on_canary = sum(1 for v in seen.values() if v == {cand})
    assert 25 <= on_canary <= 75


def test_a_tampered_artifact_is_refused_and_the_old_table_keeps_serving(env):
    from core.errors import Conflict
    from core.registry import local_path
    from core.serving.loader import read_verified

    good = env.versions["lr_onnx"]
    rt, dana, url = _staging(env, "tamper", good)
    # A fresh copy of the ONNX LR (so other tests' versions stay intact), then tampered.
    # Another goal than the shared one: the same goal would return the existing child.
    fresh = rt.dispatcher.call_or_raise(
        dana,
        "optimize_model",
        {
            "model_id": f"{MODEL}/{env.versions['lr']}",
            "dataset": str(env.holdout_csv),
            "benchmark_seconds": 0.05,
            "goal": "throughput",
        },
    )
    assert fresh["registered"] and not fresh["existing"], fresh
    info = rt.services.registry.get(MODEL, fresh["version"])
    onnx_file = local_path(info.artifact_uri) / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    with pytest.raises(Conflict, match="changed since registration"):
        read_verified(info.artifact_uri, info.artifact_sha256, ref="tampered")
    out = rt.dispatcher.call_or_raise(
        dana, "deploy_to_staging", {"name": MODEL, "version": info.version}
    )
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health").json()
        if health["last_reload_error"]:
            break
        time.sleep(0.1)
    assert f"revision {out['revision']}" in health["last_reload_error"]
    assert "changed since registration" in health["last_reload_error"]
    assert httpx.post(f"{url}/predict", json={"features": env.row}).json()["model_version"] == good
