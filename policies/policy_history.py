"""Every policy this home ever pinned, by digest, in the state DB, and which one the audit log
says was pinned last: what ``agent policy repin`` restores when ``pin.json`` is lost.

The texts are data, not proof: a restored policy is re-parsed and its digest recomputed, and
only the digest the audit chain names as last pinned is accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, String, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped, mapped_column

from core.errors import Conflict, NotFound
from core.state import Base, ensure_tables

if TYPE_CHECKING:
    from policies.audit import AuditLog
    from policies.pinned import PolicySet
    from policies.rbac import Actor, Policy

# Audit actions that make a policy the one in force, and where each keeps its digest.
PIN_ACTIONS = {"policy.pin": "digest", "policy.apply": "new_digest", "policy.repin": "digest"}


class PolicyHistoryRow(Base):
    __tablename__ = "policy_history"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    texts: Mapped[dict] = mapped_column(JSON)  # file name -> text, as pinned
    pinned_at: Mapped[str] = mapped_column(String(40))
    pinned_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


def ensure(engine: Engine) -> None:
    ensure_tables(engine, PolicyHistoryRow)


def known(engine: Engine, digest: str) -> bool:
    ensure(engine)
    t = PolicyHistoryRow.__table__
    with engine.connect() as c:
        return c.execute(select(t.c.digest).where(t.c.digest == digest)).first() is not None


def record(conn: Connection, policy: PolicySet, by: str | None) -> None:
    """Keep ``policy``'s texts under its digest (once; callers hold the pin lock)."""
    t = PolicyHistoryRow.__table__
    if conn.execute(select(t.c.digest).where(t.c.digest == policy.digest)).first() is not None:
        return
    conn.execute(
        insert(t).values(
            digest=policy.digest,
            texts=dict(policy.texts),
            pinned_at=datetime.now(UTC).isoformat(),
            pinned_by=by,
        )
    )


def texts(engine: Engine, digest: str) -> dict[str, str] | None:
    ensure(engine)
    t = PolicyHistoryRow.__table__
    with engine.connect() as c:
        row = c.execute(select(t.c.texts).where(t.c.digest == digest)).first()
    return None if row is None else dict(row.texts)


def last_pinned(audit: AuditLog) -> dict[str, Any] | None:
    """The newest successful pin, apply or repin in the audit log: {digest, seq, action}."""
    from policies.audit import AuditEntry

    t = AuditEntry.__table__
    q = (
        select(t.c.seq, t.c.action, t.c.detail)
        .where(t.c.action.in_(list(PIN_ACTIONS)), t.c.outcome == "ok")
        .order_by(t.c.seq.desc())
        .limit(1)
    )
    with audit.engine.connect() as c:
        row = c.execute(q).first()
    if row is None:
        return None
    detail = row.detail if isinstance(row.detail, dict) else {}
    return {
        "digest": str(detail.get(PIN_ACTIONS[row.action], "")),
        "seq": row.seq,
        "action": row.action,
    }


def repin_policy(
    home: Path, digest: str, *, audit: AuditLog, actor_for: Callable[[Policy], Actor]
) -> dict[str, Any]:
    """Restore a lost pin: the texts kept for ``digest`` in the state DB, only when ``digest``
    is the last policy the audit log records as pinned, and only for an admin of that policy
    (``actor_for`` resolves the acting person under it). Audited as ``policy.repin``."""
    from policies.pinned import locked, parse_texts, read_pin, require_admin, write_pin
    from policies.rbac import ADMIN_PERMISSION

    with locked(home, exclusive=True):
        pin = read_pin(home)
        if pin is not None:
            raise Conflict(
                f"a policy is pinned in this home ({str(pin['digest'])[:12]}); nothing to restore",
                hint="Review it with `agent policy show`; change it with `agent policy apply FILE`.",
            )
        last = last_pinned(audit)
        if last is None:
            raise NotFound(
                "this home's audit log records no pinned policy, so there is none to restore",
                hint="A new home pins the bundled policy on first use: run `agent policy show`.",
            )
        if digest != last["digest"]:
            raise Conflict(
                f"{digest[:12]} is not the last policy pinned in this home ({last['digest']}, "
                f"audit entry {last['seq']}); only that one is restored",
                hint=f"Run `agent policy repin --digest {last['digest']}`.",
            )
        kept = texts(audit.engine, digest)
        if kept is None:
            raise NotFound(
                f"the state DB keeps no texts for policy {digest[:12]}",
                hint="Restore pin.json from a backup of the home.",
            )
        restored = parse_texts(kept, "policy_history")
        if restored.digest != digest:
            raise Conflict(
                f"the texts kept for policy {digest[:12]} have digest {restored.digest[:12]}: "
                "the history was edited",
                hint="Restore pin.json from a backup of the home; run `agent audit verify`.",
            )
        actor = actor_for(restored.policy)
        detail = {"digest": digest, "old_state": "missing", "last_pinned_seq": last["seq"]}
        require_admin(restored.policy, audit, actor, "policy.repin", detail)
        seq = audit.intent(actor, "policy.repin", ADMIN_PERMISSION, detail)
        try:
            write_pin(home, restored, by=actor.responsible_human, previous=None)
        except OSError as exc:
            audit.complete(
                seq, actor, "policy.repin", ADMIN_PERMISSION, "error", {**detail, "error": str(exc)}
            )
            raise
        audit.complete(seq, actor, "policy.repin", ADMIN_PERMISSION, "ok", detail)
    return detail
