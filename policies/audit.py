"""Append-only, tamper-evident audit log.

Each entry stores the SHA-256 of its own fields, which include the hash of the entry before
it. A one-row head table (``audit_head``: seq, last_hash) names the newest entry. ``check()``
proves the entries run 1, 2, 3, … without a gap, that every link and every hash holds, and
that the head matches the last entry, so deleting the newest rows is caught as surely as
editing, deleting or reordering older ones. Appends are serialized through the head row (the
``UPDATE`` takes the write lock on SQLite and a row lock on PostgreSQL), so concurrent
writers can never fork the chain.

Which call to use:

- ``append(...)``: a fact that changes nothing else in the state DB: a read, a refusal, a
  result the caller already committed.
- ``append(..., conn=conn)``: a state change in the state DB. Open the transaction with
  ``engine.begin()``, make the change on ``conn`` and append on the same ``conn``: the change
  and its audit row commit or roll back together. The head row stays locked until the
  commit, so keep such transactions short.
- ``intent(...)`` then ``complete(intent_seq, ...)``: a side effect outside the state DB (an
  MLflow alias, a gateway process, a file, an HTTP call) that cannot share our transaction.
  The intent row commits *before* the effect starts; the completion row carries the intent's
  seq in ``detail["intent_seq"]``. An intent without a completion (``AuditCheck.open_intents``)
  marks an effect that may or may not have happened: a rerun must find out and complete it.

What the chain does not prove: whoever can write the database can recompute every hash.
So every committed append also writes its ``seq hash`` to an anchor file outside the state DB
(``anchor_path``; policies/audit_anchor.py), and ``check()`` compares the chain with it too. A
head recorded elsewhere (``agent audit verify`` and every approval decision print it) can be
passed back as well (``check(anchor=(seq, hash))``): a rewritten history then fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Integer,
    String,
    Text,
    bindparam,
    cast,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from core.errors import Conflict, InvalidInput
from core.state import Base, ensure_tables, utcnow
from policies import audit_anchor
from policies.audit_check import ANCHOR_STARTED, GENESIS, INTENT, AuditCheck, Scan, entry_hash
from policies.audit_refs import matches
from policies.rbac import Actor, system_actor

__all__ = ["GENESIS", "INTENT", "AuditCheck", "AuditEntry", "AuditHead", "AuditLog"]

_PAGE = 1000
# entries() filters on detail in Python; it reads at most this many rows per call.
MAX_SCAN = 200_000
# Text that JSON stores verbatim (no escaping), so a SQL LIKE on the stored text can pre-filter.
_VERBATIM = re.compile(r"^[A-Za-z0-9._@/:+ -]{1,256}$")


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
    # True when the responsible person's identity came from a credential, False for a claim
    # (--as). NULL only on rows written before the column existed; those hash without it.
    authenticated: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    action: Mapped[str] = mapped_column(String(128))
    permission: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))  # allowed | denied
    outcome: Mapped[str] = mapped_column(String(64))  # ok | intent | <error code>
    detail: Mapped[dict] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")


def _with_channel(actor: Actor, detail: dict[str, Any] | None) -> dict[str, Any]:
    """An actor reached through a channel (an MCP client) is recorded as such on every row it
    causes: ``detail.via`` is hashed with the row, so the chain proves it too."""
    if not actor.channel:
        return detail or {}
    return {**(detail or {}), "via": actor.channel}


class AuditLog:
    def __init__(self, engine: Engine, anchor_path: Path | None = None) -> None:
        """``anchor_path``: the anchor file outside the state DB (``Services`` passes the
        ``audit_anchor`` setting); None writes no anchor (tests of the chain alone)."""
        self.engine = engine
        ensure_tables(engine, AuditHead, AuditEntry)
        _add_missing_columns(engine)
        head, entry = AuditHead.__table__, AuditEntry.__table__
        self._head, self._entry = head, entry
        _create_head(engine)
        # Built once: constructing SQLAlchemy statements costs more than running them.
        self._bump = (
            update(head)
            .where(head.c.id == 1)
            .values(seq=head.c.seq + 1)
            .returning(head.c.seq, head.c.last_hash)
        )
        self._insert = insert(entry)
        self._set_hash = update(head).where(head.c.id == 1).values(last_hash=bindparam("digest"))
        self.anchor_path = None if anchor_path is None else Path(anchor_path)
        if self.anchor_path is not None:
            audit_anchor.install(engine)
            self._start_anchor()

    def _start_anchor(self) -> None:
        """A log with no anchor yet (a new home, or an old one with entries) starts writing
        one from its current head, recorded by an ``audit.anchor_started`` entry. Once started,
        a lost or emptied file is never replaced silently: ``check()`` reports it."""
        path = self.anchor_path
        assert path is not None
        if audit_anchor.has_lines(path):  # the usual case: one stat
            return
        t = self._entry
        started = select(t.c.seq).where(t.c.action == ANCHOR_STARTED).limit(1)
        with self.engine.connect() as c:
            if c.execute(started).first() is not None:
                return
        with audit_anchor.creating(path) as empty:
            if not empty:
                return  # another process started it meanwhile
            with self.engine.connect() as c:
                before = c.execute(select(self._head.c.seq).where(self._head.c.id == 1)).scalar()
            if before is None:
                return  # headless (tampered): check() reports it, appends refuse
            self.append(
                system_actor("audit-anchor"),
                ANCHOR_STARTED,
                "system",
                decision="allowed",
                outcome="ok",
                detail={"anchor_file": str(path), "entries_before": int(before)},
                reason="the head of every later entry is also written to the anchor file",
            )

    # Writing ----------------------------------------------------------------------------
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
        conn: Connection | None = None,
    ) -> int:
        """Write one entry and return its seq.

        With ``conn`` (a connection inside a transaction opened with ``engine.begin()``) the
        entry is written in that transaction and commits or rolls back with it.
        """
        if conn is None:
            # Core statements on one connection: the ORM session costs more than the writes.
            with self.engine.begin() as own:
                return self._write(
                    own, actor, action, permission, decision, outcome, detail, reason
                )
        if not conn.in_transaction():
            raise InvalidInput(
                "audit append: the connection is not inside a transaction",
                hint="Open it with `with engine.begin() as conn:` and pass that conn.",
            )
        return self._write(conn, actor, action, permission, decision, outcome, detail, reason)

    def intent(
        self,
        actor: Actor,
        action: str,
        permission: str,
        detail: dict[str, Any] | None = None,
        *,
        conn: Connection | None = None,
    ) -> int:
        """Record, before a side effect outside the state DB, that it is about to happen."""
        return self.append(
            actor, action, permission, decision="allowed", outcome=INTENT, detail=detail, conn=conn
        )

    def complete(
        self,
        intent_seq: int,
        actor: Actor,
        action: str,
        permission: str,
        outcome: str,
        detail: dict[str, Any] | None = None,
        *,
        reason: str = "",
        conn: Connection | None = None,
    ) -> int:
        """Record how the side effect announced by ``intent_seq`` ended (``ok`` or an error code)."""
        if outcome == INTENT:
            raise InvalidInput("a completion's outcome cannot be 'intent'")
        return self.append(
            actor,
            action,
            permission,
            decision="allowed",
            outcome=outcome,
            detail={**(detail or {}), "intent_seq": int(intent_seq)},
            reason=reason,
            conn=conn,
        )

    def _write(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        permission: str,
        decision: str,
        outcome: str,
        detail: dict[str, Any] | None,
        reason: str,
    ) -> int:
        head = conn.execute(self._bump).one_or_none()
        if head is None:
            raise Conflict(
                "the audit head row is missing, so no entry can be appended",
                hint="The audit log was tampered with: run `agent audit verify`.",
            )
        fields = {
            "seq": head.seq,
            "ts": utcnow().isoformat(),
            "actor": actor.name,
            "actor_kind": str(actor.kind),
            "role": actor.role,
            "on_behalf_of": actor.on_behalf_of,
            "authenticated": bool(actor.authenticated),
            "action": action,
            "permission": permission,
            "decision": decision,
            "outcome": outcome,
            "detail": json.loads(json.dumps(_with_channel(actor, detail), default=str)),
            "reason": reason,
            "prev_hash": head.last_hash,
        }
        digest = entry_hash(fields)
        conn.execute(self._insert, {**fields, "hash": digest})
        conn.execute(self._set_hash, {"digest": digest})
        if self.anchor_path is not None:
            audit_anchor.stash(conn, self.anchor_path, head.seq, digest)  # written on commit
        return head.seq

    def head(self) -> dict[str, Any] | None:
        """The head row as {seq, hash} (None when it is missing): a value to keep elsewhere
        and pass back later to ``agent audit verify --anchor SEQ:HASH``."""
        h = self._head
        with self.engine.connect() as c:
            row = c.execute(select(h.c.seq, h.c.last_hash).where(h.c.id == 1)).one_or_none()
        return None if row is None else {"seq": row.seq, "hash": row.last_hash}

    def anchor_disowns(self) -> str | None:
        """Why this database is not the one the anchor file recorded (its first or last line
        names an entry this chain lacks or holds with another hash), else None. Cheap: two
        short file reads and two lookups; for callers deciding whether a home is new."""
        if self.anchor_path is None:
            return None
        t = self._entry
        with self.engine.connect() as c:
            for seq, digest in audit_anchor.edge_lines(self.anchor_path):
                got = c.execute(select(t.c.hash).where(t.c.seq == seq)).scalar()
                if got != digest:
                    return (
                        f"the audit anchor file {self.anchor_path} records entry {seq}, which "
                        + ("this state DB does not hold" if got is None else "differs here")
                    )
        return None

    # Reading ----------------------------------------------------------------------------
    def entries(
        self,
        *,
        action: str | None = None,
        decision: str | None = None,
        model: str | None = None,
        version: str | None = None,
        actor: str | None = None,
        after_seq: int | None = None,
        approval_id: str | None = None,
        model_level: bool = False,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Entries newest first, at most ``limit``.

        ``actor`` matches the actor's name or the person it acted for; ``after_seq`` keeps
        entries with a larger seq. ``model``/``version`` match ``detail["model"]``/
        ``detail["version"]`` and the dispatcher's ``detail["args"]`` (``name``/``version``/
        ``to_version``, or ``model_id`` NAME/3 or NAME@alias); ``model_level=True`` also keeps
        entries that name the model with no version or only an alias (registration, rollback).
        ``approval_id`` matches ``detail["approval_id"]`` or the same argument.
        """
        t = self._entry
        q = select(t).order_by(t.c.seq.desc())
        if action:
            q = q.where(t.c.action == action)
        if decision:
            q = q.where(t.c.decision == decision)
        if actor:
            q = q.where(or_(t.c.actor == actor, t.c.on_behalf_of == actor))
        if after_seq is not None:
            q = q.where(t.c.seq > after_seq)
        version = None if version is None else str(version)
        if model is None and version is None and approval_id is None:
            with self.engine.connect() as c:
                return [dict(r) for r in c.execute(q.limit(limit)).mappings()]
        for needle in (approval_id, model, version):
            if needle is not None and _VERBATIM.match(needle):
                q = q.where(cast(t.c.detail, Text).contains(needle, autoescape=True))
                break
        out: list[dict[str, Any]] = []
        scanned, cursor = 0, None
        with self.engine.connect() as c:
            while len(out) < limit and scanned < MAX_SCAN:
                page = q if cursor is None else q.where(t.c.seq < cursor)
                rows = c.execute(page.limit(_PAGE)).mappings().all()
                if not rows:
                    break
                scanned += len(rows)
                cursor = rows[-1]["seq"]
                for r in rows:
                    d = dict(r)
                    if matches(d["detail"], model, version, approval_id, model_level):
                        out.append(d)
        return out[:limit]

    def check(self, *, anchor: tuple[int, str] | None = None) -> AuditCheck:
        """Verify the whole chain, its head row and the anchor file; ``anchor`` is a
        (seq, hash) recorded earlier."""
        h, t = self._head, self._entry
        # Read before the head: a line is written after its row commits, so every line read
        # here names an entry at or below the head read next (concurrent appends included).
        anchored = None if self.anchor_path is None else audit_anchor.read(self.anchor_path)
        with self.engine.connect() as c:
            head = c.execute(select(h.c.seq, h.c.last_hash).where(h.c.id == 1)).one_or_none()
            if head is None:
                return AuditCheck(
                    ok=False,
                    entries=0,
                    head_seq=None,
                    head_hash=None,
                    first_bad_seq=1,
                    problem="the head row (audit_head) is missing: the log cannot prove its end",
                )
            res = Scan(head.seq, head.last_hash, anchor, anchored.hashes if anchored else None)
            stream = c.execute(
                select(t)
                .where(t.c.seq <= head.seq)
                .order_by(t.c.seq)
                .execution_options(yield_per=_PAGE)
            )
            try:
                for row in stream.mappings():
                    if not res.step(dict(row)):
                        break
            finally:
                stream.close()
            if res.bad is None:
                res.finish()
            if res.bad is None:
                # Rows past the head: read the newest seq first, then the head again, so a
                # concurrent append (row and head commit together) is never taken for one.
                top = c.execute(select(func.max(t.c.seq))).scalar()
                now = c.execute(select(h.c.seq).where(h.c.id == 1)).scalar()
                if top is not None and now is not None and top > now:
                    res.bad = (
                        now + 1,
                        f"entries up to seq {top} lie past the head (seq {now}): rows were "
                        "inserted behind the log's back, or the head was moved back",
                    )
        if res.bad is None and anchored is not None:
            res.bad = audit_anchor.problem(anchored, res)
        ok = res.bad is None
        return AuditCheck(
            ok=ok,
            entries=res.count,
            head_seq=head.seq,
            head_hash=head.last_hash,
            first_bad_seq=None if ok else res.bad[0],
            problem="" if ok else res.bad[1],
            open_intents=sorted(res.open_intents),
            anchor_file=None if anchored is None else str(anchored.path),
            anchor_lines=0 if anchored is None else anchored.lines,
            anchor_newest_seq=None if anchored is None else anchored.newest,
            anchor_started_seq=res.started_seq,
            compared=audit_anchor.compared(res, head.seq, anchored, ok),
        )

    def verify(self) -> tuple[bool, int | None]:
        """(True, None) when the chain and its head are intact, else (False, first bad seq)."""
        result = self.check()
        return result.ok, result.first_bad_seq


# Schema ----------------------------------------------------------------------------------
def _add_missing_columns(engine: Engine) -> None:
    """Homes created before ``authenticated`` existed get the column (NULL on old rows)."""
    if "authenticated" in {c["name"] for c in inspect(engine).get_columns("audit_log")}:
        return
    try:
        with engine.begin() as c:
            c.execute(text("ALTER TABLE audit_log ADD COLUMN authenticated BOOLEAN"))
    except DBAPIError:
        # Another process added it at the same moment.
        if "authenticated" not in {c["name"] for c in inspect(engine).get_columns("audit_log")}:
            raise


def _create_head(engine: Engine) -> None:
    """Create the head of an empty log. A log with entries but no head stays headless: a
    deleted head is tampering, which ``check()`` reports and appends refuse."""
    head, entry = AuditHead.__table__, AuditEntry.__table__
    try:
        with engine.begin() as c:
            if c.execute(select(head.c.id).where(head.c.id == 1)).first() is not None:
                return
            if c.execute(select(entry.c.seq).limit(1)).first() is not None:
                return
            c.execute(insert(head).values(id=1, seq=0, last_hash=GENESIS))
    except IntegrityError:
        pass  # created concurrently by another process
