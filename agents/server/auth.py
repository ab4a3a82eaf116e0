"""Who is calling: ``Authorization: Bearer <personal token>`` for the API, a session cookie for
the console. The person always comes from the token (``policies.tokens.resolve_human``), never
from a body field, a header or a form: 401 for a missing, unknown, expired or revoked token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from agents.server.responses import ApiError, unauthenticated
from core.errors import PermissionDenied
from core.state import utcnow
from policies.tokens import TOKEN_HINT, TokenInfo, TokenStore, resolve_human

if TYPE_CHECKING:
    from policies.rbac import Actor
    from tools.context import Services

BEARER_HINT = "Send `Authorization: Bearer <personal token>`. " + TOKEN_HINT


@dataclass(frozen=True)
class Principal:
    """An authenticated person and the token that proved it."""

    actor: Actor
    token_id: str
    token_expires_at: str

    @property
    def name(self) -> str:
        return self.actor.name


class _Unauthenticated(PermissionDenied):
    code = "unauthenticated"


class _CheckedStore:
    """The token store as ``resolve_human`` sees it: a bad token is a 401, not a 403."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    def verify(self, secret: str, where: str = "the token") -> TokenInfo:
        try:
            return self.store.verify(secret, where)
        except PermissionDenied as exc:
            raise _Unauthenticated(exc.message, hint=exc.hint) from exc


class Authenticator:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._store = _CheckedStore(services.tokens)

    def bearer(self, header: str | None) -> Principal:
        """The person behind an ``Authorization`` header value."""
        if not header:
            raise unauthenticated(
                "no personal token: the Authorization header is missing", BEARER_HINT
            )
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise unauthenticated("the Authorization header is not `Bearer <token>`", BEARER_HINT)
        return self.token(secret.strip(), "the bearer token")

    def token(self, secret: str, where: str) -> Principal:
        self.services.refresh_policy()  # the person is looked up in the policy in force
        try:
            actor, info = resolve_human(
                self.services.policy,
                token=secret,
                claimed=None,
                store=lambda: self._store,
                token_source=where,
            )
        except _Unauthenticated as exc:
            raise unauthenticated(exc.message, BEARER_HINT) from exc
        except PermissionDenied as exc:  # a valid token whose owner the policy no longer lists
            raise ApiError(403, exc.code, exc.message, exc.hint) from exc
        assert info is not None  # a token was given, so resolve_human returns its record
        return Principal(actor, info.id, info.expires_at)

    def session_principal(self, person: str, token_id: str) -> Principal:
        """Re-check a console session's token on every request (revocation, expiry)."""
        from core.errors import NotFound

        try:
            info = self.services.tokens.get(token_id)
        except NotFound as exc:
            raise unauthenticated("the token behind this session no longer exists") from exc
        status = info.status()
        if status != "active" or info.owner != person:
            raise unauthenticated(f"the token behind this session is {status}; sign in again")
        self.services.refresh_policy()
        try:
            actor = self.services.policy.human(person, authenticated=True)
        except PermissionDenied as exc:
            raise ApiError(403, exc.code, exc.message, exc.hint) from exc
        return Principal(actor, info.id, info.expires_at)


def seconds_left(expires_at: str) -> float:
    return (datetime.fromisoformat(expires_at) - utcnow()).total_seconds()
