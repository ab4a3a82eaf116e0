"""The audit log: chain + head verification, identity in every row, same-transaction appends,
intents, filters, and the `agent audit` commands (verify, show, trail)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest
from click.testing import CliRunner
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.engine import Engine

from agents.cli.main import cli
from core.errors import Conflict, InvalidInput, PermissionDenied
from core.state import get_engine
from policies.audit import GENESIS, AuditLog
from policies.audit_check import entry_hash
from policies.rbac import Actor, ActorKind

ALICE = Actor(name="alice", kind=ActorKind.HUMAN, role="Engineer", authenticated=True)
DANA = Actor(name="dana", kind=ActorKind.HUMAN, role="Engineer")
AGENT = Actor(name="ml-engineer", kind=ActorKind.AGENT, role="Engineer", on_behalf_of="dana")


def _fill(log: AuditLog, n: int = 6) -> list[int]:
    seqs = []
    for i in range(n):
        who = (ALICE, DANA, AGENT)[i % 3]
        seqs.append(
            log.append(
                who,
                "evaluate_model",
                "evaluation:run",
                decision="allowed",
                outcome="ok",
                detail={"args": json.dumps({"model_id": f"m/{i}"})},
            )
        )
    return seqs


def _sql(engine: Engine, *statements: str) -> None:
    with engine.begin() as c:
        for s in statements:
            c.execute(text(s))


def _head(engine: Engine) -> tuple[int, str]:
    with engine.connect() as c:
        return tuple(c.execute(text("SELECT seq, last_hash FROM audit_head WHERE id = 1")).one())


# Each case tampers with a log of 6 entries and names the first seq check() must report.
def _delete_last(e: Engine) -> int:
    _sql(e, "DELETE FROM audit_log WHERE seq = 6")
    return 6


def _delete_last_two(e: Engine) -> int:
    _sql(e, "DELETE FROM audit_log WHERE seq >= 5")
    return 5


def _delete_middle(e: Engine) -> int:
    _sql(e, "DELETE FROM audit_log WHERE seq = 3")
    return 3


def _delete_middle_and_renumber(e: Engine) -> int:
    _sql(e, "DELETE FROM audit_log WHERE seq = 3")
    for seq in (4, 5, 6):
        _sql(e, f"UPDATE audit_log SET seq = {seq - 1} WHERE seq = {seq}")
    _sql(e, "UPDATE audit_head SET seq = 5")
    return 3


def _edit_detail(e: Engine) -> int:
    _sql(
        e,
        """UPDATE audit_log SET detail = '{"args": "{\\"model_id\\": \\"x/9\\"}"}' WHERE seq = 2""",
    )
    return 2


def _edit_identity(e: Engine) -> int:
    # Claiming, after the fact, that a claimed identity was authenticated.
    _sql(e, "UPDATE audit_log SET authenticated = TRUE WHERE seq = 2")
    return 2


def _edit_head_hash(e: Engine) -> int:
    _sql(e, f"UPDATE audit_head SET last_hash = '{'f' * 64}'")
    return 6


def _move_head_back(e: Engine) -> int:
    _sql(e, "UPDATE audit_head SET seq = 4")
    return 4  # entry 4's hash is not the head hash


def _reorder(e: Engine) -> int:
    # Swap entries 3 and 4 (seq is the primary key: go through a free number).
    _sql(
        e,
        "UPDATE audit_log SET seq = 1000 WHERE seq = 3",
        "UPDATE audit_log SET seq = 3 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = 1000",
    )
    return 3


def _insert_past_head(e: Engine) -> int:
    _sql(
        e,
        "INSERT INTO audit_log (seq, ts, actor, actor_kind, role, action, permission, decision,"
        " outcome, detail, prev_hash, hash, reason) VALUES (7, 't', 'x', 'human', 'r', 'a', 'p',"
        f" 'allowed', 'ok', '{{}}', '{'0' * 64}', '{'0' * 64}', '')",
    )
    return 7


def _delete_head(e: Engine) -> int:
    _sql(e, "DELETE FROM audit_head")
    return 1


TAMPER: dict[str, Callable[[Engine], int]] = {
    "delete last row": _delete_last,
    "delete last two rows": _delete_last_two,
    "delete middle row": _delete_middle,
    "delete middle row and renumber": _delete_middle_and_renumber,
    "edit a detail": _edit_detail,
    "edit the authenticated flag": _edit_identity,
    "edit the head hash": _edit_head_hash,
    "move the head back": _move_head_back,
    "reorder two rows": _reorder,
    "insert a row past the head": _insert_past_head,
    "delete the head row": _delete_head,
}


def test_intact_chain_and_head(state_db_url: str):
    log = AuditLog(get_engine(state_db_url))
    empty = log.check()
    assert empty.ok and empty.entries == 0 and empty.head_hash == GENESIS
    assert _fill(log) == [1, 2, 3, 4, 5, 6]
    result = log.check()
    assert result.ok and result.entries == 6 and result.head_seq == 6
    assert result.head_hash == log.entries(limit=1)[0]["hash"]
    assert log.verify() == (True, None)


@pytest.mark.parametrize("case", list(TAMPER))
def test_tampering_is_detected(state_db_url: str, case: str):
    engine = get_engine(state_db_url)
    log = AuditLog(engine)
    _fill(log)
    expected = TAMPER[case](engine)
    result = log.check()
    assert not result.ok and result.first_bad_seq == expected, result
    assert result.problem
    assert log.verify() == (False, expected)


def test_anchor_catches_a_rewritten_history(state_db_url: str):
    engine = get_engine(state_db_url)
    log = AuditLog(engine)
    _fill(log, 3)
    anchor = _head(engine)
    _fill(log, 2)
    assert log.check(anchor=anchor).ok
    # Rewrite entry 3 and recompute every hash after it: the chain is self-consistent again,
    # only the anchor recorded outside the database can tell.
    rows = log.entries()[::-1]
    prev = rows[1]["hash"]
    for row in rows[2:]:
        row = {**row, "prev_hash": prev}
        if row["seq"] == 3:
            row["reason"] = "rewritten"
        row["hash"] = entry_hash(row)
        prev = row["hash"]
        with engine.begin() as c:
            c.execute(
                text("UPDATE audit_log SET reason = :r, prev_hash = :p, hash = :h WHERE seq = :s"),
                {"r": row["reason"], "p": row["prev_hash"], "h": row["hash"], "s": row["seq"]},
            )
    _sql(engine, f"UPDATE audit_head SET last_hash = '{prev}'")
    assert log.check().ok
    result = log.check(anchor=anchor)
    assert not result.ok and result.first_bad_seq == 3 and "anchored" in result.problem


def test_headless_log_refuses_appends(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'state.db'}")
    log = AuditLog(engine)
    _fill(log, 2)
    _sql(engine, "DELETE FROM audit_head")
    AuditLog(engine)  # a new process must not paper over the missing head
    with pytest.raises(Conflict, match="head row is missing"):
        log.append(DANA, "x", "p", decision="allowed", outcome="ok")
    assert not log.check().ok


def test_every_row_records_identity(tmp_path):
    log = AuditLog(get_engine(f"sqlite:///{tmp_path / 'state.db'}"))
    _fill(log, 3)
    rows = {e["actor"]: e for e in log.entries()}
    assert rows["alice"]["authenticated"] is True
    assert rows["dana"]["authenticated"] is False
    assert rows["ml-engineer"]["authenticated"] is False
    assert rows["ml-engineer"]["on_behalf_of"] == "dana"


def test_concurrent_appends_never_fork_the_chain(state_db_url: str):
    log = AuditLog(get_engine(state_db_url))
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(25):
                log.append(
                    DANA, "t", "p", decision="allowed", outcome="ok", detail={"w": i, "j": j}
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = log.check()
    assert result.ok and result.entries == 200 and result.head_seq == 200
    seqs = [e["seq"] for e in log.entries(limit=1000)]
    assert sorted(seqs) == list(range(1, 201))


# Same transaction ------------------------------------------------------------------------
STATE = Table(
    "audit_test_state", MetaData(), Column("id", Integer, primary_key=True), Column("v", String(16))
)


def test_rolled_back_transaction_leaves_neither_state_nor_audit_row(state_db_url: str):
    engine = get_engine(state_db_url)
    log = AuditLog(engine)
    STATE.metadata.create_all(engine)
    _fill(log, 2)
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            conn.execute(STATE.insert().values(id=1, v="moved"))
            seq = log.append(DANA, "move", "p", decision="allowed", outcome="ok", conn=conn)
            assert seq == 3
            raise RuntimeError("crash before commit")
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(STATE)).scalar() == 0
    assert [e["seq"] for e in log.entries()] == [2, 1]
    assert _head(engine)[0] == 2 and log.check().ok
    # Committed: both, and the next seq follows without a gap.
    with engine.begin() as conn:
        conn.execute(STATE.insert().values(id=1, v="moved"))
        assert log.append(DANA, "move", "p", decision="allowed", outcome="ok", conn=conn) == 3
    with engine.connect() as c:
        assert c.execute(select(STATE.c.v)).scalar() == "moved"
    assert log.check().ok and log.entries(limit=1)[0]["action"] == "move"


def test_append_refuses_a_connection_outside_a_transaction(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'state.db'}")
    log = AuditLog(engine)
    with engine.connect() as conn, pytest.raises(InvalidInput, match="not inside a transaction"):
        log.append(DANA, "x", "p", decision="allowed", outcome="ok", conn=conn)


def test_intent_then_complete(tmp_path):
    log = AuditLog(get_engine(f"sqlite:///{tmp_path / 'state.db'}"))
    seq = log.intent(ALICE, "promote_model", "deploy:production", {"approval_id": "apr-00000001"})
    assert log.check().open_intents == [seq]
    done = log.complete(seq, ALICE, "promote_model", "deploy:production", "ok", {"revision": 4})
    row = log.entries(limit=1)[0]
    assert row["seq"] == done and row["detail"] == {"revision": 4, "intent_seq": seq}
    assert log.entries(action="promote_model")[1]["outcome"] == "intent"
    result = log.check()
    assert result.ok and result.open_intents == []
    with pytest.raises(InvalidInput):
        log.complete(seq, ALICE, "promote_model", "deploy:production", "intent")


# Filters ---------------------------------------------------------------------------------
def _args(**kw: object) -> dict:
    return {"args": json.dumps(kw)}


def test_entries_filters(state_db_url: str):
    log = AuditLog(get_engine(state_db_url))
    add = lambda who, action, detail: log.append(  # noqa: E731
        who, action, "p", decision="allowed", outcome="ok", detail=detail
    )
    s_reg = add(AGENT, "register_model", _args(name="m", run_id="a" * 32))
    s_eval = add(AGENT, "evaluate_model", _args(model_id="m/3", evaluation_dataset="d.csv"))
    s_val = add(DANA, "record_validation", _args(name="m", version="3", dataset="d.csv"))
    s_other = add(DANA, "record_validation", _args(name="m2", version="3", dataset="d.csv"))
    s_v4 = add(DANA, "record_validation", _args(name="m", version="4", dataset="d.csv"))
    s_svc = add(
        ALICE, "approvals.approve", {"model": "m", "version": "3", "approval_id": "apr-0000abcd"}
    )
    s_alias = add(DANA, "evaluate_model", _args(model_id="m@champion", evaluation_dataset="d"))
    s_roll = add(ALICE, "rollback_deployment", _args(name="m", to_version="3"))
    s_exec = add(ALICE, "promote_model", _args(approval_id="apr-0000abcd"))
    truncated = json.dumps({"name": "m", "version": "3", "notes": "x" * 3000})[:2000]
    s_cut = add(DANA, "record_validation", {"args": truncated})
    s_left = add(ALICE, "deploy.rollback", {"model": "m", "version": "2", "from_version": "3"})

    seqs = lambda **kw: [e["seq"] for e in log.entries(**kw)]  # noqa: E731
    assert seqs(model="m", version="3") == [s_left, s_cut, s_roll, s_svc, s_val, s_eval]
    assert seqs(model="m", version="3", model_level=True) == [
        s_left,
        s_cut,
        s_roll,
        s_alias,
        s_svc,
        s_val,
        s_eval,
        s_reg,
    ]
    assert s_other not in seqs(model="m") and s_v4 in seqs(model="m")
    assert seqs(model="m2") == [s_other]
    assert seqs(model="m", version="champion") == [s_alias]
    assert seqs(actor="dana") == [s_cut, s_alias, s_v4, s_other, s_val, s_eval, s_reg]
    assert seqs(actor="ml-engineer") == [s_eval, s_reg]
    assert seqs(model="m", version="3", actor="alice") == [s_left, s_roll, s_svc]
    assert seqs(model="m", version="2") == [s_left]
    assert seqs(model="m", after_seq=s_alias) == [s_left, s_cut, s_roll]
    assert seqs(action="record_validation", model="m", version="3") == [s_cut, s_val]
    assert seqs(approval_id="apr-0000abcd") == [s_exec, s_svc]
    assert seqs(model="m", version="3", limit=2) == [s_left, s_cut]
    assert seqs(model="nope") == []


# CLI -------------------------------------------------------------------------------------
def _agent(*args: str):  # noqa: ANN202
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def _home_log(rt, n: int = 6) -> AuditLog:  # noqa: ANN001
    """A home's log of ``n`` entries: the policy pinned first (as on any first use: the anchor
    file's start row and the ``policy.pin`` row), then evaluations up to ``n``."""
    log = rt.services.audit
    assert rt.services.pinned
    _fill(log, n - log.check().entries)
    assert log.check().entries == n
    return log


