"""Who stands behind a model version: the people who registered it and who asked to promote it.

A design review by one of them is a self-review: ``record_design_review`` refuses it (its
dispatcher guard), and the approval evidence keeps an older one apart (``self_reviews``),
never as review evidence. Both facts come from our state DB (audit rows, approval requests),
never from tags a caller can write.
"""

from __future__ import annotations

from typing import Any

# Tools that create a model version; their audited completion names it (detail model/version).
REGISTERING_TOOLS = (
    "register_model",
    "register_own_model",
    "register_finetuned_model",
    "optimize_model",
)
# Promotion requests that stand for their requester: still open, approved, or carried out.
_LIVE_REQUESTS = ("pending", "approved", "executed")


def registered_by(services: Any, name: str, version: str) -> set[str]:
    """The people who registered ``name`` v``version`` through a tool (a version registered
    outside the dispatcher names nobody)."""
    people: set[str] = set()
    for action in REGISTERING_TOOLS:
        for e in services.audit.entries(action=action, model=name, version=str(version)):
            detail = e.get("detail") or {}
            # The completion row's refs name the version the call produced; the arguments of
            # optimize_model name its source version, which it did not register.
            if (
                e["outcome"] == "ok"
                and detail.get("model") == name
                and str(detail.get("version")) == str(version)
            ):
                people.add(e["on_behalf_of"] or e["actor"])
    return people


def promotion_requesters(services: Any, name: str, version: str) -> set[str]:
    """The people with a live (pending, approved or executed) promotion request of it."""
    from policies.approvals import PROMOTE

    return {
        r.requested_by
        for r in services.approvals.list(model_name=name)
        if r.version == str(version) and r.action == PROMOTE and r.status.value in _LIVE_REQUESTS
    }


def self_review_reason(services: Any, person: str, name: str, version: str) -> str | None:
    """Why ``person`` may not review ``name`` v``version``, or None."""
    if not person:
        return "a design review needs a person responsible for it"
    if person in registered_by(services, name, version):
        return f"{person} registered {name} v{version}: a design review must come from someone else"
    if person in promotion_requesters(services, name, version):
        return (
            f"{person} asked to promote {name} v{version}: a design review must come from "
            "someone else"
        )
    return None


def split_reviews(
    reviews: list[dict[str, Any]], authors: set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(reviews that are evidence, self-reviews): a review by one of ``authors`` is kept
    apart. Entries without a reviewer (a forged tag, an unreadable artifact) stay where they
    are shown as errors."""
    kept, own = [], []
    for r in reviews:
        (own if r.get("reviewer") in authors else kept).append(r)
    return kept, own


def review_evidence(
    evidence: dict[str, Any], requested_by: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """For the renderers: (design reviews, self-reviews) of a request's evidence. Also moves a
    review by the requester out of ``design_reviews`` in evidence stored before the split."""
    kept, own = split_reviews(evidence.get("design_reviews") or [], {requested_by})
    return kept, [*(evidence.get("self_reviews") or []), *own]
