"""draft_runbook: rendered from the real policy, deployments and monitoring rules; every
command exists in the CLI; confined output folder; force semantics; permissions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from core.design.runbook import KINDS, commands_in
from tests.test_hints import check_command


def _runtime():
    from agents.runtime import build_runtime
    from core.settings import load_settings

    return build_runtime(load_settings())


def _draft(rt, who: str, **args):
    return rt.dispatcher.call(rt.services.policy.human(who), "draft_runbook", args)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model", [None, "churn-classifier"])
def test_every_command_in_every_runbook_exists(rt, kind, model):
    args = {"kind": kind, **({"model_name": model} if model else {})}
    res = _draft(rt, "carol", **args)
    assert res.ok, res.error
    text = Path(res.output["path"]).read_text()
    commands = commands_in(text)
    assert commands and commands == res.output["commands"]
    for command in commands:
        assert check_command(command) == [], command
    if model:
        assert all("NAME" not in c for c in commands if c.startswith("agent deploy"))
    assert Path(res.output["path"]).is_relative_to(rt.services.settings.home_dir / "drafts")


def test_runbook_reflects_the_policy_in_force(home):
    from core.settings import load_settings
    from policies.pinned import apply_policy, parse_texts
    from policies.rbac import Actor, ActorKind
    from tools.context import Services

    services = Services(load_settings())
    pinned = services.pinned
    roles = yaml.safe_load(pinned.current.texts["roles.yaml"])
    roles["approvals"] = {"ttl_hours": 7, "rollback_ttl_hours": 1.5}
    roles["validation"] = {"require_human": True}
    roles["rollout"] = {"min_requests_per_step": 321}
    roles["people"]["erin"] = {"role": "Engineer", "approver": True}
    th = yaml.safe_load(pinned.current.texts["thresholds.yaml"])
    th["monitoring"]["slo"]["latency_p99_ms"] = 123
    th["monitoring"]["auto_rollback"]["enabled"] = False
    texts = {
        **pinned.current.texts,
        "roles.yaml": yaml.safe_dump(roles),
        "thresholds.yaml": yaml.safe_dump(th),
    }

    alice = Actor(name="alice", kind=ActorKind.HUMAN, role="Engineer")
    apply_policy(
        home,
        parse_texts(texts, "test"),
        actor=alice,
        audit=services.audit,
        expected_digest=pinned.digest,
    )
    rt = _runtime()
    assert rt.services.policy.approvals.ttl_hours == 7
    res = _draft(rt, "carol", kind="promotion", model_name="m1", out_dir="rb")
    assert res.ok, res.error
    text = Path(res.output["path"]).read_text()
    assert "expire after 7 hours" in text and "after 1.5 hours" in text
    assert "REQUIRED" in text and "agent approvals validate APPROVAL_ID --as YOU" in text
    assert "at least 321 candidate requests" in text
    assert "alice, bob, erin" in text
    assert "latency p99 ≤ 123 ms" in text and "Automatic rollback is OFF" in text
    rb = _draft(rt, "carol", kind="rollback", out_dir="rb2")
    assert "within 1.5 hours" in Path(rb.output["path"]).read_text()


def test_default_policy_and_notes(rt):
    res = _draft(rt, "carol", kind="incident", notes="Page the on-call: #ml-oncall.")
    text = Path(res.output["path"]).read_text()
    # The bundled policy leaves automatic rollback off until an admin turns it on.
    assert "expire after 24 hours" in text and "Automatic rollback is OFF" in text
    assert "Human validation before approval: not required." in text
    assert "## Notes\n\nPage the on-call: #ml-oncall." in text
    assert "No deployments are recorded" in text


def test_force_semantics_and_hostile_paths(rt, tmp_path):
    first = _draft(rt, "carol", kind="rollback", out_dir="drafts/rb")
    assert first.ok
    again = _draft(rt, "carol", kind="rollback", out_dir="drafts/rb")
    assert not again.ok and again.error.code == "invalid_input"
    forced = _draft(rt, "carol", kind="rollback", out_dir="drafts/rb", force=True, notes="v2")
    assert forced.ok and "v2" in Path(forced.output["path"]).read_text()
    outside = tmp_path.parent / "elsewhere"
    (tmp_path / "link").symlink_to(tmp_path.parent)
    for bad in ("../escape", str(outside), "link/escape", "/etc"):
        res = _draft(rt, "carol", kind="rollback", out_dir=bad)
        assert not res.ok and res.error.code == "invalid_input", bad
    assert not outside.exists() and not (tmp_path.parent / "escape").exists()


def test_permission_denied_for_qa_tester_and_bad_input(rt):
    res = _draft(rt, "bob", kind="rollback")
    assert not res.ok and res.error.code == "permission_denied"
    assert not (rt.services.settings.home_dir / "drafts").exists()
    bad = _draft(rt, "carol", kind="deploy-everything")
    assert not bad.ok and bad.error.code == "invalid_input"
    assert _draft(rt, "dana", kind="rollback").ok  # Engineer holds design:write


def test_runbook_shows_real_deployments_and_the_previous_version(rt):
    from core.deployment import ServedVersion

    deps = rt.services.deployments
    for v in ("3", "4"):
        served = ServedVersion(
            version=v, weight=100, artifact_uri=f"file:///nowhere/{v}", artifact_sha256="0" * 64
        )
        deps.deploy("churn-classifier", served, actor="test")
    res = _draft(rt, "carol", kind="rollback", model_name="churn-classifier")
    assert res.ok, res.error
    assert res.output["deployments"] == ["churn-classifier:production"]
    text = Path(res.output["path"]).read_text()
    assert "| churn-classifier | production | 2 | v4 (100) | v3 |" in text
    assert "agent deploy rollback churn-classifier --to 3 --reason 'WHY' --as YOU" in text
    other = _draft(rt, "carol", kind="rollback", model_name="other-model")
    assert "No deployments are recorded" in Path(other.output["path"]).read_text()