def test_cli_verify_intact_then_tampered(rt):
    _home_log(rt)
    res = _agent("audit", "verify", "--as", "carol")
    assert res.exit_code == 0, res.output
    head_seq, head_hash = _head(rt.services.engine)
    assert "6 entries" in res.output and head_hash in res.output
    res = _agent("audit", "verify", "--as", "carol", "--json")
    data = json.loads(res.output)
    assert res.exit_code == 0 and data["ok"] and data["head_seq"] == head_seq
    res = _agent("audit", "verify", "--as", "bob", "--anchor", f"{head_seq}:{head_hash}")
    assert res.exit_code == 0, res.output
    res = _agent("audit", "verify", "--as", "bob", "--anchor", "nonsense")
    assert isinstance(res.exception, InvalidInput)


@pytest.mark.parametrize("case", list(TAMPER))
def test_cli_verify_exits_1_on_tampering(rt, case: str):
    _home_log(rt)
    expected = TAMPER[case](rt.services.engine)
    res = _agent("audit", "verify", "--as", "carol")
    assert res.exit_code == 1, res.output
    assert f"first bad seq {expected}" in res.output and "Problem:" in res.output
    res = _agent("audit", "verify", "--as", "carol", "--json")
    data = json.loads(res.output)
    assert res.exit_code == 1 and data["first_bad_seq"] == expected and data["problem"]


