"""Append-only audit log; each entry carries the SHA-256 of the one before it.

Appends are serialized through a one-row head table (``UPDATE`` takes the write lock on
SQLite and a row lock on PostgreSQL), so concurrent writers can never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import JSON, Integer, String, Text, bindparam, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.state import Base, ensure_tables, utcnow
from policies.rbac import Actor

GENESIS = "0" * 64


class AuditHead(Base):
    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(40))  # ISO-8601 UTC, hashed as written
    actor: Mapped[str] = mapped_column(String(128))
    actor_kind: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(64))
    on_behalf_of: Mapped[str | None] = mapped_column(String(128), nullable=True)
    action: Mapped[str] = mapped_column(String(128))
    permission: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))  # allowed | denied
    outcome: Mapped[str] = mapped_column(String(64))  # ok | <error code>
    detail: Mapped[dict] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")


_HASHED = (
    "seq",
    "ts",
    "actor",
    "actor_kind",
    "role",
    "on_behalf_of",
    "action",
    "permission",
    "decision",
    "outcome",
    "detail",
    "reason",
    "prev_hash",
)


def _entry_hash(fields: dict[str, Any]) -> str:
    canon = json.dumps(
        {k: fields[k] for k in _HASHED}, sort_keys=True, default=str, separators=(",", ":")
    )
    return hashlib.sha256(canon.encode()).hexdigest()


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, AuditHead, AuditEntry)
        with Session(engine) as s, s.begin():
            if s.get(AuditHead, 1) is None:
                s.add(AuditHead(id=1, seq=0, last_hash=GENESIS))
        # Built once: constructing SQLAlchemy statements costs more than running them.
        head, entry = AuditHead.__table__, AuditEntry.__table__
        self._bump = (
            update(head)
            .where(head.c.id == 1)
            .values(seq=head.c.seq + 1)
            .returning(head.c.seq, head.c.last_hash)
        )
        self._insert = insert(entry)
        self._set_hash = update(head).where(head.c.id == 1).values(last_hash=bindparam("digest"))

    def append(
        self,
        actor: Actor,
        action: str,
        permission: str,
        *,
        decision: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
        reason: str = "",
    ) -> int:
        # Core statements on one connection: the ORM session costs more than the writes.
        with self.engine.begin() as s:
            head = s.execute(self._bump).one()
            fields = {
                "seq": head.seq,
                "ts": utcnow().isoformat(),
                "actor": actor.name,
                "actor_kind": str(actor.kind),
                "role": actor.role,
                "on_behalf_of": actor.on_behalf_of,
                "action": action,
                "permission": permission,
                "decision": decision,
                "outcome": outcome,
                "detail": json.loads(json.dumps(detail or {}, default=str)),
                "reason": reason,
                "prev_hash": head.last_hash,
            }
            digest = _entry_hash(fields)
            s.execute(self._insert, {**fields, "hash": digest})
            s.execute(self._set_hash, {"digest": digest})
            return head.seq

    def entries(
        self, *, action: str | None = None, decision: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        q = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
        if action:
            q = q.where(AuditEntry.action == action)
        if decision:
            q = q.where(AuditEntry.decision == decision)
        with Session(self.engine) as s:
            return [_as_dict(e) for e in s.scalars(q)]

    def verify(self) -> tuple[bool, int | None]:
        """(True, None) when the chain is intact, else (False, seq of the first bad entry)."""
        prev = GENESIS
        with Session(self.engine) as s:
            for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq)):
                d = _as_dict(e)
                if d["prev_hash"] != prev or _entry_hash(d) != d["hash"]:
                    return False, e.seq
                prev = d["hash"]
        return True, None


def _as_dict(e: AuditEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "ts": e.ts,
        "actor": e.actor,
        "actor_kind": e.actor_kind,
        "role": e.role,
        "on_behalf_of": e.on_behalf_of,
        "action": e.action,
        "permission": e.permission,
        "decision": e.decision,
        "outcome": e.outcome,
        "detail": e.detail,
        "reason": e.reason,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }
