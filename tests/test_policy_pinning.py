"""The policy in force is pinned per home: nothing in the working directory or the environment
swaps it, a hand-edited pinned copy is refused, and changing it is an audited admin action."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agents.cli.main import main
from core.errors import Conflict
from policies.pinned import bundled_texts, load_pinned, parse_texts, pin_dir

ROOT = Path(__file__).resolve().parent.parent


def agent(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def services():  # noqa: ANN201
    from core.settings import load_settings
    from tools.context import Services

    return Services(load_settings())


def audit_of(home: Path):  # noqa: ANN201
    """The audit log of ``home`` (what Services passes to load_pinned)."""
    from core.state import get_engine
    from policies.audit import AuditLog

    home.mkdir(parents=True, exist_ok=True)
    return AuditLog(get_engine(f"sqlite:///{home / 'state.db'}"), home / "audit-anchor.log")


def roles_data() -> dict:
    return yaml.safe_load(bundled_texts()["roles.yaml"])


def write_policy_dir(path: Path, roles: dict, thresholds: str | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "roles.yaml").write_text(yaml.safe_dump(roles))
    (path / "thresholds.yaml").write_text(thresholds or bundled_texts()["thresholds.yaml"])
    return path


def with_mallory_approver() -> dict:
    data = roles_data()
    data["people"]["mallory"] = {"role": "Engineer", "approver": True}
    return data


def test_first_use_pins_the_bundled_policy(home: Path) -> None:
    s = services()
    expected = parse_texts(bundled_texts(), "bundled").digest
    assert s.policy_digest == expected
    for name in ("roles.yaml", "thresholds.yaml", "pin.json"):
        assert (pin_dir(home) / name).is_file()
    assert json.loads((pin_dir(home) / "pin.json").read_text())["digest"] == expected
    assert s.thresholds == yaml.safe_load(bundled_texts()["thresholds.yaml"])


def test_policy_digest_is_stable_across_processes(home: Path) -> None:
    code = (
        "from policies.pinned import parse_texts, bundled_texts;"
        "print(parse_texts(bundled_texts(), 'b').digest)"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            check=True,
        ).stdout.strip()
        for seed in (1, 2, 3)
    }
    assert len(digests) == 1


def test_cwd_modelops_toml_cannot_make_an_unknown_person_an_approver(home, tmp_path, capsys):
    evil = write_policy_dir(tmp_path / "evil", with_mallory_approver())
    (tmp_path / "modelops.toml").write_text(f'policies_dir = "{evil}"\nuser = "mallory"\n')
    rc, _, err = agent(capsys, "approvals", "list")
    assert rc != 0
    assert "differs from the policy pinned" in err and "agent policy apply" in err
    with pytest.raises(Conflict):
        _ = services().policy
    # And the pinned policy itself never learned about mallory.
    assert "mallory" not in load_pinned(home, audit=audit_of(home)).policy.people


def test_cwd_modelops_toml_pointing_at_a_fresh_home_still_gets_the_bundled_policy(
    home, tmp_path, capsys
):
    evil = write_policy_dir(tmp_path / "evil", with_mallory_approver())
    (tmp_path / "modelops.toml").write_text(
        f'home = "{tmp_path / "fresh"}"\npolicies_dir = "{evil}"\n'
    )
    with pytest.raises(Conflict):
        _ = services().policy
    fresh = tmp_path / "fresh"
    assert "mallory" not in load_pinned(fresh, audit=audit_of(fresh)).policy.approvers()


def test_policies_dir_env_is_refused_unless_identical(home, tmp_path, monkeypatch, capsys):
    other = write_policy_dir(tmp_path / "other", with_mallory_approver())
    monkeypatch.setenv("MODELOPS_POLICIES_DIR", str(other))
    with pytest.raises(Conflict) as exc:
        _ = services().policy
    assert "agent policy diff" in exc.value.hint
    rc, _, err = agent(capsys, "models", "list", "--as", "mallory")
    assert rc == 1 and "differs from the policy pinned" in err
    same = tmp_path / "same"
    same.mkdir()
    for name, text in bundled_texts().items():
        (same / name).write_text("# a comment does not change the policy\n" + text)
    monkeypatch.setenv("MODELOPS_POLICIES_DIR", str(same))
    assert services().policy.approvers() == ["alice", "bob"]


def test_a_hand_edited_pinned_file_is_refused(home, capsys):
    assert services().policy  # pins
    roles = pin_dir(home) / "roles.yaml"
    os.chmod(roles, 0o644)
    roles.write_text(
        roles.read_text().replace(
            "role: Architect\n    approver: false", "role: Architect\n    approver: true"
        )
    )
    with pytest.raises(Conflict) as exc:
        _ = services().policy
    assert "agent policy apply" in exc.value.hint
    rc, _, err = agent(capsys, "agents", "list")
    assert rc == 1 and "changed outside `agent policy apply`" in err
    rc, _, err = agent(capsys, "approvals", "list", "--as", "carol")
    assert rc == 1 and "changed outside" in err
    # show reports it; an admin repairs it by applying (audited), authorized by the pin itself.
    rc, out, _ = agent(capsys, "policy", "show", "--json")
    assert rc == 0 and json.loads(out)["changed_copies"] == ["roles.yaml"]
    good = write_policy_dir(home.parent / "good", roles_data())
    rc, out, err = agent(capsys, "policy", "apply", str(good), "--yes", "--as", "alice")
    assert rc == 0, err
    assert services().policy.approvers() == ["alice", "bob"]


def test_a_tampered_pin_digest_is_refused(home):
    assert services().policy
    pin_path = pin_dir(home) / "pin.json"
    pin = json.loads(pin_path.read_text())
    pin["digest"] = "0" * 64
    os.chmod(pin_path, 0o644)
    pin_path.write_text(json.dumps(pin))
    with pytest.raises(Conflict):
        _ = services().policy


def test_admin_apply_is_audited_with_old_and_new_digest_and_diff(home, tmp_path, capsys):
    old = services().policy_digest
    new_dir = write_policy_dir(tmp_path / "new", with_mallory_approver())
    rc, out, _ = agent(capsys, "policy", "diff", str(new_dir), "--json")
    assert rc == 0
    diff = json.loads(out)
    assert {"change": "added", "path": "approvers", "new": "mallory"} in diff["diff"]
    assert diff["old_digest"] == old
    rc, out, err = agent(capsys, "policy", "apply", str(new_dir), "--yes", "--as", "alice")
    assert rc == 0, err
    s = services()
    assert s.policy.approvers() == ["alice", "bob", "mallory"]
    assert s.policy_digest == diff["new_digest"] != old
    rows = s.audit.entries(action="policy.apply")
    assert [r["outcome"] for r in rows] == ["ok", "intent"]
    done = rows[0]
    assert done["actor"] == "alice" and done["decision"] == "allowed"
    assert done["detail"]["old_digest"] == old
    assert done["detail"]["new_digest"] == s.policy_digest
    assert any(c["path"] == "people.mallory" for c in done["detail"]["diff"])
    pin = json.loads((pin_dir(home) / "pin.json").read_text())
    assert pin["previous_digest"] == old and pin["pinned_by"] == "alice"


def test_non_admin_cannot_apply_and_the_denial_is_audited(home, tmp_path, capsys):
    before = services().policy_digest
    new_dir = write_policy_dir(tmp_path / "new", with_mallory_approver())
    rc, _, err = agent(capsys, "policy", "apply", str(new_dir), "--yes", "--as", "bob")
    assert rc == 3 and "not a listed admin" in err
    s = services()
    assert s.policy_digest == before
    denied = s.audit.entries(action="policy.apply", decision="denied")
    assert len(denied) == 1 and denied[0]["actor"] == "bob"


def test_apply_rejects_a_string_where_a_boolean_belongs(home, tmp_path, capsys):
    before = services().policy_digest
    data = roles_data()
    data["people"]["carol"]["approver"] = "false"
    bad = write_policy_dir(tmp_path / "bad", data)
    rc, _, err = agent(capsys, "policy", "apply", str(bad), "--yes", "--as", "alice")
    assert rc == 2 and "people.carol.approver" in err
    assert services().policy_digest == before


def test_apply_rejects_thresholds_with_a_string_number(home, tmp_path, capsys):
    before = services().policy_digest
    thresholds = bundled_texts()["thresholds.yaml"].replace("f1: 0.90", 'f1: "0.90"')
    bad = write_policy_dir(tmp_path / "bad", roles_data(), thresholds)
    rc, _, err = agent(capsys, "policy", "apply", str(bad), "--yes", "--as", "alice")
    assert rc == 2 and "minimums.IMPLEMENTED" in err
    assert services().policy_digest == before


def test_apply_needs_confirmation_off_a_terminal(home, tmp_path, capsys):
    new_dir = write_policy_dir(tmp_path / "new", with_mallory_approver())
    rc, _, err = agent(capsys, "policy", "apply", str(new_dir), "--as", "alice")
    assert rc == 2 and "--yes" in err
    assert "mallory" not in services().policy.people


def test_apply_changes_thresholds_through_a_roles_file_or_a_directory(home, tmp_path, capsys):
    thresholds = bundled_texts()["thresholds.yaml"].replace("f1: 0.90", "f1: 0.95")
    d = write_policy_dir(tmp_path / "thr", roles_data(), thresholds)
    rc, out, _ = agent(capsys, "policy", "diff", str(d))
    assert "~ thresholds.default.minimums.IMPLEMENTED.f1: 0.9 -> 0.95" in out
    assert agent(capsys, "policy", "apply", str(d), "--yes", "--as", "alice")[0] == 0
    assert services().thresholds["default"]["minimums"]["IMPLEMENTED"]["f1"] == 0.95
    # A roles file alone keeps the pinned thresholds.
    roles_only = tmp_path / "roles-only.yaml"
    roles_only.write_text(yaml.safe_dump(with_mallory_approver()))
    assert agent(capsys, "policy", "apply", str(roles_only), "--yes", "--as", "alice")[0] == 0
    s = services()
    assert s.thresholds["default"]["minimums"]["IMPLEMENTED"]["f1"] == 0.95
    assert "mallory" in s.policy.people


def test_apply_refuses_a_stale_review(home, tmp_path):
    from policies.pinned import apply_policy, read_source

    s = services()
    stale = s.policy_digest
    first = read_source(write_policy_dir(tmp_path / "a", with_mallory_approver()))
    alice = s.policy.human("alice")
    apply_policy(home, first, actor=alice, audit=s.audit, expected_digest=stale)
    data = roles_data()
    data["people"]["erin"] = {"role": "QATester"}
    second = read_source(write_policy_dir(tmp_path / "b", data))
    with pytest.raises(Conflict):
        apply_policy(home, second, actor=alice, audit=s.audit, expected_digest=stale)


def test_show_prints_the_policy_in_force_and_its_digest(home, capsys):
    digest = services().policy_digest
    rc, out, _ = agent(capsys, "policy", "show", "--json")
    shown = json.loads(out)
    assert rc == 0 and shown["digest"] == digest
    assert shown["admins"] == ["alice"] and shown["identity"] == "claimed"
    rc, out, _ = agent(capsys, "policy", "show")
    assert digest in out