def test_cli_reads_need_a_listed_person_and_write_nothing(rt):
    _home_log(rt, 3)
    res = _agent("audit", "show", "--as", "mallory")
    assert isinstance(res.exception, PermissionDenied)
    for args in (("verify",), ("show",), ("trail", "m", "1")):
        assert _agent("audit", *args, "--as", "carol").exit_code == 0
    assert rt.services.audit.check().entries == 3


def test_cli_show_filters_and_keeps_ids_whole_when_piped(rt):
    log = rt.services.audit
    long_name = "a-very-long-model-name-" + "x" * 60
    log.append(
        AGENT,
        "record_validation",
        "p",
        decision="allowed",
        outcome="ok",
        detail=_args(name=long_name, version="12", dataset="d.csv"),
    )
    log.append(
        ALICE,
        "approvals.approve",
        "p",
        decision="allowed",
        outcome="ok",
        detail={"model": "other", "version": "1", "approval_id": "apr-12345678"},
    )
    res = _agent("audit", "show", "--model", long_name, "--as", "carol")
    assert res.exit_code == 0, res.output
    assert f"{long_name} v12" in res.output and "agent ml-engineer for dana" in res.output
    assert "apr-12345678" not in res.output
    res = _agent("audit", "show", "--actor", "alice", "--json", "--as", "carol")
    (entry,) = json.loads(res.output)["entries"]
    assert entry["detail"]["approval_id"] == "apr-12345678" and entry["authenticated"] is True
    res = _agent("audit", "show", "--version", "12", "--limit", "1", "--as", "carol")
    assert "record_validation" in res.output and "claimed" in res.output
    # A reason is data, never rich markup.
    log.append(DANA, "x", "p", decision="denied", outcome="bad", reason="[bold]not markup[/bold]")
    res = _agent("audit", "show", "--limit", "1", "--as", "carol")
    assert "[bold]not markup[/bold]" in res.output
    assert "audit" in _agent("--help").output


