"""Personal tokens: the credential behind ``identity: token``.

A token is shown once, when it is created; only its SHA-256 is stored, with its owner, expiry
and revocation. Creating, listing and revoking tokens is for admins (``policy:admin``), and
every attempt is audited (never with the secret). ``resolve_human`` turns a token and/or a
claimed name into the acting person under the policy's identity mode; the CLI, and later the
control-plane API, call it so the person always comes from the credential when there is one.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, bindparam, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.state import Base, ensure_tables, utcnow
from policies.pinned import require_admin

if TYPE_CHECKING:
    from policies.audit import AuditLog
    from policies.rbac import Actor, Policy

TOKEN_PREFIX = "mot_"
MAX_EXPIRY_DAYS = 3650
TOKEN_HINT = (
    "Ask an admin for a personal token (`agent admin token create NAME`), then set "
    "MODELOPS_TOKEN or save it in ~/.config/modelops/token with mode 0600; "
    "`agent whoami` shows who you are."
)


class PersonalToken(Base):
    __tablename__ = "personal_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the secret, so a person can tell their tokens apart.
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[str] = mapped_column(String(40))  # ISO-8601 UTC
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[str] = mapped_column(String(40))
    revoked_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: str
    owner: str
    hint: str
    created_at: str
    created_by: str
    expires_at: str
    revoked_at: str | None

    def status(self, now: datetime | None = None) -> str:
        if self.revoked_at:
            return "revoked"
        if datetime.fromisoformat(self.expires_at) <= (now or utcnow()):
            return "expired"
        return "active"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status()}


@contextlib.contextmanager
def _conn(engine: Engine, conn: Connection | None) -> Iterator[Connection]:
    if conn is not None:
        yield conn
    else:
        with engine.begin() as own:
            yield own


def _info(row: PersonalToken) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        owner=row.owner,
        hint=row.hint,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


_T = PersonalToken.__table__
# TokenInfo's fields of the token with this SHA-256 (built once; SQLAlchemy caches its
# compiled form).
_BY_HASH = select(
    _T.c.id,
    _T.c.owner,
    _T.c.hint,
    _T.c.created_at,
    _T.c.created_by,
    _T.c.expires_at,
    _T.c.revoked_at,
).where(_T.c.token_sha256 == bindparam("sha"))


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, PersonalToken)

    def create(
        self, owner: str, *, expires_days: int, created_by: str, conn: Connection | None = None
    ) -> tuple[str, TokenInfo]:
        """A new token for ``owner``: (the secret, shown once; its stored record).
        With ``conn`` the row is written in that transaction (and its audit row with it)."""
        if not 1 <= expires_days <= MAX_EXPIRY_DAYS:
            raise InvalidInput(f"--expires-days must be between 1 and {MAX_EXPIRY_DAYS}")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        info = TokenInfo(
            id="tok_" + secrets.token_hex(6),
            owner=owner,
            hint=secret[: len(TOKEN_PREFIX) + 4],
            created_at=now.isoformat(),
            created_by=created_by,
            expires_at=(now + timedelta(days=expires_days)).isoformat(),
            revoked_at=None,
        )
        row = {**asdict(info), "token_sha256": hash_token(secret)}
        with _conn(self.engine, conn) as c:
            c.execute(insert(PersonalToken.__table__), row)
        return secret, info

    def entries(self, owner: str | None = None) -> list[TokenInfo]:
        q = select(PersonalToken).order_by(PersonalToken.created_at.desc())
        if owner:
            q = q.where(PersonalToken.owner == owner)
        with Session(self.engine) as s:
            return [_info(r) for r in s.scalars(q)]

    def get(self, token_id: str) -> TokenInfo:
        with Session(self.engine) as s:
            row = s.get(PersonalToken, token_id)
            if row is None:
                raise NotFound(
                    f"no token with id {token_id!r}", hint="List them: `agent admin token list`."
                )
            return _info(row)

    def revoke(self, token_id: str, *, conn: Connection | None = None) -> TokenInfo:
        """Revoke a token (idempotent: an already revoked token keeps its first revocation)."""
        self.get(token_id)
        t = PersonalToken.__table__
        with _conn(self.engine, conn) as c:
            c.execute(
                update(t)
                .where(t.c.id == token_id, t.c.revoked_at.is_(None))
                .values(revoked_at=utcnow().isoformat())
            )
            row = c.execute(select(t).where(t.c.id == token_id)).mappings().one()
        return TokenInfo(**{k: v for k, v in row.items() if k != "token_sha256"})

    def verify(self, secret: str, where: str = "the token") -> TokenInfo:
        """The record of a valid token; a garbage, unknown, expired or revoked one is refused."""
        secret = secret.strip()
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            raise PermissionDenied(f"{where} is not a ModelOps personal token", hint=TOKEN_HINT)
        # One indexed Core read on every call (no cache): a revocation or expiry, by this
        # process or another, holds from the very next request. The ORM session cost ~4x more.
        with self.engine.connect() as c:
            row = c.execute(_BY_HASH, {"sha": hash_token(secret)}).first()
        info = TokenInfo(**row._mapping) if row is not None else None
        if info is None:
            raise PermissionDenied(f"{where} is not a known personal token", hint=TOKEN_HINT)
        status = info.status()
        if status != "active":
            when = info.revoked_at if status == "revoked" else info.expires_at
            raise PermissionDenied(
                f"{where} ({info.id}, {info.owner}) is {status} since {when[:19]}",
                hint=TOKEN_HINT,
            )
        return info

    def has_active(self, owner: str) -> bool:
        return any(t.status() == "active" for t in self.entries(owner))


# Identity ----------------------------------------------------------------------------------
def resolve_human(
    policy: Policy,
    *,
    token: str | None,
    claimed: str | None,
    store: Callable[[], TokenStore],
    token_source: str = "the token",
) -> tuple[Actor, TokenInfo | None]:
    """The acting person and the token that proved it (None for a claim).

    - With a token the person comes from the token (authenticated); a claimed name that is
      someone else is refused.
    - Without one, ``identity: token`` refuses any claim; ``identity: claimed`` accepts it,
      recorded as unauthenticated.
    """
    if token:
        info = store().verify(token, token_source)
        if claimed and claimed != info.owner:
            raise PermissionDenied(
                f"{token_source} belongs to {info.owner}, but --as/MODELOPS_USER says {claimed!r}",
                hint="Drop --as (and MODELOPS_USER) when you use a personal token; it names you.",
            )
        return policy.human(info.owner, authenticated=True), info
    if policy.identity == "token":
        what = (
            f"{claimed!r} given with --as or MODELOPS_USER is only a claim"
            if claimed
            else ("no personal token was given")
        )
        raise PermissionDenied(
            f"the policy in force requires a personal token (identity: token); {what}",
            hint=TOKEN_HINT,
        )
    return policy.human(claimed, authenticated=False), None


# Admin actions (audited) -------------------------------------------------------------------
def create_token(
    store: TokenStore,
    policy: Policy,
    audit: AuditLog,
    actor: Actor,
    owner: str,
    *,
    expires_days: int = 90,
) -> tuple[str, TokenInfo]:
    require_admin(policy, audit, actor, "token.create", {"owner": owner})
    if owner not in policy.people:
        raise NotFound(
            f"{owner!r} is not a person in the policy in force",
            hint=f"Listed people: {', '.join(sorted(policy.people))} (`agent policy show`).",
        )
    with store.engine.begin() as conn:
        secret, info = store.create(
            owner, expires_days=expires_days, created_by=actor.responsible_human, conn=conn
        )
        audit.append(
            actor,
            "token.create",
            "policy:admin",
            decision="allowed",
            outcome="ok",
            detail={"token_id": info.id, "owner": owner, "expires_at": info.expires_at},
            conn=conn,
        )
    return secret, info


def list_tokens(
    store: TokenStore, policy: Policy, audit: AuditLog, actor: Actor, owner: str | None = None
) -> list[TokenInfo]:
    require_admin(policy, audit, actor, "token.list", {"owner": owner})
    return store.entries(owner)


def revoke_token(
    store: TokenStore, policy: Policy, audit: AuditLog, actor: Actor, token_id: str
) -> TokenInfo:
    require_admin(policy, audit, actor, "token.revoke", {"token_id": token_id})
    before = store.get(token_id)
    with store.engine.begin() as conn:
        info = store.revoke(token_id, conn=conn)
        audit.append(
            actor,
            "token.revoke",
            "policy:admin",
            decision="allowed",
            outcome="ok" if before.revoked_at is None else "already_revoked",
            detail={"token_id": token_id, "owner": info.owner, "revoked_at": info.revoked_at},
            conn=conn,
        )
    return info


def check_token_mode_reachable(policy: Policy, store: TokenStore) -> None:
    """Switching to ``identity: token`` with no admin holding a token would lock everyone out."""
    if policy.identity != "token":
        return
    if not any(store.has_active(admin) for admin in policy.admins):
        raise Conflict(
            "this policy asks for personal tokens (identity: token), but none of its admins "
            f"({', '.join(policy.admins) or 'none listed'}) holds an active token",
            hint="First create one for yourself: `agent admin token create NAME`.",
        )
