"""The audit head also lives outside the state DB: a consistent rewrite of the log and its head
row (what anyone with DB access can compute) fails verification against the anchor file, as do
deleted newest rows and a deleted anchor; lines follow commits, never rolled-back rows."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update

from core.state import get_engine
from policies.audit import AuditEntry, AuditHead, AuditLog
from policies.audit_check import entry_hash
from policies.rbac import Actor, ActorKind
from tests import test_server_support as support
from tests.test_policy_pinning import agent
from tests.test_server_support import bearer

# The control-plane fixtures (tests/test_server_support.py).
app, client, tokens = support.app, support.client, support.tokens

ALICE = Actor(name="alice", kind=ActorKind.HUMAN, role="Engineer")


def make_log(tmp_path: Path, n: int = 5) -> tuple[AuditLog, Path]:
    anchor = tmp_path / "anchor.log"
    log = AuditLog(get_engine(f"sqlite:///{tmp_path / 'state.db'}"), anchor)
    for i in range(n):
        log.append(ALICE, f"act.{i}", "registry:write", decision="allowed", outcome="ok")
    return log, anchor


def rewrite_consistently(log: AuditLog, edit: Any) -> None:
    """What an attacker with write access to the state DB does: change rows with ``edit``
    (row dict -> row dict), then recompute every hash and link after it, and the head."""
    t = AuditEntry.__table__
    with log.engine.begin() as c:
        rows = [dict(r) for r in c.execute(select(t).order_by(t.c.seq)).mappings()]
        prev = "0" * 64
        for row in rows:
            row = edit(dict(row))
            row["prev_hash"] = prev
            row["hash"] = entry_hash(row)
            c.execute(update(t).where(t.c.seq == row["seq"]).values(**row))
            prev = row["hash"]
        c.execute(
            update(AuditHead.__table__)
            .where(AuditHead.__table__.c.id == 1)
            .values(seq=rows[-1]["seq"], last_hash=prev)
        )


def lines(anchor: Path) -> list[tuple[int, str]]:
    return [(int(s), h) for s, h in (ln.split() for ln in anchor.read_text().splitlines())]


def test_each_committed_append_writes_its_head_line(tmp_path):
    log, anchor = make_log(tmp_path, 3)
    t = AuditEntry.__table__
    with log.engine.connect() as c:
        chain = [(r.seq, r.hash) for r in c.execute(select(t.c.seq, t.c.hash).order_by(t.c.seq))]
    assert lines(anchor) == chain  # seq 1 is audit.anchor_started, then the three appends
    assert log.entries(action="audit.anchor_started")[0]["seq"] == 1
    result = log.check()
    assert result.ok and result.anchor_lines == 4 and result.anchor_newest_seq == 4
    assert "anchor file" in result.compared and "all match" in result.compared


def test_a_consistent_rewrite_passes_the_chain_but_fails_on_the_anchor(tmp_path):
    log, anchor = make_log(tmp_path)

    def forge(row: dict) -> dict:
        if row["seq"] == 3:
            row["actor"] = "mallory"
        return row

    rewrite_consistently(log, forge)
    # The chain and head alone are fooled (this is the attack) ...
    assert AuditLog(log.engine).check().ok
    # ... the anchor file is not.
    result = log.check()
    assert not result.ok and result.first_bad_seq == 3
    assert "anchor file" in result.problem and "rewritten" in result.problem


def test_deleted_newest_rows_with_a_fixed_head_fail(tmp_path):
    log, anchor = make_log(tmp_path)
    t = AuditEntry.__table__
    with log.engine.begin() as c:
        c.execute(delete(t).where(t.c.seq >= 5))
        last = c.execute(select(t.c.hash).where(t.c.seq == 4)).scalar()
        c.execute(update(AuditHead.__table__).values(seq=4, last_hash=last))
    assert AuditLog(log.engine).check().ok  # the head row alone is fooled
    result = log.check()
    assert not result.ok and result.first_bad_seq == 5
    assert "records entry 6" in result.problem and "ends at entry 4" in result.problem


def test_a_deleted_or_emptied_anchor_fails_and_is_not_recreated(tmp_path):
    log, anchor = make_log(tmp_path)
    anchor.unlink()
    result = log.check()
    assert not result.ok and result.first_bad_seq == 1 and "missing" in result.problem
    # A new process on this log does not start a fresh anchor over the loss, and appends do
    # not recreate the file.
    again = AuditLog(log.engine, anchor)
    again.append(ALICE, "more", "registry:write", decision="allowed", outcome="ok")
    assert not anchor.exists()
    assert not again.check().ok
    anchor.write_text("")
    assert "empty" in again.check().problem


def test_a_replaced_anchor_lacking_its_start_line_fails(tmp_path):
    log, anchor = make_log(tmp_path)
    kept = anchor.read_text().splitlines(keepends=True)
    anchor.write_text("".join(kept[2:]))  # the first lines cut off
    result = log.check()
    assert not result.ok and result.first_bad_seq == 1 and "lacks the line" in result.problem


def test_a_rolled_back_transaction_writes_no_line_and_a_committed_one_does(tmp_path):
    log, anchor = make_log(tmp_path, 1)
    before = lines(anchor)
    with pytest.raises(RuntimeError), log.engine.begin() as conn:
        log.append(
            ALICE, "rolled.back", "registry:write", decision="allowed", outcome="ok", conn=conn
        )
        raise RuntimeError("the caller's change failed")
    assert lines(anchor) == before
    with log.engine.begin() as conn:
        seq = log.append(
            ALICE, "kept", "registry:write", decision="allowed", outcome="ok", conn=conn
        )
        assert lines(anchor) == before  # not before the commit
    assert [s for s, _ in lines(anchor)] == [s for s, _ in before] + [seq]
    # A savepoint rolled back drops its line; the outer commit keeps the rest.
    with log.engine.begin() as conn:
        nested = conn.begin_nested()
        log.append(
            ALICE, "in.savepoint", "registry:write", decision="allowed", outcome="ok", conn=conn
        )
        nested.rollback()
        last = log.append(
            ALICE, "after", "registry:write", decision="allowed", outcome="ok", conn=conn
        )
    assert lines(anchor)[-1][0] == last and len(lines(anchor)) == len(before) + 2
    assert log.check().ok


def _append_many(db: str, anchor: str, n: int) -> None:
    log = AuditLog(get_engine(db), Path(anchor))
    for i in range(n):
        log.append(ALICE, f"proc.{i}", "registry:write", decision="allowed", outcome="ok")


@pytest.mark.slow
def test_two_processes_appending_at_once_verify(tmp_path):
    log, anchor = make_log(tmp_path, 1)
    db = f"sqlite:///{tmp_path / 'state.db'}"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(db, str(anchor), 100)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    result = log.check()
    assert result.ok, result.problem
    assert result.entries == 202 and result.anchor_lines == 202


def test_an_old_log_starts_anchoring_from_its_head_and_says_so(tmp_path):
    engine = get_engine(f"sqlite:///{tmp_path / 'state.db'}")
    old = AuditLog(engine)  # before the anchor existed
    for i in range(3):
        old.append(ALICE, f"old.{i}", "registry:write", decision="allowed", outcome="ok")
    anchor = tmp_path / "anchor.log"
    log = AuditLog(engine, anchor)
    start = log.entries(action="audit.anchor_started")
    assert [r["seq"] for r in start] == [4] and start[0]["detail"]["entries_before"] == 3
    result = log.check()
    assert result.ok and result.anchor_started_seq == 4
    assert "Anchoring started at entry 4" in result.compared
    assert AuditLog(engine, anchor).entries(action="audit.anchor_started") == start  # once


def test_cli_verify_names_what_it_compared_and_fails_on_a_rewrite(home, capsys):
    from core.settings import load_settings
    from tools.context import Services

    s = Services(load_settings())
    for i in range(3):
        s.audit.append(ALICE, f"cli.{i}", "registry:write", decision="allowed", outcome="ok")
    rc, out, err = agent(capsys, "audit", "verify", "--as", "carol")
    assert rc == 0, err
    assert "anchor file" in out and "all match" in out and str(home / "audit-anchor.log") in out

    def forge(row: dict) -> dict:
        if row["action"] == "cli.1":
            row["reason"] = "nothing happened"
        return row

    rewrite_consistently(s.audit, forge)
    rc, out, _ = agent(capsys, "audit", "verify", "--as", "carol", "--json")
    data = json.loads(out)
    assert rc == 1 and not data["ok"] and "anchor file" in data["problem"]


def test_a_decision_prints_the_audit_head_for_the_deciders_records(home, capsys):
    from core.settings import load_settings
    from policies.approvals import ROLLBACK
    from tools.context import Services

    s = Services(load_settings())
    requester = s.policy.agent("ml-engineer", on_behalf_of="dana")
    req = s.approvals.create("m", "2", {"why": "test"}, requester, action=ROLLBACK)
    rc, out, err = agent(
        capsys, "approvals", "reject", req.id, "--as", "alice", "--evidence-hash",
        req.evidence_hash, "--reason", "not now", "--json",
    )  # fmt: skip
    assert rc == 0, err
    # --json is JSON Lines: the decision first (with the head), then the execution's events.
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert events[0]["event"] == "decision"
    head = events[0]["audit_head"]
    rows = s.audit.entries(action="approvals.reject")
    assert rows and head["seq"] >= rows[0]["seq"]
    # The head printed verifies as an anchor now, and names the decision's place in the log.
    rc, _, err = agent(
        capsys, "audit", "verify", "--as", "carol", "--anchor", f"{head['seq']}:{head['hash']}"
    )
    assert rc == 0, err
    req2 = s.approvals.create("m", "3", {"why": "test"}, requester, action=ROLLBACK)
    rc, out, err = agent(
        capsys, "approvals", "reject", req2.id, "--as", "alice", "--evidence-hash",
        req2.evidence_hash,
    )  # fmt: skip
    assert rc == 0, err
    assert "audit head: seq" in out and "agent audit verify --anchor" in out


def test_the_api_decision_response_carries_the_audit_head(rt, client, tokens):
    from policies.approvals import ROLLBACK

    s = rt.services
    req = s.approvals.create("m", "2", {"why": "test"}, s.policy.human("dana"), action=ROLLBACK)
    body = {"evidence_hash": req.evidence_hash, "reason": "not now"}
    r = client.post(f"/approvals/{req.id}/reject", json=body, headers=bearer(tokens["bob"]))
    assert r.status_code == 202, r.text  # recorded now; any execution runs as a job
    head = r.json()["audit_head"]
    decided = s.audit.entries(action="approvals.reject")[0]
    assert head["seq"] >= decided["seq"] and len(head["hash"]) == 64
    assert s.audit.check(anchor=(head["seq"], head["hash"])).ok
