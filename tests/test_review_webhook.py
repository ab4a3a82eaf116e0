"""``review_webhook``: the handler the control plane mounts at POST /webhooks/github. A bad or
missing X-Hub-Signature-256 is 401 and nothing happens; signed pull_request opened/synchronize
events are reviewed and the review posted (once, then updated)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from agents.review.github import GitHubClient
from agents.review.webhook import review_webhook, signature_valid
from tests.fakes.github_server import FakeGitHub, serve_fake_github
from tests.test_review_support import make_repo, scenarios

SECRET = "webhook-secret-for-tests"
SERVING = next(sc for sc in scenarios() if sc.name == "serving")


@pytest.fixture
def github_api(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    yield from serve_fake_github(monkeypatch)


def payload(action: str = "opened", number: int = 7) -> bytes:
    return json.dumps(
        {
            "action": action,
            "number": number,
            "pull_request": {"number": number, "head": {"sha": "0" * 40}},
            "repository": {"full_name": "acme/churn"},
        }
    ).encode()


def signed(body: bytes, secret: str = SECRET, event: str = "pull_request") -> dict[str, str]:
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": sig, "X-GitHub-Event": event, "X-GitHub-Delivery": "d-1"}


def call(github_api: FakeGitHub, headers: dict, body: bytes, rt=None, **kw):  # noqa: ANN001, ANN201
    gh = GitHubClient(github_api.token, base_url=github_api.base_url, trust_env=False)
    return review_webhook(
        headers,
        body,
        secret=kw.pop("secret", SECRET),
        services=rt.services if rt else None,
        dispatcher=rt.dispatcher if rt else None,
        github=gh,
        **kw,
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-GitHub-Event": "pull_request"},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-GitHub-Event": "pull_request"},
        {"X-Hub-Signature-256": "sha1=abc", "X-GitHub-Event": "pull_request"},
        signed(payload(), secret="another-secret"),
        signed(payload("closed")),  # signed for a different body
    ],
)
def test_bad_or_missing_signature_is_401_and_does_nothing(
    github_api: FakeGitHub, headers: dict, tmp_path: Path
) -> None:
    make_repo(tmp_path / "r", SERVING.change)
    status, body = call(github_api, headers, payload())
    assert status == 401 and "X-Hub-Signature-256" in body["error"]
    assert github_api.requests == []


def test_no_configured_secret_refuses_everything(github_api: FakeGitHub) -> None:
    body = payload()
    status, _ = call(github_api, signed(body, secret=""), body, secret="")
    assert status == 401 and github_api.requests == []


def test_signature_check_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"a": 1}'
    good = "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature_valid("k", body, good)
    assert not signature_valid("k", body + b" ", good)
    assert not signature_valid("k", body, good.upper())


def test_other_events_and_actions_are_ignored(github_api: FakeGitHub) -> None:
    body = payload("closed")
    assert call(github_api, signed(body), body)[0] == 202
    body = payload()
    assert call(github_api, signed(body, event="push"), body)[0] == 202
    assert call(github_api, signed(body, event="ping"), body) == (200, {"status": "pong"})
    assert github_api.requests == []
    bad = b"not json"
    assert call(github_api, signed(bad), bad)[0] == 400


def test_opened_then_synchronize_posts_one_review(
    github_api: FakeGitHub, rt, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "r", SERVING.change)
    github_api.add_pull_from_git(repo, "main", "feature")
    body = payload("opened")
    status, out = call(github_api, signed(body), body, rt, reviewer="carol")
    assert status == 200, out
    assert out["status"] == "reviewed" and out["summary"] == {"error": 2, "warning": 2, "note": 0}
    assert out["registry"] == "checked" and out["llm"] == "offline"
    assert out["review"]["created"] == len(SERVING.expected)
    body = payload("synchronize")
    status, out = call(github_api, signed(body), body, rt, reviewer="carol")
    assert status == 200 and out["review"]["created"] == 0
    assert len(github_api.pull().reviews) == 1
    # The lookups ran as the architect agent for carol, read-only tools only, and audited.
    rows = rt.services.audit.entries(actor="carol")
    assert rows and {r["action"] for r in rows} <= {
        "list_models",
        "get_model",
        "list_approvals",
        "list_validations",
    }
    assert {r["actor"] for r in rows} == {"architect"}


def test_unknown_pull_request_is_502_with_the_reason(github_api: FakeGitHub) -> None:
    body = payload(number=404)
    status, out = call(github_api, signed(body), body)
    assert status == 502 and "not found" in out["error"]
