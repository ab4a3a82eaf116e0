"""Adaptive micro-batching (core.serving.batching): identical outputs to unbatched calls, no
delay for a lone request, per-request errors, and bounds on its configuration."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier

from core.optimizer.export import export_to_onnx
from core.optimizer.predictor import OnnxPredictor
from core.serving.batching import Batcher, check_config, run_batch
from tests.test_k8s_render import onnx_artifacts
from tests.test_serving_helpers import env, serving_env

__all__ = ["env", "onnx_artifacts", "serving_env"]


@pytest.fixture(scope="module")
def models():
    X, y = load_breast_cancer(return_X_y=True)
    rf = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0).fit(X, y)
    onnx = OnnxPredictor(export_to_onnx(rf, X[:5]).to_bytes())

    def sk(x):  # noqa: ANN001, ANN202
        return rf.predict(x), np.ascontiguousarray(rf.predict_proba(x))

    return X, onnx.predict, sk


async def _gather(batcher: Batcher, rows: list[np.ndarray]) -> list:
    return await asyncio.gather(*(batcher.submit(r) for r in rows), return_exceptions=True)


@pytest.mark.parametrize("runtime", ["onnx", "sklearn"])
@pytest.mark.parametrize("window_s", [0.0, 0.0005])
def test_batched_rows_equal_unbatched_calls(models, runtime, window_s) -> None:
    X, onnx, sk = models
    predict, dtype = (onnx, np.float32) if runtime == "onnx" else (sk, np.float64)
    rows = [X[i : i + 1].astype(dtype) for i in range(100)]
    b = Batcher(predict, inline=runtime == "onnx", window_s=window_s, max_batch=16)
    out = asyncio.run(_gather(b, rows))
    assert b.batched_rows == 100 and b.batches < 100  # really batched (16 rows at most)
    assert b.batches >= 100 // 16
    for row, (labels, proba) in zip(rows, out, strict=True):
        ref_labels, ref_proba = predict(row)
        assert np.array_equal(labels, ref_labels)
        assert np.array_equal(np.asarray(proba), np.asarray(ref_proba))


def test_a_lone_request_is_not_delayed_by_the_window(models) -> None:
    X, onnx, _ = models
    b = Batcher(onnx, inline=True, window_s=0.05, max_batch=64)  # a 50 ms window

    async def lone() -> float:
        t0 = time.perf_counter()
        await b.submit(X[:1].astype(np.float32))
        return time.perf_counter() - t0

    async def many() -> list[float]:
        return [await lone() for _ in range(20)]

    times = asyncio.run(many())
    assert b.batches == 20
    assert max(times) < 0.02, times  # never waited for the 50 ms window


def test_an_error_in_one_row_fails_only_that_request() -> None:
    def predict(x: np.ndarray):  # noqa: ANN202
        if (x[:, 0] < 0).any():
            raise ValueError("negative first feature")
        return x[:, 0] * 2, None

    rows = [np.array([[float(i), 1.0]]) for i in range(5)]
    rows[2] = np.array([[-1.0, 1.0]])
    for inline in (True, False):
        b = Batcher(predict, inline=inline, window_s=0.0, max_batch=8)
        out = asyncio.run(_gather(b, rows))
        assert isinstance(out[2], ValueError) and "negative first feature" in str(out[2])
        assert [float(o[0][0]) for i, o in enumerate(out) if i != 2] == [0.0, 2.0, 6.0, 8.0]


def test_a_failing_batch_is_reported_to_every_request() -> None:
    def predict(x: np.ndarray):  # noqa: ANN202
        raise RuntimeError("model is broken")

    b = Batcher(predict, inline=True, window_s=0.0)
    out = asyncio.run(_gather(b, [np.zeros((1, 3)) for _ in range(4)]))
    assert all(isinstance(o, RuntimeError) and "broken" in str(o) for o in out)


def test_a_model_returning_the_wrong_row_count_is_retried_row_by_row() -> None:
    calls = []

    def predict(x: np.ndarray):  # noqa: ANN202
        calls.append(len(x))
        return np.zeros(1), None  # always one row

    out = run_batch(predict, [np.zeros((1, 2)) for _ in range(3)])
    assert calls == [3, 1, 1, 1] and all(len(o[0]) == 1 for o in out)


def test_hostile_configuration_is_refused() -> None:
    for window, size in ((-1, 8), (1.0, 8), (float("nan"), 8), ("1", 8), (0.001, 0), (0.001, 1.5)):
        with pytest.raises(ValueError):
            check_config(window, size)
    with pytest.raises(ValueError):
        Batcher(lambda x: (x, None), inline=True, max_batch=True)
    b = Batcher(lambda x: (x, None), inline=True)

    async def wrong_shape() -> None:
        b.submit(np.zeros((2, 3)))

    with pytest.raises(ValueError, match="one row"):
        asyncio.run(wrong_shape())


def test_batching_flags_are_checked_and_reach_the_rendered_manifests(onnx_artifacts) -> None:
    import yaml

    from core.serving.batching import batching_flags
    from core.serving.k8s import render_kubernetes
    from tests.test_k8s_render import _revision, _route

    assert batching_flags() == []  # the gateway's defaults: batching on
    assert batching_flags(False, 0.25, 16) == [
        "--no-batching",
        "--batch-window-ms",
        "0.25",
        "--max-batch",
        "16",
    ]
    for window_ms, size in ((-1, None), (500, None), (None, 0), (None, 5000)):
        with pytest.raises(ValueError):
            batching_flags(True, window_ms, size)
    rev = _revision([_route(onnx_artifacts, "1", 100)], "direct")
    out = render_kubernetes("m", rev, batching=False, max_batch=8, needs_sklearn=False)
    deployment = yaml.safe_load(out.files["k8s/deployment.yaml"])
    isvc = yaml.safe_load(out.files["k8s/inferenceservice.yaml"])
    for container in (
        deployment["spec"]["template"]["spec"]["containers"][0],
        isvc["spec"]["predictor"]["containers"][0],
    ):
        assert container["args"][-3:] == ["--no-batching", "--max-batch", "8"]
        assert container["args"][0] == "--routes-file"
    default = render_kubernetes("m", rev, needs_sklearn=False).files["k8s/deployment.yaml"]
    assert "batch" not in default
    with pytest.raises(ValueError, match="max batch"):
        render_kubernetes("m", rev, max_batch=0, needs_sklearn=False)


def test_the_gateway_command_line_refuses_a_bad_batching_configuration() -> None:
    import subprocess
    import sys

    for flags in (["--max-batch", "0"], ["--batch-window-ms", "-1"], ["--batch-window-ms", "nan"]):
        r = subprocess.run(
            [sys.executable, "-m", "core.serving.gateway", "--model", "m", *flags],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 2 and "--batch-window-ms/--max-batch" in r.stderr, r.stderr


def test_a_lone_connection_skips_the_batcher_and_a_second_one_turns_gathering_on() -> None:
    b = Batcher(lambda x: (x[:, 0], None), inline=True)
    a, other = ("127.0.0.1", 5000), ("127.0.0.1", 5001)
    assert not b.alone(a, 10.0)  # a connection not seen before: gather
    assert b.alone(a, 10.0025)  # the same one, nobody else for CONCURRENCY_MEMORY_S
    assert not b.alone(other, 10.003)  # a second connection turns gathering on...
    assert not b.alone(other, 10.004)  # ...for the memory, even from one of them alone
    assert b.alone(other, 10.0051)
    assert not b.alone(None, 10.01) and not b.alone(None, 10.02)  # no address: gather

    async def waiting() -> bool:
        fut = b.submit(np.ones((1, 3)))
        lone = b.alone(other, 10.5)  # a row is waiting: this one joins it
        await fut
        return lone

    assert asyncio.run(waiting()) is False


def test_sequential_requests_skip_the_batcher_and_concurrent_ones_share_calls(env) -> None:
    import threading

    import httpx

    from tests.test_serving_helpers import MODEL, approve

    rt = env.runtime("lone")
    alice = rt.services.policy.human("alice")
    promoted = rt.dispatcher.call_or_raise(
        alice, "promote_model", {"approval_id": approve(rt, MODEL, env.versions["rf_onnx"])}
    )
    url = promoted["gateway_url"]
    try:
        with httpx.Client(base_url=url, timeout=10) as c:  # one keep-alive connection
            answers = [c.post("/predict", json={"features": env.row}).json() for _ in range(30)]
        assert len({a["prediction"] for a in answers}) == 1
        health = httpx.get(f"{url}/health", timeout=10).json()["batching"]
        # Only the rows sent before it was alone for CONCURRENCY_MEMORY_S (2 ms) were gathered.
        assert health["rows"] <= 5, health

        def client() -> None:
            with httpx.Client(base_url=url, timeout=10) as c:
                for _ in range(40):
                    assert c.post("/predict", json={"features": env.row}).status_code == 200

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = httpx.get(f"{url}/health", timeout=10).json()["batching"]
        assert after["rows"] - health["rows"] > 0.5 * 8 * 40, after  # gathered again
    finally:
        rt.services.deployments.stop_gateway(MODEL)
