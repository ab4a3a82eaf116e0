"""Registry-aware review: references in the diff looked up through the dispatcher with
read-only tools, as the architect agent for the reviewer, with the version's facts quoted;
the registry, approvals and validations are unchanged afterwards."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from agents.cli.main import main
from agents.review.checks_registry import READ_TOOLS
from agents.review.service import Reviewer, review_git
from policies.approvals import ApprovalRow, ApprovalStatus
from tests.test_review_support import make_repo, prepare_registry, registry_scenario
from tools.base import CATALOG

pytestmark = pytest.mark.slow


@pytest.fixture
def registry(rt, bc_data, trained) -> str:
    return prepare_registry(rt, bc_data, trained)


def snapshot(rt, name: str) -> dict:
    versions = rt.services.registry.list_versions(name)
    return {
        "versions": [(v.version, sorted(v.aliases), v.tags) for v in versions],
        "models": rt.services.registry.list_models(),
        "validations": [
            r.id for v in versions for r in rt.services.validations.for_version(name, v.version)
        ],
        "approvals": [(a.id, a.status) for a in rt.services.approvals.list()],
    }


def test_references_are_looked_up_read_only_with_facts(rt, registry: str, tmp_path: Path) -> None:
    sc = registry_scenario(registry)
    repo = make_repo(tmp_path / "r", sc.change)
    before = snapshot(rt, registry)
    seq = max((e["seq"] for e in rt.services.audit.entries(limit=1)), default=0)
    carol = rt.services.policy.human("carol")
    rv = Reviewer(dispatcher=rt.dispatcher, policy=rt.services.policy, person=carol)
    result = review_git(repo, "main..feature", rv)
    found = {(f.rule, f.path, f.line) for f in result.findings}
    assert found == sc.expected, (sorted(found - sc.expected), sorted(sc.expected - found))
    by_rule = {f.rule: f for f in result.findings}
    assert "implementation_status='PLANNED'" in by_rule["MO902"].message
    assert "accuracy_claim='none yet'" in by_rule["MO902"].message
    assert (
        "FAILED" in by_rule["MO903"].message
        and "f1 0.6100 below minimum" in by_rule["MO903"].message
    )
    assert "outside the approval workflow" in by_rule["MO904"].message
    assert result.registry["status"] == "checked"
    assert result.registry["actor"] == "agent architect (Architect) for carol"
    # Nothing changed, and every call was an audited read by the architect agent for carol.
    assert snapshot(rt, registry) == before
    rows = rt.services.audit.entries(after_seq=seq)
    assert rows and {r["actor"] for r in rows} == {"architect"}
    assert {r["on_behalf_of"] for r in rows} == {"carol"}
    assert {r["action"] for r in rows} <= READ_TOOLS
    assert all(CATALOG[r["action"]].side_effect == "read" for r in rows)
    assert {r["decision"] for r in rows} == {"allowed"}


def test_superseded_champion_approval(rt, registry: str, tmp_path: Path) -> None:
    dana = rt.services.policy.human("dana")
    approvals = rt.services.approvals
    old = approvals.create(registry, "1", {}, dana)
    new = approvals.create(registry, "2", {}, dana)
    now = datetime.now(UTC)
    with Session(rt.services.engine) as s, s.begin():
        s.execute(
            update(ApprovalRow)
            .where(ApprovalRow.id == old.id)
            .values(status=ApprovalStatus.SUPERSEDED, executed_at=now, decided_by="alice")
        )
        s.execute(
            update(ApprovalRow)
            .where(ApprovalRow.id == new.id)
            .values(status=ApprovalStatus.EXECUTED, executed_at=now, decided_by="alice")
        )
    text = f'URI = "models:/{registry}@champion"\n'
    repo = make_repo(tmp_path / "s", {"serving/uri.py": text})
    rv = Reviewer(rt.dispatcher, rt.services.policy, rt.services.policy.human("carol"))
    (f,) = review_git(repo, "main..feature", rv).findings
    assert f.rule == "MO904" and f.line == 1
    assert old.id in f.message and new.id in f.message and "superseded" in f.message


def test_cli_registry_lookups_need_a_person(
    rt, registry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo(tmp_path / "c", registry_scenario(registry).change)
    args = ["review", "--git", "main..feature", "--repo", str(repo), "--json"]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--as", "carol"])
    assert exc.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["registry"]["status"] == "checked"
    assert {f["rule"] for f in data["findings"]} == {"MO901", "MO902", "MO903", "MO904"}
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["registry"]["status"] == "skipped" and "--as NAME" in data["registry"]["message"]
    assert data["findings"] == []
    with pytest.raises(SystemExit) as exc:
        main([*args, "--as", "mallory"])
    assert exc.value.code == 3
    assert "not a person listed" in capsys.readouterr().err


def test_a_person_without_registry_read_gets_a_refusal_not_a_crash(
    rt, registry: str, tmp_path: Path
) -> None:
    from agents.review.checks_registry import RegistryLookup
    from agents.review.diff import GitContents, git_range, parse_diff
    from agents.review.engine import review

    repo = make_repo(tmp_path / "d", registry_scenario(registry).change)
    text, base, head = git_range(repo, "main..feature")
    contents = GitContents(repo, base, head)
    stranger = rt.services.policy.agent("architect", "carol").model_copy(
        update={"on_behalf_of": "nobody"}
    )
    result = review(
        parse_diff(text, contents),
        contents,
        source={},
        lookup=RegistryLookup(rt.dispatcher, stranger),
    )
    assert result.registry["status"] == "refused" and result.findings == []
