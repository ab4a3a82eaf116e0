"""Shared pieces of the serving and rollout tests (no tests here).

``serving_env`` registers, once per test module, the two quickstart models (v1 logistic
regression, v2 random forest) and their ONNX optimizations through the optimize_model tool
(v3 from v1, v4 from v2). Each test then gets a runtime with its own state DB, so
deployments, approvals and gateways never leak between tests while MLflow is shared.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from tests.fakes.models import register_models

MODEL = "bc-serving"
_CLEAR = (
    "MODELOPS_USER",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "MODELOPS_STATE_DB_URL",
    "MODELOPS_TRACKING_URI",
    "MODELOPS_CONFIG",
    "MODELOPS_GRAPHS_DB",
)


@dataclass
class ServingEnv:
    root: Path
    home: Path
    versions: dict[str, str]  # lr, rf, lr_onnx, rf_onnx -> version
    row: list[float]
    holdout_csv: Path
    runtimes: list = field(default_factory=list)

    def runtime(  # noqa: ANN201
        self, name: str, state_db_url: str | None = None, workers: int | None = None
    ):
        """A runtime on the shared MLflow store with a fresh state DB (its gateways run
        ``workers`` processes; None: the setting's default)."""
        from agents.runtime import build_runtime
        from core.settings import load_settings

        url = state_db_url or f"sqlite:///{self.root / f'state-{name}.db'}"
        rt = build_runtime(load_settings(state_db_url=url, gateway_workers=workers))
        self.runtimes.append(rt)
        return rt

    def stop_gateways(self) -> None:
        for rt in self.runtimes:
            deployments = rt.services.deployments
            for name in deployments.list_deployments():
                deployments.stop_gateway(name)
        self.runtimes.clear()


@pytest.fixture(scope="module")
def serving_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingEnv]:
    from agents.runtime import build_runtime
    from core.settings import load_settings
    from core.training import load_breast_cancer_split, train_quickstart_models

    root = tmp_path_factory.mktemp("serving")
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        for var in _CLEAR:
            mp.delenv(var, raising=False)
        mp.setenv("MODELOPS_HOME", str(home))
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.chdir(root)
        rt = build_runtime(load_settings(state_db_url=f"sqlite:///{root / 'state-setup.db'}"))
        data = load_breast_cancer_split()
        reg = register_models(rt, data, train_quickstart_models(data), name=MODEL)
        holdout = Path(reg["holdout"])
        dana = rt.services.policy.human("dana")
        versions = dict(zip(("lr", "rf"), reg["versions"], strict=True))
        for key in ("lr", "rf"):
            out = rt.dispatcher.call_or_raise(
                dana,
                "optimize_model",
                {
                    "model_id": f"{MODEL}/{versions[key]}",
                    "dataset": str(holdout),
                    "benchmark_seconds": 0.1,
                },
            )
            assert out["registered"], out
            versions[f"{key}_onnx"] = out["version"]
        env = ServingEnv(
            root, home, versions, data.holdout[data.feature_names].iloc[0].tolist(), holdout
        )
        try:
            yield env
        finally:
            env.stop_gateways()


@pytest.fixture
def env(serving_env: ServingEnv) -> Iterator[ServingEnv]:
    """The module's serving env; the gateways a test started are stopped after it."""
    yield serving_env
    serving_env.stop_gateways()


def approve(  # noqa: ANN201
    rt,  # noqa: ANN001
    name: str,
    version: str,
    decider: str = "alice",
    plan: dict | None = None,
) -> str:
    """An approved promotion request for exactly this artifact and plan (evidence minimal)."""
    info = rt.services.registry.get(name, version)
    dana = rt.services.policy.human("dana")
    evidence = {
        "candidate": {
            "name": name,
            "version": info.version,
            "artifact_sha256": info.artifact_sha256,
            "honesty": info.honesty,
        }
    }
    req = rt.services.approvals.create(name, info.version, evidence, dana, plan=plan)
    rt.dispatcher.call_or_raise(
        rt.services.policy.human(decider),
        "decide_approval",
        {"approval_id": req.id, "approve": True, "evidence_hash": req.evidence_hash},
    )
    return req.id


def wait_for_revision(url: str, revision: int, timeout: float = 20.0) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/health", timeout=3.0).json()
        if health.get("revision") == revision:
            return health
        time.sleep(0.05)
    raise AssertionError(f"gateway at {url} did not reach revision {revision}: {health}")


class LoadGenerator:
    """A bounded closed-loop HTTP/1.1 load on 127.0.0.1 from a few keep-alive connections.

    Runs in its own thread and event loop; stops after ``max_requests`` or ``max_seconds``
    or ``stop()``. Records (status, model_version, revision) per response; a connection
    error counts as a failed request.
    """

    def __init__(
        self,
        url: str,
        body: bytes,
        *,
        connections: int = 4,
        max_requests: int = 30_000,
        max_seconds: float = 120.0,
    ) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.request = (
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body
        )
        self.connections = connections
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.results: list[tuple[int, str | None, int | None]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "load generator did not stop"

    def count(self, revision: int) -> int:
        return sum(1 for r in list(self.results) if r[2] == revision)

    def wait_count(self, revision: int, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(revision) < n:
            assert time.monotonic() < deadline, (
                f"only {self.count(revision)} responses at r{revision}"
            )
            assert self._thread.is_alive(), (
                f"load generator ended early after {len(self.results)} responses "
                f"(max {self.max_requests}, {self.max_seconds} s); failures: {self.failures[:5]}"
            )
            time.sleep(0.02)

    async def _main(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        await asyncio.gather(*(self._client(deadline) for _ in range(self.connections)))

    async def _client(self, deadline: float) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while (
                not self._stop.is_set()
                and time.monotonic() < deadline
                and len(self.results) < self.max_requests
            ):
                try:
                    writer.write(self.request)
                    status_line = await reader.readuntil(b"\r\n")
                    headers = await reader.readuntil(b"\r\n\r\n")
                    length = next(
                        int(line.split(b":")[1])
                        for line in headers.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                    payload = await reader.readexactly(length)
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    return
                status = int(status_line.split()[1])
                body = orjson.loads(payload)
                self.results.append((status, body.get("model_version"), body.get("revision")))
                if status != 200:
                    self.failures.append(f"HTTP {status}: {payload[:200]!r}")
        finally:
            writer.close()


def split(results: list[tuple[int, str | None, int | None]], revision: int) -> dict[str, float]:
    """Percent of responses per model version at one revision."""
    mine = [r[1] for r in results if r[2] == revision]
    return {v: 100.0 * mine.count(v) / len(mine) for v in sorted(set(mine))}
