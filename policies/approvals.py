"""Approval requests for production promotions and the rules for deciding them.

A decision is valid only if the decider is a listed human approver, is not the requester,
the request is pending and unexpired, and the evidence hash the decider saw is the one on
the request. Deciding consumes the request with a conditional UPDATE, so a replay or a
concurrent second decision is refused.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import JSON, DateTime, String, Text, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.state import Base, ensure_tables, utcnow
from policies.audit import AuditLog
from policies.rbac import APPROVE_PERMISSION, Actor, ActorKind, Policy


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalRow(Base):
    __tablename__ = "approvals"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), default="promote_to_production")
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_via: Mapped[str] = mapped_column(String(128))
    evidence: Mapped[dict] = mapped_column(JSON)
    evidence_hash: Mapped[str] = mapped_column(String(64))
    thread_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=ApprovalStatus.PENDING)
    created_at = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")


class ApprovalRequest(BaseModel):
    id: str
    model_name: str
    version: str
    action: str
    requested_by: str
    requested_via: str
    evidence: dict[str, Any]
    evidence_hash: str
    thread_id: str | None
    status: ApprovalStatus
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str


def evidence_hash(evidence: dict[str, Any]) -> str:
    canon = json.dumps(evidence, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; every value we write is UTC.
    from datetime import UTC

    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


class ApprovalService:
    def __init__(
        self,
        engine: Engine,
        policy: Policy,
        audit: AuditLog,
        *,
        ttl_hours: float = 24.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.audit = audit
        self.ttl = timedelta(hours=ttl_hours)
        self.clock = clock
        ensure_tables(engine, ApprovalRow)

    def create(
        self,
        model_name: str,
        version: str,
        evidence: dict[str, Any],
        requester: Actor,
        *,
        thread_id: str | None = None,
        ttl: timedelta | None = None,
    ) -> ApprovalRequest:
        human = requester.responsible_human
        if not human or human not in self.policy.people:
            raise PermissionDenied(
                "a promotion must be requested by or on behalf of a listed person"
            )
        now = self.clock()
        row = ApprovalRow(
            id=f"apr-{secrets.token_hex(4)}",
            model_name=model_name,
            version=str(version),
            requested_by=human,
            requested_via=requester.name,
            evidence=json.loads(json.dumps(evidence, default=str)),
            evidence_hash=evidence_hash(evidence),
            thread_id=thread_id,
            status=ApprovalStatus.PENDING,
            created_at=now,
            expires_at=now + (ttl if ttl is not None else self.ttl),
            reason="",
        )
        approval_id = row.id
        with Session(self.engine) as s, s.begin():
            s.add(row)
        return self.get(approval_id)

    def get(self, approval_id: str) -> ApprovalRequest:
        with Session(self.engine) as s:
            row = s.get(ApprovalRow, approval_id)
            if row is None:
                raise NotFound(
                    f"no approval request {approval_id!r}", hint="See `agent approvals list`."
                )
            return _to_model(row)

    def list(self, status: ApprovalStatus | None = None) -> list[ApprovalRequest]:
        q = select(ApprovalRow).order_by(ApprovalRow.created_at.desc())
        if status is not None:
            q = q.where(ApprovalRow.status == status)
        with Session(self.engine) as s:
            return [_to_model(r) for r in s.scalars(q)]

    def decide(
        self,
        approval_id: str,
        decider: Actor,
        *,
        approve: bool,
        seen_evidence_hash: str,
        reason: str = "",
    ) -> ApprovalRequest:
        """Record a decision after every rule holds; audit refusals as well as decisions."""
        action = "approvals.approve" if approve else "approvals.reject"
        try:
            req = self._check(approval_id, decider, seen_evidence_hash)
            new_status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
            with Session(self.engine) as s, s.begin():
                res = s.execute(
                    update(ApprovalRow)
                    .where(
                        ApprovalRow.id == approval_id, ApprovalRow.status == ApprovalStatus.PENDING
                    )
                    .values(
                        status=new_status,
                        decided_by=decider.name,
                        decided_at=self.clock(),
                        reason=reason,
                    )
                )
                if res.rowcount != 1:
                    raise Conflict(f"approval {approval_id} was decided by someone else just now")
        except (PermissionDenied, Conflict, InvalidInput, NotFound) as exc:
            self.audit.append(
                decider,
                action,
                APPROVE_PERMISSION,
                decision="denied",
                outcome=exc.code,
                detail={"approval_id": approval_id},
                reason=exc.message,
            )
            raise
        self.audit.append(
            decider,
            action,
            APPROVE_PERMISSION,
            decision="allowed",
            outcome="ok",
            detail={
                "approval_id": approval_id,
                "model": req.model_name,
                "version": req.version,
                "evidence_hash": req.evidence_hash,
            },
            reason=reason,
        )
        return self.get(approval_id)

    def _check(self, approval_id: str, decider: Actor, seen_evidence_hash: str) -> ApprovalRequest:
        req = self.get(approval_id)
        if decider.kind != ActorKind.HUMAN:
            raise PermissionDenied(f"{decider.describe()} cannot decide approvals: only people can")
        verdict = self.policy.authorize(decider, APPROVE_PERMISSION)
        if not verdict.allowed:
            raise PermissionDenied(
                f"{decider.name} may not decide approvals: {verdict.reason}",
                hint=f"Approvers: {', '.join(self.policy.approvers())}.",
            )
        if decider.name == req.requested_by:
            raise PermissionDenied(
                f"{decider.name} requested {approval_id} and cannot decide it",
                hint="Ask another listed approver.",
            )
        if req.status != ApprovalStatus.PENDING:
            raise Conflict(
                f"{approval_id} is already {req.status.value}"
                + (f" by {req.decided_by}" if req.decided_by else ""),
                hint="A request is decided once; open a new promotion request instead.",
            )
        if self.clock() >= req.expires_at:
            with Session(self.engine) as s, s.begin():
                s.execute(
                    update(ApprovalRow)
                    .where(
                        ApprovalRow.id == approval_id, ApprovalRow.status == ApprovalStatus.PENDING
                    )
                    .values(status=ApprovalStatus.EXPIRED)
                )
            raise Conflict(
                f"{approval_id} expired at {req.expires_at.isoformat()}",
                hint="Request the promotion again to refresh the evidence.",
            )
        if evidence_hash(req.evidence) != req.evidence_hash:
            raise Conflict(f"the stored evidence of {approval_id} no longer matches its hash")
        if seen_evidence_hash != req.evidence_hash:
            raise InvalidInput(
                f"the evidence you saw ({seen_evidence_hash[:12]}…) is not the evidence on "
                f"{approval_id} ({req.evidence_hash[:12]}…)",
                hint=f"Review it again with `agent approvals show {approval_id}`.",
            )
        return req


def _to_model(row: ApprovalRow) -> ApprovalRequest:
    return ApprovalRequest(
        id=row.id,
        model_name=row.model_name,
        version=row.version,
        action=row.action,
        requested_by=row.requested_by,
        requested_via=row.requested_via,
        evidence=row.evidence,
        evidence_hash=row.evidence_hash,
        thread_id=row.thread_id,
        status=ApprovalStatus(row.status),
        created_at=_aware(row.created_at),
        expires_at=_aware(row.expires_at),
        decided_by=row.decided_by,
        decided_at=_aware(row.decided_at),
        reason=row.reason or "",
    )
