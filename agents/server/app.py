"""The control-plane app: ``create_app(runtime, config)`` mounts the REST API, the
OpenAI-compatible agent endpoint and the console over one ControlPlane, plus ``/healthz``,
``/metrics`` and (when the review bot is installed) ``/webhooks/github``.

One ASGI edge layer gives every response an ``X-Request-Id``, refuses bodies over the limit
with 413 before a route reads them, and records request counts and latency per route.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from agents.server.plane import ControlPlane, ServerConfig
from agents.server.responses import REQUEST_ID, ApiError
from core.errors import ModelOpsError

if TYPE_CHECKING:
    from agents.runtime import Runtime

log = logging.getLogger("modelops.server")
access_log = logging.getLogger("modelops.server.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
VERSION = "0.1.0"
WEBHOOK_PATH = "/webhooks/github"
WEBHOOK_MAX_BYTES = 25 * 1024 * 1024
WEBHOOK_SECRET_ENV = "MODELOPS_GITHUB_WEBHOOK_SECRET"


class _TooLarge(StarletteHTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class Edge:
    """Request id, body limit and metrics, as plain ASGI (no per-request task or copy)."""

    def __init__(self, app: Any, control: ControlPlane) -> None:
        self.app = app
        self.control = control
        self.limit = control.config.max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.match(given) else f"req-{secrets.token_hex(6)}"
        scope.setdefault("state", {})["request_id"] = rid
        current = REQUEST_ID.set(rid)
        status = [500]
        # GitHub sends webhook payloads of up to 25 MB; the review bot bounds them itself.
        limit = WEBHOOK_MAX_BYTES if scope.get("path") == WEBHOOK_PATH else self.limit

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())],
                }
            await send(message)

        try:
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > limit):
                await _send_json(send_with_id, 413, _too_large(limit, rid))
                return
            seen = 0

            async def limited() -> dict:
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        raise _TooLarge(limit)
                return message

            await self.app(scope, limited, send_with_id)
        finally:
            REQUEST_ID.reset(current)
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - start
            self.control.metrics.observe(scope.get("method", ""), path, status[0], elapsed)
            if access_log.isEnabledFor(logging.INFO):
                # The route template (/api/v1/approvals/{approval_id}), never the query
                # string, a header or a body: nothing here can carry a token.
                access_log.info(
                    "request",
                    extra={
                        "request_id": rid,
                        "person": scope["state"].get("person"),
                        "method": scope.get("method", ""),
                        "route": path,
                        "status": status[0],
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )


def _too_large(limit: int, rid: str) -> dict[str, Any]:
    return ApiError(
        413,
        "payload_too_large",
        f"the request body is larger than {limit} bytes",
        "Send less (agent serve --max-body-bytes sets the limit).",
    ).body(rid)


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    import json

    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _rid(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def create_app(runtime: Runtime, config: ServerConfig | None = None) -> FastAPI:
    """The app over ``runtime``'s services and dispatcher (the caller owns the runtime)."""
    from agents.server import api, api_ops, chat, console, console_fleet, console_monitoring

    control = ControlPlane(runtime, config or ServerConfig())
    control.warm()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # noqa: ANN202
        # Decisions whose execution a crashed server left unfinished continue here.
        control.jobs.resume_all()
        yield
        control.close()

    app = FastAPI(
        title="ModelOps control plane",
        version=VERSION,
        description="The team's control plane: REST over the same tools, policies and audit "
        "as the `agent` CLI; agents as OpenAI-compatible models; an approval console. "
        "Every call acts as the owner of the bearer token.",
        lifespan=lifespan,
    )
    app.state.control_plane = control

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if exc.status == 401:
            control.metrics.auth_failures.labels("token").inc()
        if request.url.path.startswith("/console"):
            return console.error_page(request, exc)
        return JSONResponse(exc.body(_rid(request)), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ModelOpsError)
    async def _modelops_error(request: Request, exc: ModelOpsError) -> Response:
        return await _api_error(request, ApiError.from_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ())) or '(request)'}: {e.get('msg', '')}"
            for e in errors[:5]
        ]
        err = ApiError(422, "invalid_input", "invalid request: " + "; ".join(parts))
        if request.url.path.startswith("/console"):
            return console.error_page(request, err)
        body = {**err.body(_rid(request)), "detail": _plain_errors(errors)}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        return await _api_error(request, ApiError(exc.status_code, code, str(exc.detail)))

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        """Liveness: the process answers and its state DB can be read."""
        from sqlalchemy import text

        with control.services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": VERSION, "policy_digest": control.services.policy_digest}

    @app.get(
        "/metrics",
        tags=["service"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def metrics() -> Response:
        """Prometheus metrics: requests, latency, tool calls by outcome, approvals by state."""
        from agents.server.metrics import CONTENT_TYPE

        return Response(control.metrics.render(), media_type=CONTENT_TYPE)

    app.include_router(chat.router)  # first: chat UIs call it most, and each route is tried in turn
    app.include_router(api.router)
    app.include_router(api_ops.router)
    app.include_router(console.router)
    app.include_router(console_monitoring.router)
    app.include_router(console_fleet.router)
    app.include_router(console.root_router)
    console.mount_static(app)
    _mount_webhook(app, control)
    app.add_middleware(Edge, control=control)
    return app


def _plain_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        out.append(
            {
                "loc": [p if isinstance(p, int | str) else str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
        )
    return out


def _mount_webhook(app: FastAPI, control: ControlPlane) -> None:
    """``POST /webhooks/github``: the review bot (agents.review.webhook), authenticated by
    GitHub's HMAC signature with the secret from MODELOPS_GITHUB_WEBHOOK_SECRET (no token)."""
    import os

    from fastapi.concurrency import run_in_threadpool

    @app.post(
        WEBHOOK_PATH,
        tags=["webhooks"],
        responses={404: {"description": "No webhook secret is configured on this server."}},
    )
    async def github_webhook(request: Request) -> Response:
        """A GitHub pull-request webhook for the review bot (X-Hub-Signature-256 checked
        first; 401 when it is missing or wrong)."""
        from agents.review.webhook import review_webhook

        secret = os.environ.get(WEBHOOK_SECRET_ENV, "")
        if not secret:
            raise ApiError(
                404,
                "not_found",
                "the GitHub webhook is not configured on this server",
                f"Set {WEBHOOK_SECRET_ENV} (the webhook's secret on GitHub) for `agent serve`.",
            )
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, payload = await run_in_threadpool(
            review_webhook,
            headers,
            body,
            secret=secret,
            services=control.services,
            dispatcher=control.dispatcher,
        )
        return JSONResponse(payload, status_code=status)
