"""A model version's trail for an auditor: who registered, evaluated, validated, requested,
approved (authenticated or not, under which policy digest) and deployed it, in order.

Combines the audit entries that name the version (or only its model: registration,
rollbacks) with its approval requests. Fields that newer approval rows carry (``plan``,
``executed_at``, ``policy_digest``, ``decider_authenticated``, …) are read with ``getattr``,
so an older row simply shows them as missing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

from policies.audit import AuditLog
from policies.audit_refs import detail_refs

# Approval fields the trail shows; the newer ones may be absent, hence getattr.
APPROVAL_FIELDS = (
    "id",
    "kind",
    "action",
    "status",
    "requested_by",
    "requested_via",
    "requester_authenticated",
    "created_at",
    "expires_at",
    "decided_by",
    "decided_at",
    "decider_authenticated",
    "reason",
    "evidence_hash",
    "policy_digest",
    "plan",
    "executed_at",
    "executed_by",
    "execution",
)
DECISION_ACTIONS = ("approvals.approve", "approvals.reject")


def build_trail(
    log: AuditLog,
    approvals: Any,
    model: str,
    version: str,
    *,
    skip: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """The audit entries about one model version (and its model-level entries: registration,
    rollbacks), oldest first, with its approval requests from ``approvals.list()``. Entries
    for which ``skip`` is true (the CLI passes "is a read-only tool") are left out."""
    requests = sorted(
        (a for a in approvals.list() if a.model_name == model and str(a.version) == str(version)),
        key=lambda a: a.created_at,
    )
    ids = {req.id for req in requests}
    found = {e["seq"]: e for e in log.entries(model=model, version=version, model_level=True)}
    for req in requests:
        found.update((e["seq"], e) for e in log.entries(approval_id=req.id))
    events = []
    for e in sorted(found.values(), key=lambda e: e["seq"]):
        if skip is not None and skip(e):
            continue
        refs, approval_ids = detail_refs(e["detail"])
        exact = (model, str(version)) in refs or bool(approval_ids & ids)
        events.append(_event_view(e, exact, approval_ids))
    approvals = [_approval_view(req, events) for req in requests]
    chain = log.check()
    return {
        "model": model,
        "version": str(version),
        "chain": {
            "ok": chain.ok,
            "entries": chain.entries,
            "head_seq": chain.head_seq,
            "head_hash": chain.head_hash,
            "first_bad_seq": chain.first_bad_seq,
            "problem": chain.problem,
        },
        "approvals": approvals,
        "events": events,
    }


def _event_view(e: dict[str, Any], exact: bool, approval_ids: set[str]) -> dict[str, Any]:
    detail = e["detail"] if isinstance(e["detail"], dict) else {}
    return {
        "seq": e["seq"],
        "ts": e["ts"],
        "actor": e["actor"],
        "actor_kind": e["actor_kind"],
        "role": e["role"],
        "on_behalf_of": e["on_behalf_of"],
        "authenticated": e.get("authenticated"),
        "action": e["action"],
        "permission": e["permission"],
        "decision": e["decision"],
        "outcome": e["outcome"],
        "scope": "version" if exact else "model",
        "approval_id": next(iter(sorted(approval_ids)), None),
        "evidence_hash": detail.get("evidence_hash"),
        "policy_digest": detail.get("policy_digest"),
        "intent_seq": detail.get("intent_seq"),
        "reason": e.get("reason") or "",
        "hash": e["hash"],
    }


def _approval_view(req: Any, events: list[dict[str, Any]]) -> dict[str, Any]:
    view = {f: _plain(getattr(req, f, None)) for f in APPROVAL_FIELDS}
    evidence = getattr(req, "evidence", None) or {}
    if view["policy_digest"] is None:
        view["policy_digest"] = evidence.get("policy_digest")
    decided = [
        e
        for e in events
        if e["approval_id"] == req.id
        and e["action"] in DECISION_ACTIONS
        and e["decision"] == "allowed"
    ]
    view["decision_seq"] = decided[-1]["seq"] if decided else None
    if view["decider_authenticated"] is None and decided:
        view["decider_authenticated"] = decided[-1]["authenticated"]
    dataset = evidence.get("dataset") or {}
    validation = evidence.get("validation") or {}
    view["evidence"] = {
        "dataset": dataset.get("path"),
        "dataset_sha256": dataset.get("sha256"),
        "metrics": evidence.get("metrics"),
        "validation_status": validation.get("validation_status"),
        "validated_by": validation.get("validated_by"),
    }
    return view


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return value
