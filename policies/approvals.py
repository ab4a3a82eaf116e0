"""Approval requests for production changes and the rules for deciding and executing them.

A decision is valid only if the decider is a listed human approver, is not the requester,
the request is pending and unexpired, any human validation the policy requires is attached,
and the evidence hash the decider saw is the one on the request. Deciding consumes the request
with a conditional UPDATE in the same transaction as its audit row, so a replay or a
concurrent second decision is refused. An approval approves one plan for one artifact digest;
the executor marks it ``executed`` once, in the transaction that changes the routes, and any
other live approval of the same model is ``superseded`` then.
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
from sqlalchemy import JSON, Boolean, DateTime, String, Text, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from core.state import Base, aware, ensure_tables, utcnow
from policies.audit import AuditLog
from policies.rbac import APPROVE_PERMISSION, Actor, ActorKind, Policy

PROMOTE = "promote_to_production"
ROLLBACK = "rollback_production"
ACTIONS = (PROMOTE, ROLLBACK)


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTED = "executed"
    SUPERSEDED = "superseded"


class ApprovalRow(Base):
    __tablename__ = "approvals"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), default=PROMOTE)
    plan: Mapped[dict] = mapped_column(JSON, default=dict)
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_via: Mapped[str] = mapped_column(String(128))
    requester_authenticated: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence: Mapped[dict] = mapped_column(JSON)
    evidence_hash: Mapped[str] = mapped_column(String(64))
    policy_digest: Mapped[str] = mapped_column(String(64), default="")
    thread_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=ApprovalStatus.PENDING)
    created_at = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decider_authenticated: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_at = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    executed_at = mapped_column(DateTime(timezone=True), nullable=True)
    executed_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    execution: Mapped[dict] = mapped_column(JSON, default=dict)


class ApprovalRequest(BaseModel):
    id: str
    model_name: str
    version: str
    action: str
    plan: dict[str, Any]
    requested_by: str
    requested_via: str
    requester_authenticated: bool
    evidence: dict[str, Any]
    evidence_hash: str
    policy_digest: str
    thread_id: str | None
    status: ApprovalStatus
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decider_authenticated: bool
    decided_at: datetime | None
    reason: str
    executed_at: datetime | None
    executed_by: str | None
    execution: dict[str, Any]

    @property
    def is_rollback(self) -> bool:
        return self.action == ROLLBACK


def evidence_hash(evidence: dict[str, Any]) -> str:
    canon = json.dumps(evidence, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str))


class ApprovalService:
    def __init__(
        self,
        engine: Engine,
        policy: Policy,
        audit: AuditLog,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.audit = audit
        self.clock = clock
        ensure_tables(engine, ApprovalRow)

    @property
    def ttl(self) -> timedelta:
        return timedelta(hours=self.policy.approvals.ttl_hours)

    # Requests -------------------------------------------------------------------------
    def create(
        self,
        model_name: str,
        version: str,
        evidence: dict[str, Any],
        requester: Actor,
        *,
        action: str = PROMOTE,
        plan: dict[str, Any] | None = None,
        policy_digest: str = "",
        thread_id: str | None = None,
        ttl: timedelta | None = None,
        via: str | None = None,
    ) -> ApprovalRequest:
        """A pending request; its lifetime is the policy's for the action unless ``ttl``."""
        if action not in ACTIONS:
            raise InvalidInput(f"unknown approval action {action!r}")
        human = requester.responsible_human
        if not human or human not in self.policy.people:
            raise PermissionDenied(
                "a production change must be requested by or on behalf of a listed person"
            )
        now = self.clock()
        evidence = _jsonable({**evidence, "plan": plan or {}, "policy_digest": policy_digest})
        row = ApprovalRow(
            id=f"apr-{secrets.token_hex(4)}",
            model_name=model_name,
            version=str(version),
            action=action,
            plan=_jsonable(plan or {}),
            requested_by=human,
            requested_via=(via or requester.describe())[:128],
            requester_authenticated=requester.authenticated,
            evidence=evidence,
            evidence_hash=evidence_hash(evidence),
            policy_digest=policy_digest,
            thread_id=thread_id,
            status=ApprovalStatus.PENDING,
            created_at=now,
            expires_at=now + (ttl if ttl is not None else self._ttl_for_action(action)),
            reason="",
            execution={},
        )
        approval_id = row.id
        with Session(self.engine) as s, s.begin():
            s.add(row)
            s.flush()
            self.audit.append(
                requester,
                "approvals.request",
                "promotion:request" if action == PROMOTE else "rollback:request",
                decision="allowed",
                outcome="ok",
                detail={
                    "approval_id": approval_id,
                    "action": action,
                    "model": model_name,
                    "version": str(version),
                    "plan": plan or {},
                    "evidence_hash": row.evidence_hash,
                    "policy_digest": policy_digest,
                },
                conn=s.connection(),
            )
        return self.get(approval_id)

    def get(self, approval_id: str) -> ApprovalRequest:
        with Session(self.engine) as s:
            row = s.get(ApprovalRow, approval_id)
            if row is None:
                raise NotFound(
                    f"no approval request {approval_id!r}", hint="See `agent approvals list`."
                )
            return _to_model(row)

    def list(
        self, status: ApprovalStatus | None = None, *, model_name: str | None = None
    ) -> list[ApprovalRequest]:
        q = select(ApprovalRow).order_by(ApprovalRow.created_at.desc())
        if status is not None:
            q = q.where(ApprovalRow.status == status)
        if model_name is not None:
            q = q.where(ApprovalRow.model_name == model_name)
        with Session(self.engine) as s:
            return [_to_model(r) for r in s.scalars(q)]

    def attach_human_validation(
        self, approval_id: str, validator: Actor, validation: dict[str, Any]
    ) -> ApprovalRequest:
        """Add a human QATester's verdict to a pending request's evidence (new hash)."""
        req = self.get(approval_id)
        if validator.kind != ActorKind.HUMAN:
            raise PermissionDenied(f"{validator.describe()} is not a person")
        if validator.name == req.requested_by:
            raise PermissionDenied(
                f"{validator.name} requested {approval_id} and cannot validate it",
                hint="Ask another QATester.",
            )
        self.policy.require(validator, "validation:record")
        if req.status != ApprovalStatus.PENDING:
            raise Conflict(
                f"{approval_id} is {req.status.value}; only pending requests take a validation"
            )
        evidence = _jsonable({**req.evidence, "human_validation": validation})
        digest = evidence_hash(evidence)
        with Session(self.engine) as s, s.begin():
            res = s.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.status == ApprovalStatus.PENDING)
                .values(evidence=evidence, evidence_hash=digest)
            )
            if res.rowcount != 1:
                raise Conflict(f"{approval_id} changed while it was being validated")
            self.audit.append(
                validator,
                "approvals.validate",
                "validation:record",
                decision="allowed",
                outcome="ok",
                detail={
                    "approval_id": approval_id,
                    "model": req.model_name,
                    "version": req.version,
                    "verdict": validation.get("verdict"),
                    "validation_id": validation.get("id"),
                    "evidence_hash": digest,
                },
                conn=s.connection(),
            )
        return self.get(approval_id)

    # Decisions ------------------------------------------------------------------------
    def decide(
        self,
        approval_id: str,
        decider: Actor,
        *,
        approve: bool,
        seen_evidence_hash: str,
        reason: str = "",
        can_run: Callable[[ApprovalRequest], None] | None = None,
    ) -> ApprovalRequest:
        """Record a decision after every rule holds; audit refusals as well as decisions.
        ``can_run`` (approvals only) raises Conflict when the request's plan cannot run now:
        the approval is refused and the request stays pending, not consumed."""
        action = "approvals.approve" if approve else "approvals.reject"
        try:
            req = self._check(approval_id, decider, seen_evidence_hash, approve=approve)
            if approve and can_run is not None:
                can_run(req)
            now = self.clock()
            new_status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
            with Session(self.engine) as s, s.begin():
                res = s.execute(
                    update(ApprovalRow)
                    .where(
                        ApprovalRow.id == approval_id,
                        ApprovalRow.status == ApprovalStatus.PENDING,
                        ApprovalRow.evidence_hash == seen_evidence_hash,
                    )
                    .values(
                        status=new_status,
                        decided_by=decider.name,
                        decider_authenticated=decider.authenticated,
                        decided_at=now,
                        reason=reason,
                        # An approval must be executed within one lifetime of its decision.
                        expires_at=now + self._ttl_for(req) if approve else req.expires_at,
                    )
                )
                if res.rowcount != 1:
                    raise Conflict(f"approval {approval_id} was decided or changed just now")
                self.audit.append(
                    decider,
                    action,
                    APPROVE_PERMISSION,
                    decision="allowed",
                    outcome="ok",
                    detail={
                        "approval_id": approval_id,
                        "action": req.action,
                        "model": req.model_name,
                        "version": req.version,
                        "plan": req.plan,
                        "evidence_hash": req.evidence_hash,
                        "policy_digest": req.policy_digest,
                        "identity": decider.identity,
                    },
                    reason=reason,
                    conn=s.connection(),
                )
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
        return self.get(approval_id)

    def _ttl_for(self, req: ApprovalRequest) -> timedelta:
        return self._ttl_for_action(req.action)

    def _ttl_for_action(self, action: str) -> timedelta:
        rules = self.policy.approvals
        return timedelta(hours=rules.rollback_ttl_hours if action == ROLLBACK else rules.ttl_hours)

    def refusal(
        self,
        req: ApprovalRequest,
        decider: Actor,
        *,
        approve: bool,
        seen_evidence_hash: str | None = None,
    ) -> PermissionDenied | Conflict | InvalidInput | None:
        """Why ``decider`` may not make this decision now, or None when every rule holds.
        Reads only: the console asks it before drawing a decision control, and ``decide``
        raises what it returns, so both apply the one rule. ``seen_evidence_hash`` None
        means "the evidence as it is now" (a page about to show it)."""
        if decider.kind != ActorKind.HUMAN:
            return PermissionDenied(
                f"{decider.describe()} cannot decide approvals: only people can"
            )
        verdict = self.policy.authorize(decider, APPROVE_PERMISSION)
        if not verdict.allowed:
            return PermissionDenied(
                f"{decider.name} may not decide approvals: {verdict.reason}",
                hint=f"Approvers: {', '.join(self.policy.approvers())}.",
            )
        if decider.name == req.requested_by:
            return PermissionDenied(
                f"{decider.name} requested {req.id} and cannot decide it",
                hint="Ask another listed approver.",
            )
        if req.status != ApprovalStatus.PENDING:
            return Conflict(
                f"{req.id} is already {req.status.value}"
                + (f" by {req.decided_by}" if req.decided_by else ""),
                hint="A request is decided once; open a new request instead.",
            )
        if self.clock() >= req.expires_at:
            return Conflict(
                f"{req.id} expired at {req.expires_at.isoformat()}",
                hint="Request it again to refresh the evidence.",
            )
        if evidence_hash(req.evidence) != req.evidence_hash:
            return Conflict(f"the stored evidence of {req.id} no longer matches its hash")
        seen = req.evidence_hash if seen_evidence_hash is None else seen_evidence_hash
        if seen != req.evidence_hash:
            return InvalidInput(
                f"the evidence you saw ({seen[:12]}…) is not the evidence on "
                f"{req.id} ({req.evidence_hash[:12]}…)",
                hint=f"Review it again with `agent approvals show {req.id}`.",
            )
        if approve and not req.is_rollback and self.policy.validation.require_human:
            human = req.evidence.get("human_validation") or {}
            if human.get("verdict") != "PASSED":
                return Conflict(
                    f"{req.id} waits for a human QATester's PASSED validation "
                    f"(policy validation.require_human; now: {human.get('verdict') or 'none'})",
                    hint=f"A QATester other than {req.requested_by} runs "
                    f"`agent approvals validate {req.id} --as NAME`.",
                )
        return None

    def _check(
        self, approval_id: str, decider: Actor, seen_evidence_hash: str, *, approve: bool
    ) -> ApprovalRequest:
        req = self.get(approval_id)
        exc = self.refusal(req, decider, approve=approve, seen_evidence_hash=seen_evidence_hash)
        if exc is not None:
            if req.status == ApprovalStatus.PENDING and self.clock() >= req.expires_at:
                self._expire(approval_id, ApprovalStatus.PENDING)
            raise exc
        return req

    # Execution ------------------------------------------------------------------------
    def check_executable(self, approval_id: str) -> ApprovalRequest:
        """The request, if it is approved, unexpired and not yet executed."""
        req = self.get(approval_id)
        if req.status == ApprovalStatus.APPROVED and self.clock() >= req.expires_at:
            self._expire(approval_id, ApprovalStatus.APPROVED)
            raise Conflict(
                f"{approval_id} was approved but not executed before {req.expires_at.isoformat()}",
                hint="Request the change again; an approval is executed within its lifetime.",
            )
        if req.status != ApprovalStatus.APPROVED:
            raise Conflict(
                f"{approval_id} is {req.status.value}, not approved and awaiting execution",
                hint="See `agent approvals show " + approval_id + "`.",
            )
        return req

    def mark_executed(
        self, s: Session, approval_id: str, executor: Actor, execution: dict[str, Any]
    ) -> None:
        """Inside the caller's transaction (the one that changes the routes)."""
        now = self.clock()
        res = s.execute(
            update(ApprovalRow)
            .where(
                ApprovalRow.id == approval_id,
                ApprovalRow.status == ApprovalStatus.APPROVED,
                ApprovalRow.expires_at > now,
            )
            .values(
                status=ApprovalStatus.EXECUTED,
                executed_at=now,
                executed_by=executor.describe(),
                execution=_jsonable(execution),
            )
        )
        if res.rowcount != 1:
            raise Conflict(f"{approval_id} was executed, superseded or expired just now")

    def supersede(
        self, s: Session, model_name: str, *, keep: tuple[str, ...], cause: str
    ) -> list[str]:
        """Mark every other approved or executed request of the model superseded."""
        ids = list(
            s.scalars(
                select(ApprovalRow.id).where(
                    ApprovalRow.model_name == model_name,
                    ApprovalRow.status.in_([ApprovalStatus.APPROVED, ApprovalStatus.EXECUTED]),
                    ApprovalRow.id.not_in(keep),
                )
            )
        )
        if ids:
            s.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id.in_(ids))
                .values(
                    status=ApprovalStatus.SUPERSEDED,
                    reason=ApprovalRow.reason + f" [superseded: {cause}]",
                )
            )
        return ids

    def executed_for(self, model_name: str, version: str) -> list[ApprovalRequest]:
        """Promotions of this version that were executed at some point (newest first)."""
        q = (
            select(ApprovalRow)
            .where(
                ApprovalRow.model_name == model_name,
                ApprovalRow.version == str(version),
                ApprovalRow.action == PROMOTE,
                ApprovalRow.executed_at.is_not(None),
            )
            .order_by(ApprovalRow.executed_at.desc())
        )
        with Session(self.engine) as s:
            return [_to_model(r) for r in s.scalars(q)]

    def _expire(self, approval_id: str, from_status: ApprovalStatus) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.status == from_status)
                .values(status=ApprovalStatus.EXPIRED)
            )


def _to_model(row: ApprovalRow) -> ApprovalRequest:
    data = {c.name: getattr(row, c.name) for c in ApprovalRow.__table__.columns}
    for k in ("created_at", "expires_at", "decided_at", "executed_at"):
        data[k] = aware(data[k])
    data["status"] = ApprovalStatus(row.status)
    data["reason"] = row.reason or ""
    data["plan"] = row.plan or {}
    data["execution"] = row.execution or {}
    data["policy_digest"] = row.policy_digest or ""
    return ApprovalRequest(**data)
