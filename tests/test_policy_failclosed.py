"""A lost pin.json fails closed: a home with history refuses to run and names the last pinned
digest; only `agent policy repin` by an admin of that policy restores it (audited). A new home
pins the bundled policy once, audited; a pin with a new state DB is the record and still works."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from core.errors import Conflict
from policies.pinned import bundled_texts, parse_texts, pin_dir
from tests.test_policy_pinning import agent, roles_data, services, write_policy_dir


def strict_policy(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> str:
    """Apply (as alice, the admin) a policy with validation.require_human: true; its digest."""
    assert services().policy  # pins the bundled policy
    data = roles_data()
    data["validation"] = {"require_human": True}
    rc, out, err = agent(
        capsys, "policy", "apply", str(write_policy_dir(tmp_path / "strict", data)), "--yes",
        "--as", "alice", "--json",
    )  # fmt: skip
    assert rc == 0, err
    return json.loads(out)["new_digest"]


def lose_pin(home: Path) -> None:
    (pin_dir(home) / "pin.json").unlink()


def test_a_lost_pin_refuses_every_command_and_names_the_last_digest(home, tmp_path, capsys):
    digest = strict_policy(home, tmp_path, capsys)
    lose_pin(home)
    rc, _, err = agent(capsys, "models", "list", "--as", "carol")
    assert rc == 1, err
    assert digest in err and f"agent policy repin --digest {digest}" in err
    # A fresh runtime's dispatcher call, and the policy commands themselves, refuse too.
    from agents.runtime import build_runtime
    from core.settings import load_settings
    from policies.rbac import Actor, ActorKind

    carol = Actor(name="carol", kind=ActorKind.HUMAN, role="Architect")
    with pytest.raises(Conflict) as exc:
        build_runtime(load_settings()).dispatcher.call(carol, "list_models", {})
    assert digest in exc.value.message and "repin" in exc.value.hint
    for args in (("policy", "show"), ("policy", "diff", str(tmp_path / "strict"))):
        rc, _, err = agent(capsys, *args)
        assert rc == 1 and digest in err, (args, err)
    rc, _, err = agent(
        capsys, "policy", "apply", str(tmp_path / "strict"), "--yes", "--as", "alice"
    )
    assert rc == 1 and "repin" in err
    # Nothing re-pinned the bundled policy meanwhile.
    assert not (pin_dir(home) / "pin.json").exists()
    s = services()
    assert len(s.audit.entries(action="policy.pin")) == 1


def test_repin_by_a_non_admin_is_refused_and_audited(home, tmp_path, capsys):
    digest = strict_policy(home, tmp_path, capsys)
    lose_pin(home)
    rc, _, err = agent(capsys, "policy", "repin", "--digest", digest, "--as", "carol")
    assert rc == 3 and "not a listed admin" in err
    assert not (pin_dir(home) / "pin.json").exists()
    denied = services().audit.entries(action="policy.repin")  # the log needs no policy
    assert [(r["actor"], r["decision"]) for r in denied] == [("carol", "denied")]
    assert denied[0]["detail"]["digest"] == digest


def test_repin_by_the_admin_restores_exactly_the_applied_policy(home, tmp_path, capsys):
    digest = strict_policy(home, tmp_path, capsys)
    lose_pin(home)
    rc, out, err = agent(capsys, "policy", "repin", "--digest", digest, "--as", "alice", "--json")
    assert rc == 0, err
    assert json.loads(out)["digest"] == digest
    s = services()
    assert s.policy_digest == digest
    assert s.policy.validation.require_human is True
    rows = s.audit.entries(action="policy.repin")
    assert [r["outcome"] for r in rows] == ["ok", "intent"]
    assert rows[0]["actor"] == "alice" and rows[0]["detail"]["old_state"] == "missing"
    assert rows[0]["detail"]["digest"] == digest
    # And commands run again.
    rc, _, err = agent(capsys, "models", "list", "--as", "carol")
    assert rc == 0, err


def test_repin_restores_only_the_last_pinned_digest(home, tmp_path, capsys):
    bundled = parse_texts(bundled_texts(), "bundled").digest
    digest = strict_policy(home, tmp_path, capsys)
    # While a pin exists there is nothing to restore.
    rc, _, err = agent(capsys, "policy", "repin", "--digest", digest, "--as", "alice")
    assert rc == 1 and "nothing to restore" in err
    lose_pin(home)
    # The older (bundled) policy is in the history, but it is not the last one pinned.
    rc, _, err = agent(capsys, "policy", "repin", "--digest", bundled, "--as", "alice")
    assert rc == 1 and digest in err
    assert not (pin_dir(home) / "pin.json").exists()


def test_repin_refuses_history_texts_that_do_not_match_their_digest(home, tmp_path, capsys):
    from sqlalchemy import update

    from policies.policy_history import PolicyHistoryRow

    digest = strict_policy(home, tmp_path, capsys)
    lose_pin(home)
    s = services()
    forged = roles_data()
    forged["people"]["mallory"] = {"role": "Engineer", "approver": True}
    texts = {**bundled_texts(), "roles.yaml": yaml.safe_dump(forged)}
    with s.engine.begin() as c:
        c.execute(
            update(PolicyHistoryRow).where(PolicyHistoryRow.digest == digest).values(texts=texts)
        )
    rc, _, err = agent(capsys, "policy", "repin", "--digest", digest, "--as", "alice")
    assert rc == 1 and "history was edited" in err
    assert not (pin_dir(home) / "pin.json").exists()


def test_a_new_home_pins_once_and_audits_it(home):
    from policies.policy_history import texts

    digest = parse_texts(bundled_texts(), "bundled").digest
    for _ in range(3):
        assert services().policy_digest == digest
    s = services()
    rows = s.audit.entries(action="policy.pin")
    assert len(rows) == 1
    assert rows[0]["detail"] == {"digest": digest, "source": "bundled"}
    assert rows[0]["actor"] == "policy-pin" and rows[0]["actor_kind"] == "workflow"
    assert texts(s.engine, digest) == bundled_texts()


def test_every_applied_policy_is_kept_in_the_history(home, tmp_path, capsys):
    from policies.policy_history import texts

    digest = strict_policy(home, tmp_path, capsys)
    kept = texts(services().engine, digest)
    assert kept is not None and parse_texts(kept, "kept").digest == digest


def test_a_pin_with_a_new_state_db_still_works_and_is_recorded(home, tmp_path, capsys):
    digest = strict_policy(home, tmp_path, capsys)
    for name in ("state.db", "state.db-wal", "state.db-shm", "audit-anchor.log"):
        (home / name).unlink(missing_ok=True)
    from core.state import get_engine

    get_engine.cache_clear()  # a new process: the old engine held the deleted file open
    rc, _, err = agent(capsys, "models", "list", "--as", "carol")
    assert rc == 0, err
    s = services()
    assert s.policy_digest == digest and s.policy.validation.require_human is True
    rows = s.audit.entries(action="policy.pin")
    assert len(rows) == 1 and rows[0]["detail"] == {"digest": digest, "source": "pin.json"}
    # Recorded: losing the pin now is caught as well.
    lose_pin(home)
    rc, _, err = agent(capsys, "models", "list", "--as", "carol")
    assert rc == 1 and digest in err


def test_a_lost_pin_with_a_replaced_state_db_is_refused_by_the_anchor(home, tmp_path, capsys):
    strict_policy(home, tmp_path, capsys)
    lose_pin(home)
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (home / name).unlink(missing_ok=True)
    from core.state import get_engine

    get_engine.cache_clear()
    rc, _, err = agent(capsys, "models", "list", "--as", "carol")
    assert rc == 1 and "audit anchor file" in err and "refusing to pin the bundled" in err
    assert not (pin_dir(home) / "pin.json").exists()
