"""FastAPI dependencies: the control plane of this app and the authenticated caller."""

from __future__ import annotations

from fastapi import Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agents.server.auth import Principal
from agents.server.plane import ControlPlane

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="personalToken",
    description="A ModelOps personal token (`agent admin token create PERSON`); the acting "
    "person is the token's owner.",
)

IDEMPOTENCY_HEADER = Header(
    None,
    alias="Idempotency-Key",
    max_length=255,
    description="A fresh random value per intended action: a repeat with the same key "
    "gets the first response and acts once.",
)


# Both are async on purpose: a sync dependency costs a thread-pool hop per request, and the
# token check is one indexed read. Routes send their tool calls to the thread pool in one hop.
async def control_plane(request: Request) -> ControlPlane:
    return request.app.state.control_plane


async def principal(
    request: Request, _creds: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
) -> Principal:
    """The token's person (401 when the token is missing, unknown, expired or revoked)."""
    cp: ControlPlane = request.app.state.control_plane
    p = cp.auth.bearer(request.headers.get("authorization"))
    request.state.person = p.name  # for the access log line (never the token)
    return p
