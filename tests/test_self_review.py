"""No self-review: a design review of a version by the person who registered it or asked to
promote it is refused by the dispatcher (audited as denied), and one that exists anyway (from
before this rule, or by someone who asked to promote later) is shown to the approver apart,
labelled "self-review (not evidence)", never among the design reviews."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.slow


def _review(rt: Any, actor: Any, ref: str, summary: str = "Looks sound.") -> Any:
    args = {"model_ref": ref, "recommendation": "approve", "summary": summary}
    return rt.dispatcher.call(actor, "record_design_review", args)


def _rows(rt: Any, after: int) -> list[dict[str, Any]]:
    return rt.services.audit.entries(action="record_design_review", after_seq=after)


def _last_seq(rt: Any) -> int:
    head = rt.services.audit.entries(limit=1)
    return head[0]["seq"] if head else 0


def _evidence(rt: Any, registered: dict, who: Any, version: str) -> dict[str, Any]:
    args = {"name": registered["name"], "version": version, "dataset": registered["holdout"]}
    return rt.dispatcher.call_or_raise(who, "collect_promotion_evidence", args)["evidence"]


def _plant(rt: Any, name: str, version: str, reviewer: str, *, audited: bool) -> str:
    """A review record for ``reviewer`` written straight into MLflow (tag log + artifact), as
    a forger would; ``audited`` also writes the audit row record_design_review wrote before
    this rule existed (a real review of one's own version from an older release)."""
    from core.design.review_notes import ARTIFACT_DIR, TAG_LOG, build_record, canonical, digest

    reg = rt.services.registry
    info = reg.get(name, version)
    record = build_record(
        name=name,
        version=version,
        artifact_sha256=info.artifact_sha256 or "",
        reviewer=reviewer,
        recommendation="approve",
        summary=f"my own model is great ({'audited' if audited else 'tags only'})",
        findings=[],
        risks=[],
    )
    d = digest(record)
    reg.client.log_text(info.run_id, canonical(record).decode(), f"{ARTIFACT_DIR}/{d}.json")
    log = " ".join([*info.tags.get(TAG_LOG, "").split(), d])
    reg.client.set_model_version_tag(name, version, TAG_LOG, log)
    if audited:
        rt.services.audit.append(
            rt.services.policy.human(reviewer),
            "record_design_review",
            "design:write",
            decision="allowed",
            outcome="ok",
            detail={"model": name, "version": version, "digest": d},
        )
    return d


def test_the_registrant_may_not_review_her_version_nor_may_her_agent(registered):
    rt = registered["rt"]
    name, v2 = registered["name"], registered["versions"][1]
    policy = rt.services.policy
    for actor in (policy.human("dana"), policy.agent("architect", "dana")):
        before = _last_seq(rt)
        res = _review(rt, actor, f"{name}/{v2}")
        assert not res.ok and res.error.code == "permission_denied", res
        assert "dana registered" in res.error.message
        rows = _rows(rt, before)
        # Refused by the dispatcher: one denied row, no intent, nothing written.
        assert [(r["decision"], r["outcome"]) for r in rows] == [("denied", "permission_denied")]
    assert "design_review_log" not in rt.services.registry.get(name, v2).tags
    # By alias too: the guard resolves it like the tool does.
    rt.services.registry.set_alias(name, "challenger", v2)
    res = _review(rt, policy.human("dana"), f"{name}@challenger")
    assert res.error.code == "permission_denied"


def test_carols_review_is_evidence(registered):
    rt = registered["rt"]
    name, v2 = registered["name"], registered["versions"][1]
    carol, dana = rt.services.policy.human("carol"), rt.services.policy.human("dana")
    res = _review(rt, carol, f"{name}/{v2}", "Sound design.")
    assert res.ok, res.error
    ev = _evidence(rt, registered, dana, v2)
    assert [(r["reviewer"], r["summary"]) for r in ev["design_reviews"]] == [
        ("carol", "Sound design.")
    ]
    assert ev["self_reviews"] == []


def test_a_requester_may_not_review_and_her_earlier_review_is_not_evidence(registered):
    rt = registered["rt"]
    name, v1 = registered["name"], registered["versions"][0]
    alice = rt.services.policy.human("alice")
    # alice neither registered v1 nor asked to promote it: she may review it.
    assert _review(rt, alice, f"{name}/{v1}", "Before my request.").ok
    rt.services.approvals.create(name, v1, {"candidate": {"artifact_sha256": "x"}}, alice)
    res = _review(rt, alice, f"{name}/{v1}", "After my request.")
    assert res.error.code == "permission_denied" and "asked to promote" in res.error.message
    ev = _evidence(rt, registered, alice, v1)
    assert ev["design_reviews"] == []
    assert [(r["reviewer"], r["summary"]) for r in ev["self_reviews"]] == [
        ("alice", "Before my request.")
    ]
    # For anyone else (evidence for bob) it is a review like any other.
    assert [
        r["reviewer"]
        for r in _evidence(rt, registered, rt.services.policy.human("bob"), v1)["design_reviews"]
    ] == ["alice"]


def test_a_review_planted_for_dana_is_never_evidence(registered, capsys):
    rt = registered["rt"]
    name, v2 = registered["name"], registered["versions"][1]
    policy = rt.services.policy
    assert _review(rt, policy.human("carol"), f"{name}/{v2}", "Carol's look.").ok
    forged = _plant(rt, name, v2, "dana", audited=False)  # tags only: not even a review
    older = _plant(rt, name, v2, "dana", audited=True)  # an audited one, from before the rule
    ev = _evidence(rt, registered, policy.human("dana"), v2)
    assert [r.get("reviewer") for r in ev["design_reviews"]] == ["carol", None]
    assert (
        ev["design_reviews"][1]["digest"] == forged
        and "no audit entry" in ev["design_reviews"][1]["error"]
    )
    assert [r["digest"] for r in ev["self_reviews"]] == [older]

    req = rt.services.approvals.create(name, v2, ev, policy.human("dana"))
    out = _show(capsys, req.id)
    assert "design       approve by carol" in out
    assert "design       approve by dana" not in out
    assert "self-review (not evidence) approve by dana" in out

    # Evidence stored before the split (dana's review among the design reviews) is shown the
    # same way: the renderer keeps the requester's review apart.
    old = {**ev, "design_reviews": [*ev["design_reviews"], *ev["self_reviews"]], "self_reviews": []}
    old.pop("self_reviews")
    req_old = rt.services.approvals.create(name, v2, old, policy.human("dana"))
    out = _show(capsys, req_old.id)
    assert "design       approve by dana" not in out
    assert "self-review (not evidence) approve by dana" in out
    _console_shows_it_apart(rt, req_old.id)


def _show(capsys: Any, approval_id: str) -> str:
    from agents.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["approvals", "show", approval_id, "--as", "alice"])
    out = capsys.readouterr()
    assert exc.value.code in (0, None), out.err
    return out.out


def _console_shows_it_apart(rt: Any, approval_id: str) -> None:
    from agents.server.console import _env
    from agents.server.views import approval_view

    a = rt.services.approvals.get(approval_id).model_dump(mode="json")
    view = approval_view(
        a,
        approvers=rt.services.policy.approvers(),
        require_human=False,
        policy_digest=rt.services.policy_digest,
        qa_evaluation=None,
    )
    assert [r.get("reviewer") for r in view["design_reviews"]] == ["carol", None]
    assert [r["reviewer"] for r in view["self_reviews"]] == ["dana"]
    html = _env.from_string(
        '{% from "_evidence.html" import evidence %}{{ evidence(v, "c", "i", full=True) }}'
    ).render(v=view)
    reviews, _, rest = html.partition("Self-reviews (not evidence)")
    assert "by carol" in reviews and "by dana" not in reviews
    assert "self-review (not evidence): approve by dana" in rest
