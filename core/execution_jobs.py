"""The record of an approval's execution: one row per approval id (queued -> running ->
done | failed) with the steps it went through, so a console, a CLI or another replica can
follow it, and a restart can find the runs a crash interrupted.

The row is a progress record, never an authority: what production serves is the routing
table and the approval's own state, and a resumed job re-runs the idempotent executor.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.state import Base, aware, ensure_tables, utcnow

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
UNFINISHED = (QUEUED, RUNNING)
MAX_STEPS = 200  # a job is a handful of steps; a runaway reporter cannot grow the row forever


def process_owner() -> str:
    """Who runs a job: this host and process (a row owned by a dead process is an orphan)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class ExecutionJobRow(Base):
    __tablename__ = "execution_jobs"
    approval_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    steps: Mapped[list] = mapped_column(JSON, default=list)
    outcome: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    decided_by: Mapped[str] = mapped_column(String(128), default="")
    owner: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


def _view(row: ExecutionJobRow) -> dict[str, Any]:
    def iso(dt: datetime | None) -> str | None:
        return aware(dt).isoformat() if dt is not None else None

    return {
        "approval_id": row.approval_id,
        "state": row.state,
        "steps": list(row.steps or []),
        "outcome": row.outcome,
        "error": row.error,
        "decided_by": row.decided_by,
        "owner": row.owner,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at),
    }


class ExecutionJobs:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, ExecutionJobRow)

    def queue(self, approval_id: str, decided_by: str) -> dict[str, Any]:
        """The job of a decision just recorded (an existing row is kept: a decision runs once)."""
        with Session(self.engine) as s, s.begin():
            row = s.get(ExecutionJobRow, approval_id)
            if row is None:
                now = utcnow()
                row = ExecutionJobRow(
                    approval_id=approval_id,
                    state=QUEUED,
                    steps=[{"at": now.isoformat(), "step": "decision recorded", "detail": {}}],
                    decided_by=decided_by,
                    created_at=now,
                    updated_at=now,
                )
                s.add(row)
                s.flush()
            return _view(row)

    def claim(self, approval_id: str, owner: str, *, resume: bool = False) -> bool:
        """Take the job to run it now: a queued one, or with ``resume`` also one left
        running by a process that no longer runs it (the caller decided it is orphaned)."""
        states = UNFINISHED if resume else (QUEUED,)
        with Session(self.engine) as s, s.begin():
            now = utcnow()
            done = s.execute(
                update(ExecutionJobRow)
                .where(
                    ExecutionJobRow.approval_id == approval_id,
                    ExecutionJobRow.state.in_(states),
                )
                .values(state=RUNNING, owner=owner, started_at=now, updated_at=now)
            )
            return done.rowcount == 1

    def step(self, approval_id: str, step: str, detail: dict[str, Any] | None = None) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(ExecutionJobRow, approval_id, with_for_update=True)
            if row is None:
                return
            now = utcnow()
            steps = list(row.steps or [])[-(MAX_STEPS - 1) :]
            steps.append({"at": now.isoformat(), "step": step, "detail": detail or {}})
            row.steps, row.updated_at = steps, now

    def finish(self, approval_id: str, outcome: dict[str, Any]) -> None:
        self._end(approval_id, DONE, outcome=outcome)

    def fail(self, approval_id: str, error: dict[str, Any]) -> None:
        self._end(approval_id, FAILED, error=error)

    def _end(self, approval_id: str, state: str, **values: Any) -> None:
        now = utcnow()
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(ExecutionJobRow)
                .where(ExecutionJobRow.approval_id == approval_id)
                .values(state=state, finished_at=now, updated_at=now, **values)
            )

    def get(self, approval_id: str) -> dict[str, Any] | None:
        with Session(self.engine) as s:
            row = s.get(ExecutionJobRow, approval_id)
            return None if row is None else _view(row)

    def unfinished(self, *, quiet_for: float = 0.0) -> list[dict[str, Any]]:
        """Jobs not done or failed whose last step is older than ``quiet_for`` seconds."""
        cutoff = utcnow() - timedelta(seconds=quiet_for)
        with Session(self.engine) as s:
            rows = s.scalars(
                select(ExecutionJobRow).where(ExecutionJobRow.state.in_(UNFINISHED))
            ).all()
            return [_view(r) for r in rows if aware(r.updated_at) <= cutoff]
