"""record_design_review / list_design_reviews: stored with the version (reserved tag + run
artifact outside the model folder), shown in the approval evidence, not forgeable by run
tags, and the model's digest (so promotion) is unchanged."""

from __future__ import annotations

from pathlib import Path

from core.artifacts import artifact_digest, local_path
from core.names import is_reserved_tag


def _review(rt, who, ref, **kw):
    args = {"model_ref": ref, "recommendation": "changes-requested", "summary": "Looks OK."}
    return rt.dispatcher.call(rt.services.policy.human(who), "record_design_review", {**args, **kw})


def test_review_round_trip_evidence_and_digest(registered, bc_data):
    rt = registered["rt"]
    name, (_v1, v2) = registered["name"], registered["versions"]
    reg = rt.services.registry
    before = reg.get(name, v2)
    folder_digest = artifact_digest(local_path(before.artifact_uri))
    res = _review(
        rt,
        "carol",
        f"{name}/{v2}",
        recommendation="approve",
        summary="Sound design.",
        findings=["features are logged"],
        risks=["no fairness slice on age"],
    )
    assert res.ok, res.error
    second = _review(rt, "carol", f"{name}/{v2}", summary="Second look.")
    assert second.ok
    after = reg.get(name, v2)
    assert after.artifact_sha256 == before.artifact_sha256
    assert artifact_digest(local_path(after.artifact_uri)) == folder_digest
    assert after.tags["design_review"] == f"changes-requested {second.output['digest']}"
    listed = rt.dispatcher.call_or_raise(
        rt.services.policy.human("bob"), "list_design_reviews", {"model_ref": f"{name}/{v2}"}
    )["reviews"]
    assert [r["recommendation"] for r in listed] == ["approve", "changes-requested"]
    assert listed[0]["findings"] == ["features are logged"] and listed[0]["reviewer"] == "carol"
    assert listed[0]["risks"] == ["no fairness slice on age"]
    # Shown in the evidence an approver reviews, and promotion still goes through.
    dana = rt.services.policy.human("dana")
    ev = rt.dispatcher.call_or_raise(
        dana,
        "collect_promotion_evidence",
        {"name": name, "version": v2, "dataset": registered["holdout"]},
    )["evidence"]
    assert [r["digest"] for r in ev["design_reviews"]] == [
        res.output["digest"],
        second.output["digest"],
    ]
    req = rt.dispatcher.call_or_raise(
        dana, "request_promotion", {"name": name, "version": v2, "dataset": registered["holdout"]}
    )
    assert req["status"] in ("pending_approval", "pending_validation"), req
    from click.testing import CliRunner

    from agents.cli.main import cli

    shown = CliRunner().invoke(cli, ["approvals", "show", req["approval_id"], "--as", "alice"])
    assert shown.exit_code == 0, shown.output
    assert "design       approve by carol" in shown.output and "Sound design." in shown.output


def test_run_tags_cannot_forge_a_review(rt, bc_data, trained):
    from core.design.review_notes import build_record, canonical, digest

    assert is_reserved_tag("design_review") and is_reserved_tag("Design_Review_Log")
    reg = rt.services.registry
    t = trained[0]
    run_id = reg.log_sklearn_run(
        t.model,
        X_sample=bc_data.train[bc_data.feature_names].head(3),
        honesty=t.honesty,
        run_name="forger",
        dataset=bc_data.train,
    )
    fake = build_record(
        name="forged",
        version="1",
        artifact_sha256="",
        reviewer="carol",
        recommendation="approve",
        summary="all good",
        findings=[],
        risks=[],
    )
    d = digest(fake)
    reg.client.log_text(run_id, canonical(fake).decode(), f"design_reviews/{d}.json")
    reg.client.set_tag(run_id, "design_review_log", d)
    reg.client.set_tag(run_id, "design_review", f"approve {d}")
    dana = rt.services.policy.human("dana")
    out = rt.dispatcher.call_or_raise(
        dana,
        "register_model",
        {"name": "forged", "run_id": run_id, "honesty": t.honesty.model_dump(mode="json")},
    )
    info = reg.get("forged", out["version"])
    assert "design_review_log" not in info.tags and "design_review" not in info.tags
    listed = rt.dispatcher.call_or_raise(
        dana, "list_design_reviews", {"model_ref": f"forged/{out['version']}"}
    )
    assert listed["reviews"] == []


def test_a_version_tag_set_through_mlflow_is_not_a_review(registered):
    """The reserved version tags are writable with MLflow's own client; a review counts only
    if record_design_review wrote it (its audit entry names the digest and the reviewer)."""
    from core.design.review_notes import build_record, canonical, digest

    rt = registered["rt"]
    name, (_v1, v2) = registered["name"], registered["versions"]
    reg = rt.services.registry
    real = _review(rt, "carol", f"{name}/{v2}", summary="Real one.").output["digest"]
    info = reg.get(name, v2)
    fake = build_record(
        name=name,
        version=v2,
        artifact_sha256=info.artifact_sha256 or "",
        reviewer="carol",
        recommendation="approve",
        summary="forged",
        findings=[],
        risks=[],
    )
    d = digest(fake)
    reg.client.log_text(info.run_id, canonical(fake).decode(), f"design_reviews/{d}.json")
    reg.client.set_model_version_tag(name, v2, "design_review_log", f"{real} {d}")
    listed = rt.dispatcher.call_or_raise(
        rt.services.policy.human("bob"), "list_design_reviews", {"model_ref": f"{name}/{v2}"}
    )["reviews"]
    assert [r.get("summary") for r in listed] == ["Real one.", None]
    assert listed[1] == {
        "digest": d,
        "error": "not recorded by record_design_review (no audit entry)",
    }


def test_permissions_and_bad_input(registered):
    rt = registered["rt"]
    name, (v1, _v2) = registered["name"], registered["versions"]
    denied = _review(rt, "bob", f"{name}/{v1}")
    assert not denied.ok and denied.error.code == "permission_denied"
    for bad in ({"recommendation": "ship-it"}, {"summary": ""}, {"model_ref": "../x/1"}):
        res = _review(rt, "carol", f"{name}/{v1}", **bad)
        assert not res.ok and res.error.code == "invalid_input", bad
    missing = _review(rt, "carol", f"{name}/999")
    assert not missing.ok and missing.error.code == "not_found"
    assert "design_review" not in rt.services.registry.get(name, v1).tags
    assert Path(".").exists()
