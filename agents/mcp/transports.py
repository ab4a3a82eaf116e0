"""The two ways in: stdio (the person from MODELOPS_TOKEN / the token file, or a claimed
``--as`` where the policy allows it, checked again on every request) and streamable HTTP
(``Authorization: Bearer`` checked on every HTTP request by the control plane's Authenticator:
401 without a valid token, 403 for a person who may not launch the profile)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from agents.mcp.server import McpGate, build_server
from core.errors import ModelOpsError, PermissionDenied

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from agents.server.auth import Authenticator, Principal
    from policies.rbac import Actor

# Where the bearer check leaves this request's person for the MCP handlers (the ASGI scope
# travels with the request into the SDK's transport, which hands it to each handler).
PRINCIPAL_KEY = "modelops.principal"
MCP_PATH = "/mcp"


# stdio ----------------------------------------------------------------------------------------
def stdio_person(gate: McpGate, claimed: str | None):  # noqa: ANN201
    """The person of this stdio session, resolved as every CLI command resolves it; called on
    every request, so a token revoked (or expired) meanwhile is refused from the next one."""
    from agents.cli.identity import resolve_cli_human

    services = gate.rt.services

    def person_of(_ctx: Any = None) -> Actor:
        services.refresh_policy()
        return resolve_cli_human(services, claimed)[0]

    return person_of


def run_stdio(gate: McpGate, claimed: str | None) -> None:
    from mcp.server.stdio import stdio_server

    person_of = stdio_person(gate, claimed)
    gate.agent(person_of())  # refuse at start-up (audited) a person who may not launch it
    server = build_server(gate, person_of)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)


# streamable HTTP ------------------------------------------------------------------------------
class BearerGate:
    """ASGI middleware in front of the SDK's app: every HTTP request carries a personal token
    that is valid now, and its owner may launch the profile; else 401/403 with our envelope."""

    def __init__(self, app: ASGIApp, gate: McpGate, auth: Authenticator) -> None:
        self.app, self.gate, self.auth = app, gate, auth

    def check(self, header: str | None) -> Principal:
        from agents.server.responses import ApiError

        principal = self.auth.bearer(header)
        try:
            self.gate.agent(principal.actor)
        except ModelOpsError as exc:
            raise ApiError(403, exc.code, exc.message, exc.hint) from exc
        return principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers
        from starlette.responses import JSONResponse

        from agents.server.responses import ApiError

        header = Headers(scope=scope).get("authorization")
        try:
            principal = await anyio.to_thread.run_sync(self.check, header)
        except ApiError as exc:
            response = JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
            await response(scope, receive, send)
            return
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, receive, send)


def http_person(ctx: Any) -> Actor:
    request = getattr(ctx, "request", None)
    principal = request.scope.get(PRINCIPAL_KEY) if request is not None else None
    if principal is None:  # the gate runs first; a request without it is refused, not guessed
        raise PermissionDenied("this request carries no checked personal token")
    return principal.actor


def http_app(gate: McpGate, *, host: str) -> ASGIApp:
    from agents.server.auth import Authenticator

    server = build_server(gate, http_person)
    # host: the SDK turns on DNS-rebinding protection (Host/Origin checks) for loopback.
    app = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    return BearerGate(app, gate, Authenticator(gate.rt.services))


def run_http(gate: McpGate, *, host: str, port: int, log_level: str) -> None:
    import uvicorn

    uvicorn.run(
        http_app(gate, host=host),
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
