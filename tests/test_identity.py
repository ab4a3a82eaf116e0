"""Personal tokens and identity modes: a token names its owner, is stored hashed, shown once,
expires and can be revoked; `identity: token` refuses claims; only admins manage tokens."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select, text, update

from agents.cli.main import main
from policies.pinned import bundled_texts

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


def create_token(capsys, person: str, *extra: str, admin: str = "alice") -> dict:
    rc, out, err = agent(
        capsys, "admin", "token", "create", person, "--as", admin, "--json", *extra
    )
    assert rc == 0, err
    return json.loads(out)


def whoami(capsys, *args: str) -> tuple[int, dict | None, str]:
    rc, out, err = agent(capsys, "whoami", "--json", *args)
    return rc, (json.loads(out) if rc == 0 else None), err


def apply_token_mode(capsys, home: Path, monkeypatch, alice_token: str) -> None:
    data = yaml.safe_load(bundled_texts()["roles.yaml"])
    data["identity"] = "token"
    path = home.parent / "token-mode.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MODELOPS_TOKEN", alice_token)
    rc, _, err = agent(capsys, "policy", "apply", str(path), "--yes")
    assert rc == 0, err
    monkeypatch.delenv("MODELOPS_TOKEN")


def test_token_is_shown_once_and_stored_hashed(home, capsys):
    created = create_token(capsys, "bob")
    secret = created["token"]
    assert secret.startswith("mot_") and len(secret) > 40
    s = services()
    with s.engine.connect() as c:
        rows = c.execute(text("SELECT * FROM personal_tokens")).mappings().all()
    assert len(rows) == 1
    row = dict(rows[0])
    assert row["token_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps(row)
    rc, out, _ = agent(capsys, "admin", "token", "list", "--as", "alice", "--json")
    assert rc == 0 and secret not in out
    assert json.loads(out)[0]["id"] == created["id"]
    audit = s.audit.entries(action="token.create")
    assert len(audit) == 1 and secret not in json.dumps(audit, default=str)
    assert audit[0]["detail"]["owner"] == "bob"


def test_a_token_names_its_owner_and_is_authenticated(home, capsys, monkeypatch):
    secret = create_token(capsys, "bob")["token"]
    monkeypatch.setenv("MODELOPS_TOKEN", secret)
    rc, me, err = whoami(capsys)
    assert rc == 0, err
    assert me["person"] == "bob" and me["authenticated"] is True and me["identity"] == "token"
    assert me["policy_digest"] == services().policy_digest
    assert "approvals:decide" in me["permissions"]
    # --as naming someone else is refused with a token.
    rc, _, err = whoami(capsys, "--as", "alice")
    assert rc == 3 and "belongs to bob" in err
    monkeypatch.setenv("MODELOPS_USER", "alice")
    rc, _, err = whoami(capsys)
    assert rc == 3 and "belongs to bob" in err


def test_claimed_identity_works_but_is_recorded_as_unauthenticated(home, capsys):
    rc, me, _ = whoami(capsys, "--as", "carol")
    assert rc == 0
    assert me["person"] == "carol" and me["authenticated"] is False and me["identity"] == "claimed"
    assert me["policy_identity"] == "claimed"


@pytest.mark.parametrize("bad", ["garbage", "mot_" + "x" * 43, ""])
def test_garbage_or_unknown_tokens_are_refused(home, capsys, monkeypatch, bad):
    create_token(capsys, "bob")
    if not bad:  # an empty token file is an error, not "no token"
        cfg = Path(os.environ["XDG_CONFIG_HOME"]) / "modelops"
        cfg.mkdir(parents=True)
        (cfg / "token").write_text("\n")
        os.chmod(cfg / "token", 0o600)
    else:
        monkeypatch.setenv("MODELOPS_TOKEN", bad)
    rc, _, err = whoami(capsys)
    assert rc == 3 and "Hint:" in err


def test_expired_and_revoked_tokens_are_refused(home, capsys, monkeypatch):
    from core.state import utcnow
    from policies.tokens import PersonalToken

    expired = create_token(capsys, "bob")
    revoked = create_token(capsys, "carol")
    s = services()
    with s.engine.begin() as c:
        c.execute(
            update(PersonalToken.__table__)
            .where(PersonalToken.__table__.c.id == expired["id"])
            .values(expires_at=(utcnow() - timedelta(minutes=1)).isoformat())
        )
    monkeypatch.setenv("MODELOPS_TOKEN", expired["token"])
    rc, _, err = whoami(capsys)
    assert rc == 3 and "expired" in err
    monkeypatch.setenv("MODELOPS_TOKEN", revoked["token"])
    assert whoami(capsys)[0] == 0
    monkeypatch.delenv("MODELOPS_TOKEN")
    rc, out, err = agent(capsys, "admin", "token", "revoke", revoked["id"], "--as", "alice")
    assert rc == 0, err
    monkeypatch.setenv("MODELOPS_TOKEN", revoked["token"])
    rc, _, err = whoami(capsys)
    assert rc == 3 and "revoked" in err
    assert services().audit.entries(action="token.revoke")[0]["detail"]["token_id"] == revoked["id"]


def test_default_expiry_is_90_days_and_configurable(home, capsys):
    from datetime import datetime

    for days, args in ((90, ()), (7, ("--expires-days", "7"))):
        t = create_token(capsys, "bob", *args)
        life = datetime.fromisoformat(t["expires_at"]) - datetime.fromisoformat(t["created_at"])
        assert life == timedelta(days=days)
    rc, _, _ = agent(
        capsys, "admin", "token", "create", "bob", "--expires-days", "0", "--as", "alice"
    )
    assert rc == 2


def test_token_file_must_be_private(home, capsys):
    secret = create_token(capsys, "bob")["token"]
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "modelops" / "token"
    path.parent.mkdir(parents=True)
    path.write_text(secret + "\n")
    os.chmod(path, 0o644)
    rc, _, err = whoami(capsys, "--as", "carol")
    assert rc == 3 and "readable by others" in err and "chmod 600" in err
    os.chmod(path, 0o600)
    rc, me, err = whoami(capsys)
    assert rc == 0, err
    assert me["person"] == "bob" and me["authenticated"] is True


def test_non_admin_cannot_manage_tokens_and_denials_are_audited(home, capsys):
    rc, out, err = agent(capsys, "admin", "token", "create", "dana", "--as", "dana")
    assert rc == 3 and "not a listed admin" in err and "mot_" not in out
    assert agent(capsys, "admin", "token", "list", "--as", "bob")[0] == 3
    tok = create_token(capsys, "dana")
    assert agent(capsys, "admin", "token", "revoke", tok["id"], "--as", "dana")[0] == 3
    s = services()
    denied = s.audit.entries(decision="denied")
    assert {(d["action"], d["actor"]) for d in denied} >= {
        ("token.create", "dana"),
        ("token.list", "bob"),
        ("token.revoke", "dana"),
    }
    with s.engine.connect() as c:
        from policies.tokens import PersonalToken

        owners = c.execute(select(PersonalToken.__table__.c.owner)).scalars().all()
    assert owners == ["dana"]  # only the admin-created one


def test_token_mode_refuses_claims_and_accepts_tokens(home, capsys, monkeypatch):
    alice = create_token(capsys, "alice")["token"]
    bob = create_token(capsys, "bob")["token"]
    apply_token_mode(capsys, home, monkeypatch, alice)
    assert services().policy.identity == "token"
    rc, _, err = agent(capsys, "models", "list", "--as", "alice")
    assert rc == 3 and "requires a personal token" in err
    assert "agent admin token create" in err
    monkeypatch.setenv("MODELOPS_USER", "alice")
    rc, _, err = whoami(capsys)
    assert rc == 3 and "requires a personal token" in err
    monkeypatch.delenv("MODELOPS_USER")
    rc, _, err = agent(capsys, "admin", "token", "create", "carol", "--as", "alice")
    assert rc == 3
    monkeypatch.setenv("MODELOPS_TOKEN", bob)
    rc, me, err = whoami(capsys)
    assert rc == 0, err
    assert me["person"] == "bob" and me["policy_identity"] == "token"


def test_token_mode_also_holds_for_role_agents(home, capsys, monkeypatch):
    alice = create_token(capsys, "alice")["token"]
    apply_token_mode(capsys, home, monkeypatch, alice)
    rc, _, err = agent(
        capsys, "run", "architect", "--input", '{"tool": "list_models"}', "--as", "alice"
    )
    assert rc == 3 and "requires a personal token" in err


def test_switching_to_token_mode_needs_an_admin_with_a_token(home, capsys):
    data = yaml.safe_load(bundled_texts()["roles.yaml"])
    data["identity"] = "token"
    path = home.parent / "token-mode.yaml"
    path.write_text(yaml.safe_dump(data))
    rc, _, err = agent(capsys, "policy", "apply", str(path), "--yes", "--as", "alice")
    assert rc == 1 and "holds an active token" in err
    assert services().policy.identity == "claimed"


def test_a_token_of_someone_no_longer_listed_is_refused(home, capsys, monkeypatch):
    dana = create_token(capsys, "dana")["token"]
    data = yaml.safe_load(bundled_texts()["roles.yaml"])
    del data["people"]["dana"]
    path = home.parent / "no-dana.yaml"
    path.write_text(yaml.safe_dump(data))
    assert agent(capsys, "policy", "apply", str(path), "--yes", "--as", "alice")[0] == 0
    monkeypatch.setenv("MODELOPS_TOKEN", dana)
    rc, _, err = whoami(capsys)
    assert rc == 3 and "not a person listed" in err


def test_cli_exit_code_for_a_denied_apply_end_to_end(home, tmp_path):
    """Through a real process: exit 3, message and hint, no traceback."""
    services().policy  # noqa: B018
    target = tmp_path / "p.yaml"
    target.write_text(bundled_texts()["roles.yaml"].replace("admins: [alice]", "admins: [dana]"))
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents.cli.main",
            "policy",
            "apply",
            str(target),
            "--yes",
            "--as",
            "carol",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 3, res.stderr
    assert "not a listed admin" in res.stderr and "Traceback" not in res.stderr
    assert services().policy.admins == ("alice",)
