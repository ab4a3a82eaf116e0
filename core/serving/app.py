"""The gateway's raw ASGI application: ``POST /predict``, ``GET /health``, ``GET /metrics``.

No framework routing on the request path: a predict is one body read, one orjson parse, a
type check of the features, a routing-table pick, one model call, and a response made of a
precomputed per-version prefix plus the serialized prediction. Logging and metrics are a
deque append and a few integer increments; the database is written by a background thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from hashlib import blake2b
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from core.monitoring.feedback import FeedbackError, parse_feedback
from core.serving.metrics import observe, render
from core.serving.mixed_input import parse_mixed
from core.serving.named_input import NAMED_KEYS, named_features

if TYPE_CHECKING:
    from core.serving.gateway import Gateway

log = logging.getLogger("modelops.gateway")
# One line per /predict (core.access_log formats it); the fields only, never a body or header.
access = logging.getLogger("modelops.gateway.access")
_INFO = logging.INFO
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
    """A 4xx: a refusal at the edge, the client's, never counted against any version's health
    (``core.monitoring.slo``). ``by_model``: refused by the picked version's own input
    contract (its feature count or input dtype); the log row names that version so a person
    can see which contract refused it, and the version's ``rejected`` counter shows it, but
    it is not a failure of the version: any client can send such requests."""

    def __init__(
        self, message: str, status: int = 422, reason: str = "bad_input", *, by_model: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.by_model = by_model


def token_digest(token: str | None) -> bytes | None:
    """SHA-256 of the gateway token (None: the gateway takes anonymous requests)."""
    return hashlib.sha256(token.encode()).digest() if token else None


def token_matches(header: bytes | None, digest: bytes) -> bool:
    """Whether an ``Authorization: Bearer TOKEN`` header carries the token (constant time)."""
    if not header or not header[:7].lower() == b"bearer ":
        return False
    return hmac.compare_digest(hashlib.sha256(header[7:].strip()).digest(), digest)


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
        raise BadRequest(f"row {i}: expected {n_features} features, got {len(row)}", by_model=True)
    for v in row:
        t = type(v)
        if t is not float and t is not int:
            j = next(j for j, v in enumerate(row) if type(v) not in _NUMBER_TYPES)
            raise BadRequest(f"row {i}, feature {j}: expected a number, got {_type_name(row[j])}")


def _fits_float64(rows: list) -> bool:
    """Whether the values are finite float64 numbers, i.e. a model with a wider input dtype
    would take them (called on the error path only)."""
    try:
        return bool(np.isfinite(np.array(rows, dtype=np.float64)).all())
    except (OverflowError, ValueError):
        return False


def parse_features(
    body: Any,
    n_features: int,
    dtype: type,
    columns: dict[str, int] | None = None,
    mixed: Any = None,
) -> tuple[np.ndarray, bool, list]:
    """``{"features": [x1..xn]}`` (one row) or ``{"features": [[...], ...]}`` (a batch); or
    named columns (``core.serving.named_input``), reordered by ``columns`` (name -> position).
    A version with string columns (``mixed``, a ``MixedSchema``) takes named rows only
    (``core.serving.mixed_input``).

    Returns the model input, whether it was a single row, and the parsed list (for the log).
    """
    if type(body) is not dict:
        raise BadRequest('body must be a JSON object with a "features" array')
    if mixed is not None:
        return parse_mixed(body, mixed, MAX_ROWS)
    feats = body.get("features")
    if feats is None and not NAMED_KEYS.isdisjoint(body):
        feats = named_features(body, columns)
    if type(feats) is not list or not feats:
        raise BadRequest(
            '"features" must be a non-empty array of numbers, or an array of rows (or name the '
            'columns: {"inputs": [{"col": value, ...}]} or {"columns": [...], "data": [[...]]})'
        )
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
            f"features are not representable as {np.dtype(dtype).name}: {exc}",
            by_model=_fits_float64(rows),
        ) from exc
    if not np.isfinite(x).all():
        i, j = (int(k) for k in np.argwhere(~np.isfinite(x))[0])
        raise BadRequest(
            f"row {i}, feature {j}: NaN, infinity or a value outside the model's "
            f"{np.dtype(dtype).name} range is not accepted",
            by_model=_fits_float64(rows),
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


def _access(request_id: str, status: int, elapsed: float) -> None:
    """The access line of one /predict (after the response was sent: off the answer's path)."""
    access.info(
        "request",
        extra={
            "request_id": request_id,
            "method": "POST",
            "route": "/predict",
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
        },
    )


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
            elif path == "/feedback":
                if scope["method"] == "POST":
                    await self.feedback(scope, receive, send)
                else:
                    await self._error(send, 405, "method_not_allowed", "use POST /feedback")
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
        self,
        send: Any,
        status: int,
        reason: str,
        message: str,
        t0: float | None = None,
        served: Any = None,
    ) -> None:
        gw = self.gw
        gw.errors[reason] = gw.errors.get(reason, 0) + 1
        await _send_json(send, status, orjson.dumps({"error": message}))
        if t0 is not None:
            table = gw.table
            seq = next(gw.seq)
            if access.isEnabledFor(_INFO):
                _access(f"{gw.id_prefix.decode()}-{seq}", status, perf_counter() - t0)
            gw.log.record(
                (
                    wall_time(),
                    seq,
                    table.revision if table else None,
                    served.version if served is not None else None,  # the version's fault
                    served.role if served is not None else "none",
                    status,
                    perf_counter() - t0,
                    None,
                    None,
                    message,
                )
            )

    async def _read_body(self, scope: dict, receive: Any) -> tuple[bytes, bytes | None]:
        """The request body (bounded) and the sticky-routing key, if the client sent one.
        With a gateway token configured, a request without it is refused (401) first."""
        declared = 0
        key = None
        auth = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else 0
            elif name == b"x-routing-key":
                key = value
            elif name == b"authorization":
                auth = value
        if self.gw.token_digest is not None and not token_matches(auth, self.gw.token_digest):
            raise BadRequest(
                "a gateway token is required: send `Authorization: Bearer TOKEN`",
                401,
                "unauthorized",
            )
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
            x, single, feats = parse_features(
                parsed, route.n_features, route.dtype, route.column_index, route.mixed
            )
        except BadRequest as exc:
            if exc.by_model:  # raised by parse_features, after the pick: route is bound
                route.stats.rejected += 1
            await self._error(
                send, exc.status, exc.reason, str(exc), t0, route.served if exc.by_model else None
            )
            return
        served = route.served
        try:
            batcher = route.batcher
            if (
                batcher is not None
                and single
                and not (route.inline and batcher.alone(scope.get("client"), t0))
            ):
                # Gathered with other concurrent single-row requests into one model call;
                # the answer, log row and metrics below stay this request's own.
                fut = batcher.submit(x)
                if route.inline:
                    labels, proba = await fut
                else:
                    labels, proba = await asyncio.wait_for(fut, gw.predict_timeout_s)
            elif route.inline:
                labels, proba = route.predict(x)
            else:
                # Thread-run models answer within the deadline or count as a timeout (the
                # thread finishes its call in the background; its result is dropped).
                labels, proba = await asyncio.wait_for(
                    asyncio.get_running_loop().run_in_executor(None, route.predict, x),
                    gw.predict_timeout_s,
                )
        except TimeoutError:
            route.stats.timeouts += 1
            await self._error(
                send,
                504,
                "timeout",
                f"model v{served.version} did not answer within {gw.predict_timeout_s:g} s",
                t0,
                served,
            )
            return
        except ValueError as exc:
            # The model's own input validation refused these values (e.g. a tree ensemble's
            # float32 range, an unknown category): the client chose them, so it is a refusal
            # at the edge, not a failure of the version (any client could send it at will).
            await self._error(
                send,
                422,
                "refused_by_model",
                f"model v{served.version} refused the input: {exc}",
                t0,
                served,
            )
            return
        except Exception as exc:  # the model failed: answer 500, count and log it with the trace
            log.exception("v%s failed on a request", served.version)
            route.stats.server_errors += 1
            await self._error(
                send, 500, "model_error", f"model v{served.version} failed: {exc}", t0, served
            )
            return
        seq = next(gw.seq)
        payload, out = render_prediction(table.prefixes[served.version], labels, proba, single)
        # The id POST /feedback joins a label (or an A/B outcome) to this prediction by.
        payload = b'%s,"prediction_id":"%s-%d"}' % (payload[:-1], gw.id_prefix, seq)
        await _send_json(send, 200, payload)
        elapsed = perf_counter() - t0
        observe(route.stats, elapsed)
        if access.isEnabledFor(_INFO):
            _access(f"{gw.id_prefix.decode()}-{seq}", 200, elapsed)
        if key is not None:  # the A/B unit, logged as a hash (never the raw user key)
            out["routing_key_hash"] = blake2b(key, digest_size=8).hexdigest()
        now = wall_time()
        gw.log.record(
            (now, seq, table.revision, served.version, served.role, 200, elapsed, feats, out, None)
        )
        if table.shadows:
            gw.shadow.submit(now, seq, table, x, feats, labels)

    async def feedback(self, scope: dict, receive: Any, send: Any) -> None:
        """``POST /feedback``: labels and A/B outcomes for earlier predictions (buffered; a
        background thread writes them). Ids this gateway has not issued yet are refused."""
        gw = self.gw
        try:
            body, _ = await self._read_body(scope, receive)
            try:
                items = parse_feedback(orjson.loads(body))
            except orjson.JSONDecodeError as exc:
                raise FeedbackError(f"malformed JSON: {exc}", 400) from exc
        except (BadRequest, FeedbackError) as exc:
            await _send_json(send, exc.status, orjson.dumps({"error": str(exc)}))
            return
        own, newest = gw.gateway_id + "-", next(gw.seq)
        unknown = [i[0] for i in items if i[0].startswith(own) and int(i[0][len(own) :]) >= newest]
        known = [i for i in items if i[0] not in unknown]
        accepted = gw.feedback.record(known) if known else 0
        status = 202 if known else 404
        reply = {"accepted": accepted, "unknown_prediction_ids": unknown[:100]}
        if not known:
            reply["error"] = "no prediction with these ids was made by this gateway"
        await _send_json(send, status, orjson.dumps(reply))