def test_cli_trail_shows_the_approval_its_decider_and_identity(rt):
    services = rt.services
    policy = services.policy
    log = services.audit
    requester = policy.agent("ml-engineer", on_behalf_of="dana")
    log.append(
        requester,
        "register_model",
        "registry:write",
        decision="allowed",
        outcome="ok",
        detail=_args(name="m", run_id="a" * 32),
    )
    log.append(
        requester,
        "evaluate_model",
        "evaluation:run",
        decision="allowed",
        outcome="ok",
        detail=_args(model_id="m/2", evaluation_dataset="holdout.csv"),
    )
    log.append(
        policy.human("bob"),
        "record_validation",
        "validation:record",
        decision="allowed",
        outcome="ok",
        detail=_args(name="m", version="2", dataset="holdout.csv"),
    )
    log.append(
        requester,
        "get_model",
        "registry:read",
        decision="allowed",
        outcome="ok",
        detail=_args(name="m", version="2"),
    )
    log.append(
        requester,
        "record_validation",
        "validation:record",
        decision="allowed",
        outcome="ok",
        detail=_args(name="m", version="1", dataset="holdout.csv"),
    )
    evidence = {
        "candidate": {"name": "m", "version": "2"},
        "metrics": {"f1": 0.97},
        "dataset": {"path": "holdout.csv", "sha256": "d" * 64},
    }
    req = services.approvals.create("m", "2", evidence, requester)
    alice = policy.human("alice", authenticated=True)
    services.approvals.decide(
        req.id, alice, approve=True, seen_evidence_hash=req.evidence_hash, reason="metrics hold"
    )
    log.append(
        alice,
        "promote_model",
        "deploy:production",
        decision="allowed",
        outcome="ok",
        detail=_args(approval_id=req.id),
    )

    res = _agent("audit", "trail", "m", "2", "--json", "--as", "carol")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["chain"]["ok"]
    (apr,) = data["approvals"]
    assert apr["id"] == req.id and apr["status"] == "approved"
    assert apr["requested_by"] == "dana" and apr["decided_by"] == "alice"
    assert apr["decider_authenticated"] is True
    assert apr["evidence_hash"] == services.approvals.get(req.id).evidence_hash
    actions = [e["action"] for e in data["events"]]
    assert actions[:3] == ["register_model", "evaluate_model", "record_validation"]
    assert "approvals.approve" in actions and actions[-1] == "promote_model"
    assert "get_model" not in actions  # reads are left out unless --all
    assert [e["seq"] for e in data["events"]] == sorted(e["seq"] for e in data["events"])
    approve = next(e for e in data["events"] if e["action"] == "approvals.approve")
    assert approve["actor"] == "alice" and approve["authenticated"] is True
    assert approve["approval_id"] == req.id and approve["scope"] == "version"
    assert data["events"][0]["scope"] == "model"  # registration names no version
    assert all(e["authenticated"] is False for e in data["events"][:3])
    res = _agent("audit", "trail", "m", "2", "--all", "--json", "--as", "carol")
    assert "get_model" in [e["action"] for e in json.loads(res.output)["events"]]

    res = _agent("audit", "trail", "m", "2", "--as", "carol")
    assert res.exit_code == 0, res.output
    assert req.id in res.output and "alice (token)" in res.output
    assert "dana (claimed)" in res.output and "Audit chain intact" in res.output
    assert "agent ml-engineer for dana" in res.output


def test_legacy_rows_without_identity_still_verify(tmp_path):
    """A home created before the ``authenticated`` column: the column is added, old rows
    (NULL there) verify under the old hash, and new rows carry the flag."""
    engine = get_engine(f"sqlite:///{tmp_path / 'legacy.db'}")
    log = AuditLog(engine)
    _fill(log, 3)
    prev = GENESIS
    for row in log.entries()[::-1]:  # rewrite as the old code wrote them
        row = {**row, "authenticated": None, "prev_hash": prev}
        row["hash"] = prev = entry_hash(row)
        with engine.begin() as c:
            c.execute(
                text("UPDATE audit_log SET hash = :h, prev_hash = :p WHERE seq = :s"),
                {"h": row["hash"], "p": row["prev_hash"], "s": row["seq"]},
            )
    _sql(
        engine,
        "ALTER TABLE audit_log DROP COLUMN authenticated",
        f"UPDATE audit_head SET last_hash = '{prev}'",
    )
    log = AuditLog(engine)
    assert log.check().ok
    log.append(ALICE, "x", "p", decision="allowed", outcome="ok")
    assert log.check().ok
    assert [e["authenticated"] for e in log.entries()] == [True, None, None, None]
