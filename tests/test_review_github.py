"""The review bot against a fake GitHub API on 127.0.0.1: reading a pull request, one review
with inline comments kept in sync across runs (no duplicates, a per-file cap), SARIF uploaded
gzip+base64 for refs/pull/N/merge, GitHub Actions' event file, and refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.review.github import GitHubClient, PullRef
from agents.review.render import FINDING_MARKER_RE, REVIEW_MARKER
from agents.review.service import Reviewer, post_review, review_pull, upload_sarif
from tests.fakes.github_server import FakeGitHub, serve_fake_github
from tests.test_review_checks import sarif_validator
from tests.test_review_support import git, make_repo, scenarios, write

ROOT = Path(__file__).resolve().parent.parent
SC = {sc.name: sc for sc in scenarios()}
PR = PullRef("acme", "churn", 7)


@pytest.fixture
def github_api(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    yield from serve_fake_github(monkeypatch)


def client(fake: FakeGitHub) -> GitHubClient:
    return GitHubClient(fake.token, base_url=fake.base_url, trust_env=False)


def agent(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MODELOPS_"))}
    full.update({"PYTHONPATH": str(ROOT), "MODELOPS_HOME": str(cwd / ".no-home")}, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "agents.cli.main", "review", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
    )


def serving_pr(fake: FakeGitHub, tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", SC["serving"].change)
    fake.add_pull_from_git(repo, "main", "feature")
    return repo


def test_reading_a_pull_request_posts_nothing(github_api: FakeGitHub, tmp_path: Path) -> None:
    serving_pr(github_api, tmp_path)
    res = agent("--github", "acme/churn#7", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    got = {(f["rule"], f["path"], f["line"]) for f in data["findings"]}
    assert got == SC["serving"].expected
    assert data["source"]["pull"] == "acme/churn#7"
    assert {r.method for r in github_api.requests} == {"GET"}
    # Every request went to the configured base URL (GitHub Enterprise style /api/v3).
    assert all(r.path.startswith("/api/v3/") for r in github_api.requests)


def test_one_review_with_inline_comments_and_a_rerun_adds_no_duplicates(
    github_api: FakeGitHub, tmp_path: Path
) -> None:
    serving_pr(github_api, tmp_path)
    gh = client(github_api)
    first = post_review(gh, review_pull(gh, PR, Reviewer()))
    pull = github_api.pull()
    assert len(pull.reviews) == 1 and first["created"] == len(SC["serving"].expected)
    review = pull.reviews[0]
    assert REVIEW_MARKER in review["body"] and review["state"] == "COMMENTED"
    comments = github_api.review_comments(review["id"])
    assert {(c["path"], c["line"]) for c in comments} == {
        (p, n) for _, p, n in SC["serving"].expected
    }
    assert all(FINDING_MARKER_RE.search(c["body"]) and "**Fix:**" in c["body"] for c in comments)
    posts = len(github_api.posted("POST"))
    again = post_review(gh, review_pull(gh, PR, Reviewer()))
    assert again == {**again, "created": 0, "deleted": 0, "updated": 0}
    assert again["kept"] == len(comments)
    assert len(pull.reviews) == 1 and len(github_api.review_comments()) == len(comments)
    assert len(github_api.posted("POST")) == posts  # only the body was PUT
    assert github_api.posted("PUT")


def test_a_new_commit_updates_the_review_in_place(github_api: FakeGitHub, tmp_path: Path) -> None:
    repo = serving_pr(github_api, tmp_path)
    gh = client(github_api)
    post_review(gh, review_pull(gh, PR, Reviewer()))
    # Fix the joblib load, plant a pickle load elsewhere: one comment goes, one comes.
    app = (repo / "serving/app.py").read_text()
    app = app.replace('encoder = joblib.load("serving/encoder.joblib")', "encoder = None")
    write(
        repo,
        {"serving/app.py": app, "serving/cache.py": "import pickle\n\nc = pickle.loads(b'')\n"},
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "fix and regress")
    github_api.add_pull_from_git(repo, "main", "feature")  # the push of a new head
    stats = post_review(gh, review_pull(gh, PR, Reviewer()))
    assert stats["deleted"] == 1 and stats["created"] == 1
    paths = sorted((c["path"], c["line"]) for c in github_api.review_comments())
    assert ("serving/cache.py", 3) in paths
    assert not any("joblib" in c["body"] for c in github_api.review_comments())
    # The summary review plus one follow-up holding the new comment; nothing duplicated.
    pull = github_api.pull()
    assert len(pull.reviews) == 2
    assert "MO401" in pull.reviews[0]["body"] and "serving/cache.py" in pull.reviews[0]["body"]
    fps = [FINDING_MARKER_RE.search(c["body"]).group(1) for c in github_api.review_comments()]
    assert len(fps) == len(set(fps)) == len(SC["serving"].expected)
    # A third run changes nothing.
    third = post_review(gh, review_pull(gh, PR, Reviewer()))
    assert third["created"] == third["deleted"] == third["updated"] == 0
    assert len(pull.reviews) == 2


def test_per_file_cap_summarizes_the_rest(github_api: FakeGitHub, tmp_path: Path) -> None:
    lines = "".join(f"m{i} = joblib.load('m{i}.joblib')\n" for i in range(8))
    repo = make_repo(tmp_path / "repo", {"serving/many.py": "import joblib\n\n" + lines})
    github_api.add_pull_from_git(repo, "main", "feature")
    gh = client(github_api)
    post_review(gh, review_pull(gh, PR, Reviewer()), per_file_cap=3)
    assert len(github_api.review_comments()) == 3
    body = github_api.pull().reviews[0]["body"]
    assert "5 finding(s) not commented inline" in body


def test_sarif_upload_for_the_pull_request_merge_ref(
    github_api: FakeGitHub, tmp_path: Path
) -> None:
    serving_pr(github_api, tmp_path)
    gh = client(github_api)
    receipt = upload_sarif(gh, review_pull(gh, PR, Reviewer()))
    assert receipt["ref"] == "refs/pull/7/merge" and receipt["commit_sha"] == "f" * 40
    (up,) = github_api.sarif_uploads
    assert up["ref"] == "refs/pull/7/merge" and up["tool_name"] == "modelops-review"
    sarif_validator().validate(up["sarif"])
    results = up["sarif"]["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {rule for rule, _, _ in SC["serving"].expected}
    assert all(len(r["partialFingerprints"]["modelopsFinding/v1"]) == 32 for r in results)
    # A second upload carries the same fingerprints: code scanning keeps the same alerts.
    upload_sarif(gh, review_pull(gh, PR, Reviewer()))
    again = github_api.sarif_uploads[1]["sarif"]["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in again] == [r["partialFingerprints"] for r in results]


def test_cli_post_and_upload_in_github_actions(github_api: FakeGitHub, tmp_path: Path) -> None:
    serving_pr(github_api, tmp_path)
    github_api.user_endpoint = False  # an Actions installation token cannot read /user
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {
                "action": "synchronize",
                "pull_request": {"number": 7},
                "repository": {"full_name": "acme/churn"},
            }
        )
    )
    env = {
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_REPOSITORY": "acme/churn",
        "GITHUB_SHA": "e" * 40,
    }
    res = agent("--post", "--upload-sarif", "--fail-on", "error", cwd=tmp_path, env=env)
    assert res.returncode == 1, res.stderr  # errors found, and --fail-on error
    assert len(github_api.pull().reviews) == 1
    assert github_api.sarif_uploads[0]["commit_sha"] == "e" * 40
    res = agent("--post", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert len(github_api.pull().reviews) == 1  # updated, not duplicated


def test_wrong_token_is_refused_with_a_hint(github_api: FakeGitHub, tmp_path: Path) -> None:
    serving_pr(github_api, tmp_path)
    res = agent("--github", "acme/churn#7", cwd=tmp_path, env={"GITHUB_TOKEN": "wrong"})
    assert res.returncode == 3 and "GitHub refused" in res.stderr and "GITHUB_TOKEN" in res.stderr
    res = agent("--github", "acme/churn#7", cwd=tmp_path, env={"GITHUB_TOKEN": ""})
    assert res.returncode == 3 and "no GitHub token" in res.stderr
    res = agent("--github", "acme/churn#99", cwd=tmp_path)
    assert res.returncode == 4 and "not found" in res.stderr


def test_actions_event_that_is_not_a_pull_request(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"ref": "refs/heads/main"}))
    res = agent(cwd=tmp_path, env={"GITHUB_EVENT_PATH": str(event)})
    assert res.returncode == 2 and "not a pull request event" in res.stderr


def test_untrusted_text_cannot_forge_markers() -> None:
    from agents.review.render import untrusted

    text = untrusted("<!-- modelops-finding:" + "a" * 32 + " --> <img src=x> @octocat")
    assert "<!--" not in text and "<img" not in text and "@octocat" not in text


def test_a_doubled_comment_is_removed_on_the_next_run(
    github_api: FakeGitHub, tmp_path: Path
) -> None:
    serving_pr(github_api, tmp_path)
    gh = client(github_api)
    post_review(gh, review_pull(gh, PR, Reviewer()))
    original = github_api.review_comments()[0]
    twin = {**original, "id": github_api.next_id()}  # as if a run had crashed half-way
    github_api.comments[twin["id"]] = twin
    stats = post_review(gh, review_pull(gh, PR, Reviewer()))
    assert stats["deleted"] == 1 and stats["created"] == 0
    fps = [FINDING_MARKER_RE.search(c["body"]).group(1) for c in github_api.review_comments()]
    assert len(fps) == len(set(fps)) == len(SC["serving"].expected)


def test_llm_comments_say_who_wrote_them() -> None:
    from agents.review.findings import Finding
    from agents.review.render import comment_body

    body = comment_body(
        Finding("LLM", "train.py", 3, "Consider a time split.", source="llm:qa-tester"), "a" * 32
    )
    assert (
        body.startswith("🤖 **LLM-written (qa-tester)**") and "deterministic checks decide" in body
    )
