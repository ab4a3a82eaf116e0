"""``POST /webhooks/github`` as a plain function the control plane mounts:
``review_webhook(headers, body, secret=..., services=..., dispatcher=...) -> (status, json)``.

The signature (``X-Hub-Signature-256``, HMAC-SHA256 of the raw body with the configured
secret) is checked first, in constant time; a bad or missing one is 401 and nothing else
happens: no parsing, no GitHub call, no lookup. Then only ``pull_request`` events with action
``opened`` or ``synchronize`` are reviewed and the review posted (created or updated).

The reviewer person for registry lookups is configuration, never taken from the payload:
``reviewer=`` or ``MODELOPS_REVIEW_AS``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from core.errors import ModelOpsError

REVIEW_ACTIONS = frozenset({"opened", "synchronize"})
REVIEWER_ENV = "MODELOPS_REVIEW_AS"
MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
log = logging.getLogger(__name__)


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode(errors="replace"))


def review_webhook(
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str,
    services: Any,
    dispatcher: Any,
    github: Any = None,
    reviewer: str | None = None,
    upload_sarif: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Verify, then review a pull request event. ``github``: a GitHubClient (default: from
    GITHUB_TOKEN / GITHUB_API_URL)."""
    h = {k.lower(): v for k, v in headers.items()}
    if len(body) > MAX_BODY_BYTES or not signature_valid(
        secret, body, h.get("x-hub-signature-256")
    ):
        return 401, {"error": "invalid or missing X-Hub-Signature-256"}
    event = h.get("x-github-event", "")
    if event == "ping":
        return 200, {"status": "pong"}
    if event != "pull_request":
        return 202, {"status": "ignored", "reason": f"event {event or '(none)'} is not reviewed"}
    try:
        payload = json.loads(body)
    except ValueError:
        return 400, {"error": "the body is not JSON"}
    action = payload.get("action") if isinstance(payload, dict) else None
    if action not in REVIEW_ACTIONS:
        return 202, {"status": "ignored", "reason": f"action {action!r} is not reviewed"}
    from agents.review.github import GitHubClient, parse_target
    from agents.review.service import post_review, review_pull
    from agents.review.service import upload_sarif as upload

    try:
        full_name = payload["repository"]["full_name"]
        pr = parse_target(f"{full_name}#{payload['pull_request']['number']}")
    except (KeyError, TypeError, ModelOpsError):
        return 400, {
            "error": "not a pull_request payload (repository.full_name, pull_request.number)"
        }
    try:
        client = github or GitHubClient()
        rv = _reviewer(services, dispatcher, reviewer)
        pull = review_pull(client, pr, rv)
        posted = post_review(client, pull)
        out: dict[str, Any] = {
            "status": "reviewed",
            "pull": pr.slug,
            "action": action,
            "summary": pull.result.counts(),
            "review": posted,
            "registry": pull.result.registry.get("status"),
            "llm": pull.result.llm.get("status"),
        }
        if upload_sarif:
            out["sarif"] = upload(client, pull)
    except ModelOpsError as exc:
        log.warning("review of %s failed: %s", pr.slug, exc.message)
        return 502, {"error": exc.message, "hint": exc.hint, "pull": pr.slug}
    return 200, out


def _reviewer(services: Any, dispatcher: Any, name: str | None):  # noqa: ANN202
    from agents.review.service import Reviewer, llm_client_from_env

    settings = getattr(services, "settings", None)
    name = name or os.environ.get(REVIEWER_ENV, "").strip() or getattr(settings, "user", None)
    rv = Reviewer(dispatcher=dispatcher, llm_client=llm_client_from_env(settings))
    if services is None or not name:
        rv.skipped = f"no reviewer configured ({REVIEWER_ENV})"
        return rv
    rv.policy = services.policy
    rv.person = services.policy.human(name)  # server configuration, not a claim from a request
    return rv
