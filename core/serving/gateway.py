"""Gateway process for one model: ``python -m core.serving.gateway --model NAME``.

Reads its routing table from the state DB, loads each live version once (after checking
the artifact's SHA-256) and swaps the table atomically when a new revision appears.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from sqlalchemy import select

from core.deployment import DeploymentRow, RevisionRow, ServedVersion
from core.honesty import ImplementationStatus
from core.registry import verify_artifact
from core.state import get_engine

log = logging.getLogger("modelops.gateway")
MAX_BODY_BYTES = 1_000_000
MAX_ROWS = 1000


class BadRequest(Exception):
    pass


@dataclass(frozen=True)
class LoadedVersion:
    served: ServedVersion
    model: Any
    n_features: int

    @property
    def honesty_compliant(self) -> bool:
        s = self.served
        return bool(
            s.implementation_status
            and s.accuracy_claim
            and s.validation_status
            and s.implementation_status != ImplementationStatus.PLANNED
        )


@dataclass(frozen=True)
class RoutingTable:
    revision: int
    versions: tuple[LoadedVersion, ...]
    weights: tuple[float, ...]

    def pick(self) -> LoadedVersion:
        if len(self.versions) == 1:
            return self.versions[0]
        return random.choices(self.versions, weights=self.weights, k=1)[0]


def load_version(served: ServedVersion) -> LoadedVersion:
    import mlflow.sklearn  # load time only, never per request

    path = verify_artifact(served.artifact_uri, served.artifact_sha256, ref=f"v{served.version}")
    model = mlflow.sklearn.load_model(str(path))
    return LoadedVersion(served=served, model=model, n_features=int(model.n_features_in_))


class Gateway:
    """Holds the routing table of one model and answers predictions from it."""

    def __init__(self, model_name: str, state_db_url: str, poll_seconds: float = 0.5) -> None:
        self.model_name = model_name
        self.engine = get_engine(state_db_url)
        self.poll_seconds = poll_seconds
        self.table: RoutingTable | None = None
        self.last_reload_error: str | None = None
        self._cache: dict[tuple[str, str], LoadedVersion] = {}
        self._stop = threading.Event()
        self.metrics = _Metrics()

    # Routing table --------------------------------------------------------------------
    def _latest_revision(self) -> RevisionRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(RevisionRow.revision, RevisionRow.routes)
                .join(DeploymentRow, DeploymentRow.id == RevisionRow.deployment_id)
                .where(DeploymentRow.model_name == self.model_name)
                .order_by(RevisionRow.revision.desc())
                .limit(1)
            ).first()
        return row

    def refresh(self) -> bool:
        """Load the latest revision if it is newer than the one being served."""
        row = self._latest_revision()
        if row is None or (self.table is not None and row.revision == self.table.revision):
            return False
        routes = [ServedVersion(**r) for r in row.routes if r["weight"] > 0]
        try:
            loaded = []
            for served in routes:
                key = (served.version, served.artifact_sha256)
                if key not in self._cache:
                    self._cache[key] = load_version(served)
                loaded.append(self._cache[key])
        except Exception as exc:  # keep serving the old table; report why on /health
            self.last_reload_error = f"revision {row.revision}: {exc}"
            log.error("reload failed, still serving the previous table: %s", self.last_reload_error)
            return False
        self.table = RoutingTable(row.revision, tuple(loaded), tuple(r.weight for r in routes))
        self.last_reload_error = None
        log.info("serving revision %s: %s", row.revision, [v.served.version for v in loaded])
        return True

    def start_polling(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.poll_seconds):
                try:
                    self.refresh()
                except Exception:  # the DB may be briefly locked; try again next tick
                    log.exception("routing table poll failed")

        threading.Thread(target=loop, name="routing-poll", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    # Predictions ----------------------------------------------------------------------
    def predict(self, body: Any) -> dict[str, Any]:
        table = self.table
        if table is None:
            raise LookupError("no live version")
        target = table.pick()
        rows, single = parse_features(body, target.n_features)
        start = time.perf_counter()
        labels = target.model.predict(rows)
        proba = None
        if hasattr(target.model, "predict_proba"):
            proba = target.model.predict_proba(rows)
        elapsed = time.perf_counter() - start
        s = target.served
        self.metrics.observe(s, target.honesty_compliant, elapsed)
        preds = [_scalar(v) for v in labels]
        out: dict[str, Any] = {
            "model_name": self.model_name,
            "model_version": s.version,
            "implementation_status": s.implementation_status,
            "accuracy_claim": s.accuracy_claim,
            "validation_status": s.validation_status,
        }
        if single:
            out["prediction"] = preds[0]
            if proba is not None:
                out["probabilities"] = [float(p) for p in proba[0]]
        else:
            out["prediction"] = preds
            if proba is not None:
                out["probabilities"] = [[float(p) for p in row] for row in proba]
        return out

    def health(self) -> dict[str, Any]:
        table = self.table
        versions = (
            [
                {
                    "version": v.served.version,
                    "weight": w,
                    "implementation_status": v.served.implementation_status,
                    "honesty_compliant": v.honesty_compliant,
                }
                for v, w in zip(table.versions, table.weights, strict=True)
            ]
            if table
            else []
        )
        return {
            "status": "ok" if table else "no_live_version",
            "model_name": self.model_name,
            "revision": table.revision if table else None,
            "versions": versions,
            "honesty_compliant": bool(versions) and all(v["honesty_compliant"] for v in versions),
            "last_reload_error": self.last_reload_error,
        }


def parse_features(body: Any, n_features: int) -> tuple[np.ndarray, bool]:
    """``{"features": [x1..xn]}`` (one row) or ``{"features": [[...], ...]}`` (a batch)."""
    if not isinstance(body, dict) or "features" not in body:
        raise BadRequest('body must be a JSON object with a "features" array')
    feats = body["features"]
    if not isinstance(feats, list) or not feats:
        raise BadRequest('"features" must be a non-empty array')
    single = not isinstance(feats[0], list)
    rows = [feats] if single else feats
    if len(rows) > MAX_ROWS:
        raise BadRequest(f"at most {MAX_ROWS} rows per request, got {len(rows)}")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n_features:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise BadRequest(f"row {i}: expected {n_features} features, got {got}")
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise BadRequest(f"row {i}, feature {j}: expected a number, got {type(v).__name__}")
            if not math.isfinite(v):
                raise BadRequest(f"row {i}, feature {j}: NaN and infinity are not accepted")
    return np.asarray(rows, dtype=np.float64), single


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.predictions = Counter(
            "predictions_total",
            "Predictions answered",
            ["implementation_status", "model_version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "prediction_latency_seconds",
            "Model call latency",
            registry=self.registry,
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
        )
        self.compliant = Counter(
            "honesty_compliant_responses_total",
            "Responses carrying complete honesty labels",
            registry=self.registry,
        )
        self.missing = Counter(
            "missing_honesty_labels_total",
            "Responses missing an honesty label",
            registry=self.registry,
        )
        self.errors = Counter(
            "prediction_errors_total",
            "Rejected or failed requests",
            ["reason"],
            registry=self.registry,
        )

    def observe(self, served: ServedVersion, compliant: bool, seconds: float) -> None:
        self.predictions.labels(served.implementation_status or "MISSING", served.version).inc()
        self.latency.observe(seconds)
        (self.compliant if compliant else self.missing).inc()


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(title=f"ModelOps gateway: {gateway.model_name}")

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        body_bytes = await request.body()
        if len(body_bytes) > MAX_BODY_BYTES:
            gateway.metrics.errors.labels("too_large").inc()
            return JSONResponse(
                {"error": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413
            )
        try:
            body = json.loads(body_bytes)
        except ValueError as exc:
            gateway.metrics.errors.labels("bad_json").inc()
            return JSONResponse({"error": f"malformed JSON: {exc}"}, status_code=400)
        try:
            return JSONResponse(gateway.predict(body))
        except BadRequest as exc:
            gateway.metrics.errors.labels("bad_input").inc()
            return JSONResponse({"error": str(exc)}, status_code=422)
        except LookupError as exc:
            gateway.metrics.errors.labels("no_route").inc()
            return JSONResponse({"error": str(exc)}, status_code=503)

    @app.get("/health")
    async def health() -> JSONResponse:
        h = gateway.health()
        return JSONResponse(h, status_code=200 if h["status"] == "ok" else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from core.settings import load_settings

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    gateway = Gateway(args.model, load_settings().resolved_state_db_url)
    gateway.refresh()
    gateway.start_polling()
    uvicorn.run(
        create_app(gateway), host=args.host, port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
