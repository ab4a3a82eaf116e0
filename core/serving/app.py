"""The gateway's raw ASGI application: ``POST /predict``, ``GET /health``, ``GET /metrics``.

No framework routing on the request path: a predict is one body read, one orjson parse, a
type check of the features, a routing-table pick, one model call, and a response made of a
precomputed per-version prefix plus the serialized prediction. Logging and metrics are a
deque append and a few integer increments; the database is written by a background thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from core.serving.metrics import observe, render

if TYPE_CHECKING:
    from core.serving.gateway import Gateway

log = logging.getLogger("modelops.gateway")
MAX_BODY_BYTES = 1_000_000
# Bodies up to this size are read and discarded before the 413, so the client gets the
# answer instead of a reset connection; anything larger is refused without reading it.
MAX_DRAIN_BYTES = 64_000_000
MAX_ROWS = 1000
_NUMBER_TYPES = (float, int)
_JSON = b"application/json"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
perf_counter = time.perf_counter
wall_time = time.time


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 422, reason: str = "bad_input") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _type_name(v: Any) -> str:
    return {
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        list: "an array",
        dict: "an object",
    }.get(type(v), type(v).__name__)


def _check_row(row: Any, i: int, n_features: int) -> None:
    if type(row) is not list:
        raise BadRequest(
            f"row {i}: expected an array of {n_features} numbers, got {_type_name(row)}"
        )
    if len(row) != n_features:
        raise BadRequest(f"row {i}: expected {n_features} features, got {len(row)}")
    for v in row:
        t = type(v)
        if t is not float and t is not int:
            j = next(j for j, v in enumerate(row) if type(v) not in _NUMBER_TYPES)
            raise BadRequest(f"row {i}, feature {j}: expected a number, got {_type_name(row[j])}")


def parse_features(body: Any, n_features: int, dtype: type) -> tuple[np.ndarray, bool, list]:
    """``{"features": [x1..xn]}`` (one row) or ``{"features": [[...], ...]}`` (a batch).

    Returns the model input, whether it was a single row, and the parsed list (for the log).
    """
    if type(body) is not dict:
        raise BadRequest('body must be a JSON object with a "features" array')
    feats = body.get("features")
    if type(feats) is not list or not feats:
        raise BadRequest('"features" must be a non-empty array of numbers, or an array of rows')
    single = type(feats[0]) is not list
    if single:
        _check_row(feats, 0, n_features)
        rows = [feats]
    else:
        if len(feats) > MAX_ROWS:
            raise BadRequest(f"at most {MAX_ROWS} rows per request, got {len(feats)}")
        for i, row in enumerate(feats):
            _check_row(row, i, n_features)
        rows = feats
    try:
        x = np.array(rows, dtype=dtype)
    except (OverflowError, ValueError) as exc:
        raise BadRequest(
            f"features are not representable as {np.dtype(dtype).name}: {exc}"
        ) from exc
    if not np.isfinite(x).all():
        i, j = (int(k) for k in np.argwhere(~np.isfinite(x))[0])
        raise BadRequest(
            f"row {i}, feature {j}: NaN, infinity or a value outside the model's "
            f"{np.dtype(dtype).name} range is not accepted"
        )
    return x, single, feats


def render_prediction(
    prefix: bytes, labels: np.ndarray, proba: np.ndarray | None, single: bool
) -> tuple[bytes, dict]:
    if single:
        out = {"prediction": labels.item(0)}
        if proba is not None:
            out["probabilities"] = proba[0]
    else:
        out = {"prediction": labels.tolist()}
        if proba is not None:
            out["probabilities"] = proba
    # prefix = '{"model_name":…,"revision":N,' and the dict's own '{' is dropped.
    return prefix + orjson.dumps(out, option=_NUMPY)[1:], out


async def _send_json(send: Any, status: int, payload: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", _JSON), (b"content-length", b"%d" % len(payload))],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class GatewayApp:
    """ASGI callable around a ``Gateway`` (routing table, log, metrics, shadow mirror)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            path = scope["path"]
            if path == "/predict":
                if scope["method"] == "POST":
                    await self.predict(scope, receive, send)
                else:
                    await self._error(send, 405, "method_not_allowed", "use POST /predict")
            elif path == "/health":
                h = self.gw.health()
                await _send_json(send, 200 if h["status"] == "ok" else 503, orjson.dumps(h))
            elif path == "/metrics":
                body = render(self.gw.metrics_registry)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"text/plain; version=0.0.4; charset=utf-8"),
                            (b"content-length", b"%d" % len(body)),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            else:
                await self._error(send, 404, "not_found", f"no route {path}; use POST /predict")
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.gw.start_background()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.gw.stop_background()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _error(
        self, send: Any, status: int, reason: str, message: str, t0: float | None = None
    ) -> None:
        gw = self.gw
        gw.errors[reason] = gw.errors.get(reason, 0) + 1
        await _send_json(send, status, orjson.dumps({"error": message}))
        if t0 is not None:
            table = gw.table
            gw.log.record(
                (
                    wall_time(),
                    next(gw.seq),
                    table.revision if table else None,
                    None,
                    "none",
                    status,
                    perf_counter() - t0,
                    None,
                    None,
                    message,
                )
            )

    async def _read_body(self, scope: dict, receive: Any) -> tuple[bytes, bytes | None]:
        """The request body (bounded) and the sticky-routing key, if the client sent one."""
        declared = 0
        key = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else 0
            elif name == b"x-routing-key":
                key = value
        if declared > MAX_DRAIN_BYTES:
            raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes", 413, "too_large")
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body"):
            if len(body) > MAX_BODY_BYTES:
                raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes", 413, "too_large")
            return body, key
        chunks = bytearray(body)
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            part = message.get("body", b"")
            size += len(part)
            if size > MAX_DRAIN_BYTES:
                raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes", 413, "too_large")
            if size <= MAX_BODY_BYTES:
                chunks += part
        if size > MAX_BODY_BYTES:
            raise BadRequest(f"body larger than {MAX_BODY_BYTES} bytes", 413, "too_large")
        return bytes(chunks), key

    async def predict(self, scope: dict, receive: Any, send: Any) -> None:
        t0 = perf_counter()
        gw = self.gw
        try:
            body, key = await self._read_body(scope, receive)
            table = gw.table
            if table is None:
                raise BadRequest(f"{gw.model_name} has no live version", 503, "no_route")
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"malformed JSON: {exc}", 400, "bad_json") from exc
            route = table.pick_sticky(key) if key else table.pick()
            x, single, feats = parse_features(parsed, route.n_features, route.dtype)
        except BadRequest as exc:
            await self._error(send, exc.status, exc.reason, str(exc), t0)
            return
        served = route.served
        try:
            if route.inline:
                labels, proba = route.predict(x)
            else:
                labels, proba = await asyncio.get_running_loop().run_in_executor(
                    None, route.predict, x
                )
        except Exception as exc:  # the model failed: answer 500, count and log it with the trace
            log.exception("v%s failed on a request", served.version)
            route.stats.server_errors += 1
            await self._error(
                send, 500, "model_error", f"model v{served.version} failed: {exc}", t0
            )
            return
        payload, out = render_prediction(table.prefixes[served.version], labels, proba, single)
        await _send_json(send, 200, payload)
        elapsed = perf_counter() - t0
        observe(route.stats, elapsed)
        seq = next(gw.seq)
        now = wall_time()
        gw.log.record(
            (now, seq, table.revision, served.version, served.role, 200, elapsed, feats, out, None)
        )
        if table.shadows:
            gw.shadow.submit(now, seq, table, x, feats, labels)
