"""Approval lifetime and execution rules at the service level (SQLite and, marked pg,
PostgreSQL): executed once, superseded, expiry of approved-but-unexecuted requests, human
validation before a decision, decision and audit row in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from core.errors import Conflict, PermissionDenied
from core.state import get_engine
from policies.approvals import ROLLBACK, ApprovalService, ApprovalStatus
from policies.audit import AuditLog
from policies.rbac import Policy

EVIDENCE = {"candidate": {"name": "m", "version": "2", "artifact_sha256": "ab" * 32}}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _policy(**changes) -> Policy:
    from pathlib import Path

    import yaml

    data = yaml.safe_load((Path(__file__).parent.parent / "policies" / "roles.yaml").read_text())
    for key, value in changes.items():
        data[key] = value
    return Policy.from_mapping(data, "test")


@pytest.fixture
def world(state_db_url: str):
    clock = Clock()
    engine = get_engine(state_db_url)
    audit = AuditLog(engine)
    return engine, audit, clock


def _service(world, policy: Policy | None = None) -> ApprovalService:
    engine, audit, clock = world
    return ApprovalService(engine, policy or _policy(), audit, clock=clock)


def _approved(service: ApprovalService, **kw):
    dana = service.policy.human("dana")
    req = service.create("m", "2", EVIDENCE, dana, **kw)
    return service.decide(
        req.id, service.policy.human("alice"), approve=True, seen_evidence_hash=req.evidence_hash
    )


def test_request_records_plan_policy_digest_and_identity(world):
    service = _service(world)
    dana = service.policy.human("dana", authenticated=True)
    req = service.create(
        "m",
        "2",
        EVIDENCE,
        dana,
        plan={"strategy": "canary", "steps": [10, 100]},
        policy_digest="d" * 64,
    )
    assert req.plan["strategy"] == "canary" and req.evidence["plan"] == req.plan
    assert req.evidence["policy_digest"] == "d" * 64 and req.requester_authenticated
    audit = world[1].entries(action="approvals.request")
    assert audit[0]["detail"]["approval_id"] == req.id


def test_executed_once_and_supersedes_other_live_approvals(world):
    service = _service(world)
    first = _approved(service)
    second = _approved(service)
    executor = service.policy.workflow("approval-executor", "alice")
    with Session(world[0]) as s, s.begin():
        service.mark_executed(s, first.id, executor, {"revision": 1})
        assert service.supersede(s, "m", keep=(first.id,), cause="test") == [second.id]
    assert service.get(first.id).status == ApprovalStatus.EXECUTED
    assert service.get(second.id).status == ApprovalStatus.SUPERSEDED
    with pytest.raises(Conflict), Session(world[0]) as s, s.begin():
        service.mark_executed(s, first.id, executor, {"revision": 2})
    with pytest.raises(Conflict, match="superseded"):
        service.check_executable(second.id)


def test_approved_but_unexecuted_request_expires(world):
    service = _service(world)
    req = _approved(service)
    world[2].now += timedelta(hours=service.policy.approvals.ttl_hours + 1)
    with pytest.raises(Conflict, match="not executed before"):
        service.check_executable(req.id)
    assert service.get(req.id).status == ApprovalStatus.EXPIRED


def test_rollback_requests_have_the_short_lifetime(world):
    service = _service(world)
    agent = service.policy.agent("mlops-engineer", "dana")
    req = service.create("m", "1", {"rollback": {}}, agent, action=ROLLBACK)
    assert req.expires_at - req.created_at == timedelta(
        hours=service.policy.approvals.rollback_ttl_hours
    )


def test_a_failed_transaction_leaves_no_decision_and_no_audit_row(world, monkeypatch):
    service = _service(world)
    dana = service.policy.human("dana")
    req = service.create("m", "2", EVIDENCE, dana)
    before = len(world[1].entries(action="approvals.approve", decision="allowed"))

    original = world[1].append

    def fail_on_allowed(*a, **k):
        if k.get("decision") == "allowed":
            raise RuntimeError("disk full")
        return original(*a, **k)

    monkeypatch.setattr(world[1], "append", fail_on_allowed)
    with pytest.raises(RuntimeError):
        service.decide(
            req.id,
            service.policy.human("alice"),
            approve=True,
            seen_evidence_hash=req.evidence_hash,
        )
    monkeypatch.undo()
    assert service.get(req.id).status == ApprovalStatus.PENDING
    assert len(world[1].entries(action="approvals.approve", decision="allowed")) == before


def test_require_human_validation_before_any_decision(world):
    service = _service(world, _policy(validation={"require_human": True}))
    policy = service.policy
    req = service.create("m", "2", EVIDENCE, policy.human("dana"))
    alice = policy.human("alice")
    with pytest.raises(Conflict, match="human QATester"):
        service.decide(req.id, alice, approve=True, seen_evidence_hash=req.evidence_hash)
    # The requester cannot validate their own request; an agent or an Architect cannot either.
    with pytest.raises(PermissionDenied):
        service.attach_human_validation(req.id, policy.human("dana"), {"verdict": "PASSED"})
    with pytest.raises(PermissionDenied):
        service.attach_human_validation(req.id, policy.human("carol"), {"verdict": "PASSED"})
    with pytest.raises(PermissionDenied):
        service.attach_human_validation(
            req.id, policy.agent("qa-tester", "bob"), {"verdict": "PASSED"}
        )
    validated = service.attach_human_validation(
        req.id, policy.human("bob"), {"verdict": "PASSED", "id": "val-1"}
    )
    assert validated.evidence_hash != req.evidence_hash
    # The old hash is no longer the evidence: deciding on it is refused.
    with pytest.raises(Exception, match="not the evidence"):
        service.decide(req.id, alice, approve=True, seen_evidence_hash=req.evidence_hash)
    done = service.decide(req.id, alice, approve=True, seen_evidence_hash=validated.evidence_hash)
    assert done.status == ApprovalStatus.APPROVED


def test_a_failed_human_validation_keeps_the_request_undecidable(world):
    service = _service(world, _policy(validation={"require_human": True}))
    policy = service.policy
    req = service.create("m", "2", EVIDENCE, policy.human("dana"))
    failed = service.attach_human_validation(req.id, policy.human("bob"), {"verdict": "FAILED"})
    with pytest.raises(Conflict, match="now: FAILED"):
        service.decide(
            req.id, policy.human("alice"), approve=True, seen_evidence_hash=failed.evidence_hash
        )
