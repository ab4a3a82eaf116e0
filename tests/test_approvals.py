"""Approval rules and the audit chain, on SQLite and (marked pg) PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.errors import Conflict, InvalidInput, PermissionDenied
from core.settings import load_settings
from core.state import get_engine
from policies.approvals import ApprovalService, ApprovalStatus, evidence_hash
from policies.audit import AuditLog
from policies.rbac import Actor, ActorKind, load_policy

EVIDENCE = {"candidate": {"name": "m", "version": "2"}, "metrics": {"f1": 0.97}}


@pytest.fixture
def svc(state_db_url: str):
    policy = load_policy(load_settings().resolved_policies_dir)
    engine = get_engine(state_db_url)
    audit = AuditLog(engine)
    return ApprovalService(engine, policy, audit), policy, audit


def _request(svc, ttl=None):
    service, policy, _ = svc
    requester = policy.agent("ml-engineer", on_behalf_of="dana")
    return service.create("m", "2", EVIDENCE, requester, thread_id="t-1", ttl=ttl)


def test_listed_approver_can_approve_and_decision_is_audited(svc):
    service, policy, audit = svc
    req = _request(svc)
    assert req.requested_by == "dana" and req.status == ApprovalStatus.PENDING
    done = service.decide(
        req.id, policy.human("alice"), approve=True, seen_evidence_hash=req.evidence_hash
    )
    assert done.status == ApprovalStatus.APPROVED and done.decided_by == "alice"
    allowed = audit.entries(action="approvals.approve", decision="allowed")
    assert allowed and allowed[0]["detail"]["approval_id"] == req.id
    assert audit.verify() == (True, None)


def test_agent_identity_cannot_approve(svc):
    service, policy, audit = svc
    req = _request(svc)
    agent = policy.agent("ml-engineer", on_behalf_of="alice")
    with pytest.raises(PermissionDenied, match="only people"):
        service.decide(req.id, agent, approve=True, seen_evidence_hash=req.evidence_hash)
    # An agent claiming to be a human approver is still not the person on file.
    forged = Actor(name="qa-tester", kind=ActorKind.HUMAN, role="QATester")
    with pytest.raises(PermissionDenied):
        service.decide(req.id, forged, approve=True, seen_evidence_hash=req.evidence_hash)
    assert service.get(req.id).status == ApprovalStatus.PENDING
    assert len(audit.entries(action="approvals.approve", decision="denied")) == 2


def test_requester_cannot_approve_own_request(svc):
    service, policy, _ = svc
    requester = policy.human("alice")  # an approver, but the requester
    req = service.create("m", "2", EVIDENCE, requester)
    with pytest.raises(PermissionDenied, match="requested"):
        service.decide(req.id, requester, approve=True, seen_evidence_hash=req.evidence_hash)
    assert service.get(req.id).status == ApprovalStatus.PENDING


def test_person_not_listed_as_approver_cannot_approve(svc):
    service, policy, _ = svc
    req = _request(svc)
    with pytest.raises(PermissionDenied, match="not a listed approver"):
        service.decide(
            req.id, policy.human("carol"), approve=True, seen_evidence_hash=req.evidence_hash
        )
    unknown = Actor(name="mallory", kind=ActorKind.HUMAN, role="Engineer")
    with pytest.raises(PermissionDenied, match="not listed"):
        service.decide(req.id, unknown, approve=True, seen_evidence_hash=req.evidence_hash)
    assert service.get(req.id).status == ApprovalStatus.PENDING


def test_second_decision_is_refused(svc):
    service, policy, _ = svc
    req = _request(svc)
    service.decide(
        req.id, policy.human("alice"), approve=True, seen_evidence_hash=req.evidence_hash
    )
    with pytest.raises(Conflict, match="already approved by alice"):
        service.decide(
            req.id, policy.human("bob"), approve=False, seen_evidence_hash=req.evidence_hash
        )
    with pytest.raises(Conflict):
        service.decide(
            req.id, policy.human("alice"), approve=True, seen_evidence_hash=req.evidence_hash
        )
    final = service.get(req.id)
    assert final.status == ApprovalStatus.APPROVED and final.decided_by == "alice"


def test_decision_on_different_evidence_is_refused(svc):
    service, policy, _ = svc
    req = _request(svc)
    other = evidence_hash({**EVIDENCE, "metrics": {"f1": 0.99}})
    with pytest.raises(InvalidInput, match="not the evidence"):
        service.decide(req.id, policy.human("alice"), approve=True, seen_evidence_hash=other)
    assert service.get(req.id).status == ApprovalStatus.PENDING


def test_expired_request_cannot_be_approved(svc):
    service, policy, _ = svc
    req = _request(svc, ttl=timedelta(seconds=-1))
    with pytest.raises(Conflict, match="expired"):
        service.decide(
            req.id, policy.human("alice"), approve=True, seen_evidence_hash=req.evidence_hash
        )
    assert service.get(req.id).status == ApprovalStatus.EXPIRED


def test_audit_chain_detects_tampering(svc):
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from policies.audit import AuditEntry

    service, policy, audit = svc
    for who in ("carol", "dana", "alice"):
        req = _request(svc)
        try:
            service.decide(
                req.id, policy.human(who), approve=True, seen_evidence_hash=req.evidence_hash
            )
        except PermissionDenied:
            pass  # carol and dana are refused; the refusals are part of the chain under test
    entries = audit.entries(action="approvals.approve")
    assert [e["decision"] for e in reversed(entries)] == ["denied", "denied", "allowed"]
    # Each request is audited when it is opened, too.
    assert len(audit.entries(action="approvals.request")) == 3
    assert audit.verify() == (True, None)
    with Session(audit.engine) as s, s.begin():
        s.execute(
            update(AuditEntry)
            .where(AuditEntry.seq == entries[-1]["seq"])
            .values(decision="allowed")
        )
    ok, bad = audit.verify()
    assert not ok and bad == entries[-1]["seq"]


def test_policy_denies_by_default():
    policy = load_policy(load_settings().resolved_policies_dir)
    arch = policy.agent("architect", on_behalf_of="carol")
    assert not policy.authorize(arch, "deploy:production").allowed
    assert not policy.authorize(arch, "some:unlisted-permission").allowed
    assert policy.authorize(arch, "registry:read").allowed
    # A human whose claimed role differs from roles.yaml gets nothing.
    assert not policy.authorize(
        Actor(name="carol", kind=ActorKind.HUMAN, role="Engineer"), "registry:read"
    ).allowed
    # An agent must act for a listed person.
    lone = Actor(name="ml-engineer", kind=ActorKind.AGENT, role="Engineer", on_behalf_of="nobody")
    assert not policy.authorize(lone, "registry:read").allowed
