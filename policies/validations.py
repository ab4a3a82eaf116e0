"""Validation verdicts as facts in the state DB, tied to what was validated.

A record names the artifact digest, the dataset digest and the evaluation run the verdict was
computed from, and who computed it (a person, an agent for a person, or the promotion
workflow's automated QA). MLflow tags mirror the latest verdict for the UI; gates read only
these rows, never a tag a caller could have written.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, Boolean, DateTime, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.errors import NotFound
from core.state import Base, aware, ensure_tables, utcnow
from policies.rbac import Actor, ActorKind

AUTOMATED = "automated QA re-evaluation"
HUMAN = "human QATester re-evaluation"
AGENT = "agent re-evaluation"


class ValidationRow(Base):
    __tablename__ = "validations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[str] = mapped_column(String(32))
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    dataset_path: Mapped[str] = mapped_column(Text, default="")
    evaluation_id: Mapped[str] = mapped_column(String(64), default="")
    verdict: Mapped[str] = mapped_column(String(16))  # PASSED | FAILED
    reasons: Mapped[list] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON)
    method: Mapped[str] = mapped_column(String(64))
    validator: Mapped[str] = mapped_column(String(128))
    validator_kind: Mapped[str] = mapped_column(String(16))
    on_behalf_of: Mapped[str | None] = mapped_column(String(128), nullable=True)
    authenticated: Mapped[bool] = mapped_column(Boolean, default=False)
    approval_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at = mapped_column(DateTime(timezone=True), default=utcnow)


class ValidationRecord(BaseModel):
    id: str
    model_name: str
    version: str
    artifact_sha256: str
    dataset_sha256: str
    dataset_path: str
    evaluation_id: str
    verdict: str
    reasons: list[str]
    metrics: dict[str, float]
    method: str
    validator: str
    validator_kind: str
    on_behalf_of: str | None
    authenticated: bool
    approval_id: str | None
    created_at: datetime

    @property
    def human(self) -> bool:
        return self.validator_kind == ActorKind.HUMAN

    def describe(self) -> str:
        who = (
            self.validator if not self.on_behalf_of else f"{self.validator} for {self.on_behalf_of}"
        )
        return (
            f"{self.verdict} by {who} ({self.method}, re-evaluated on dataset sha256 "
            f"{self.dataset_sha256[:12]}…, evaluation {self.evaluation_id or 'not logged'})"
        )


def method_for(actor: Actor) -> str:
    return {ActorKind.HUMAN: HUMAN, ActorKind.WORKFLOW: AUTOMATED}.get(actor.kind, AGENT)


class ValidationStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, ValidationRow)

    def record(
        self,
        actor: Actor,
        *,
        model_name: str,
        version: str,
        artifact_sha256: str,
        dataset_sha256: str,
        dataset_path: str,
        evaluation_id: str | None,
        verdict: str,
        reasons: list[str],
        metrics: dict[str, float],
        approval_id: str | None = None,
        session: Session | None = None,
    ) -> ValidationRecord:
        row = ValidationRow(
            id=f"val-{secrets.token_hex(4)}",
            model_name=model_name,
            version=str(version),
            artifact_sha256=artifact_sha256,
            dataset_sha256=dataset_sha256,
            dataset_path=dataset_path,
            evaluation_id=evaluation_id or "",
            verdict=verdict,
            reasons=list(reasons),
            metrics={k: float(v) for k, v in metrics.items()},
            method=method_for(actor),
            validator=actor.name,
            validator_kind=str(actor.kind),
            on_behalf_of=actor.on_behalf_of,
            authenticated=actor.authenticated,
            approval_id=approval_id,
            created_at=utcnow(),
        )
        if session is not None:
            session.add(row)
            session.flush()
            return _to_model(row)
        with Session(self.engine) as s, s.begin():
            s.add(row)
            s.flush()
            return _to_model(row)

    def get(self, validation_id: str) -> ValidationRecord:
        with Session(self.engine) as s:
            row = s.get(ValidationRow, validation_id)
            if row is None:
                raise NotFound(f"no validation record {validation_id!r}")
            return _to_model(row)

    def latest(
        self,
        model_name: str,
        version: str,
        *,
        artifact_sha256: str | None = None,
        dataset_sha256: str | None = None,
        human_only: bool = False,
        approval_id: str | None = None,
    ) -> ValidationRecord | None:
        """The newest record matching every given fact (artifact, dataset, request)."""
        q = select(ValidationRow).where(
            ValidationRow.model_name == model_name, ValidationRow.version == str(version)
        )
        if artifact_sha256 is not None:
            q = q.where(ValidationRow.artifact_sha256 == artifact_sha256)
        if dataset_sha256 is not None:
            q = q.where(ValidationRow.dataset_sha256 == dataset_sha256)
        if human_only:
            q = q.where(ValidationRow.validator_kind == str(ActorKind.HUMAN))
        if approval_id is not None:
            q = q.where(ValidationRow.approval_id == approval_id)
        q = q.order_by(ValidationRow.created_at.desc()).limit(1)
        with Session(self.engine) as s:
            row = s.scalar(q)
            return _to_model(row) if row is not None else None

    def for_version(self, model_name: str, version: str) -> list[ValidationRecord]:
        q = (
            select(ValidationRow)
            .where(ValidationRow.model_name == model_name, ValidationRow.version == str(version))
            .order_by(ValidationRow.created_at)
        )
        with Session(self.engine) as s:
            return [_to_model(r) for r in s.scalars(q)]


def _to_model(row: ValidationRow) -> ValidationRecord:
    data: dict[str, Any] = {c.name: getattr(row, c.name) for c in ValidationRow.__table__.columns}
    data["created_at"] = aware(row.created_at)
    return ValidationRecord(**data)
