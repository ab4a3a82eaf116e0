"""GitHub through githubkit: read a pull request (files, patches, contents), keep one review
with inline comments in sync across runs, and upload SARIF to code scanning.

The base URL is configurable (GitHub Enterprise: ``https://HOST/api/v3``); the token comes
from ``GITHUB_TOKEN``. Responses are read as plain JSON, so a server that adds or omits
optional fields still works; request bodies are validated by githubkit against GitHub's schema.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.review.diff import ChangedFile, parse_diff
from agents.review.findings import Finding, fingerprints
from agents.review.render import (
    FINDING_MARKER_RE,
    FOLLOWUP_MARKER,
    REVIEW_MARKER,
    comment_body,
    untrusted,
)
from core.errors import ExternalServiceError, InvalidInput, NotFound, PermissionDenied

TOKEN_ENV = "GITHUB_TOKEN"
API_URL_ENV = "GITHUB_API_URL"
DEFAULT_PER_FILE_CAP = 5
_TARGET = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]{0,38})/([A-Za-z0-9._-]{1,100})#([0-9]{1,9})$")
_PAGE = 100
_MAX_FILES = 3000  # GitHub lists at most 3000 files of a pull request


@dataclass(frozen=True)
class PullRef:
    owner: str
    repo: str
    number: int

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.repo}#{self.number}"

    @property
    def merge_ref(self) -> str:
        return f"refs/pull/{self.number}/merge"


def parse_target(text: str) -> PullRef:
    m = _TARGET.match(text.strip())
    if not m or m.group(2) in (".", ".."):
        raise InvalidInput(
            f"--github expects OWNER/REPO#NUMBER, got {text!r}", hint="e.g. --github acme/churn#42"
        )
    return PullRef(m.group(1), m.group(2), int(m.group(3)))


def from_actions_event(env: dict[str, str] | None = None) -> PullRef | None:
    """The pull request of a GitHub Actions run (``GITHUB_EVENT_PATH``), or None outside one."""
    env = dict(os.environ) if env is None else env
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        event = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the GitHub event file GITHUB_EVENT_PATH: {exc}") from exc
    pr = event.get("pull_request") if isinstance(event, dict) else None
    if not isinstance(pr, dict) or not isinstance(pr.get("number"), int):
        raise InvalidInput(
            "the GitHub Actions event is not a pull request event",
            hint="Run the review workflow on `pull_request` events (see docs/review.md).",
        )
    full = env.get("GITHUB_REPOSITORY") or (event.get("repository") or {}).get("full_name", "")
    return parse_target(f"{full}#{pr['number']}")


class GitHubClient:
    """The few GitHub REST calls the review bot makes."""

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        trust_env: bool = True,
    ) -> None:
        token = token if token is not None else os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise PermissionDenied(
                f"no GitHub token: set {TOKEN_ENV}",
                hint="In GitHub Actions pass `GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` in env; "
                "locally use a token that can read the repository (and write pull requests).",
            )
        base_url = base_url or os.environ.get(API_URL_ENV, "").strip() or None
        if base_url and not re.match(r"^https?://", base_url):
            raise InvalidInput(
                f"invalid GitHub API URL {base_url!r}", hint="e.g. https://HOST/api/v3"
            )
        from githubkit import GitHub

        kwargs: dict[str, Any] = {
            "timeout": timeout_s,
            "http_cache": False,  # a re-run must see the review it left a moment ago
            "trust_env": trust_env,
        }
        if base_url:
            kwargs["base_url"] = base_url.rstrip("/") + "/"
        self.gh = GitHub(token, **kwargs)
        self.base_url = base_url or "(github default)"

    # Low level -----------------------------------------------------------------------------
    def _do(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from githubkit.exception import RequestError, RequestFailed, RequestTimeout

        try:
            resp = fn(*args, **kwargs)
        except RequestFailed as exc:
            status = exc.response.status_code
            detail = _message(exc.response)
            if status == 404:
                raise NotFound(f"GitHub: {what}: not found ({detail})") from exc
            if status in (401, 403):
                raise PermissionDenied(
                    f"GitHub refused {what} ({status}: {detail})",
                    hint=f"Check {TOKEN_ENV}: it needs contents:read, pull-requests:write and, "
                    "for SARIF, security-events:write.",
                ) from exc
            if status == 422:
                raise InvalidInput(f"GitHub rejected {what}: {detail}") from exc
            raise ExternalServiceError(f"GitHub failed {what} ({status}: {detail})") from exc
        except (RequestTimeout, RequestError) as exc:
            raise ExternalServiceError(
                f"cannot reach GitHub at {self.base_url} for {what}: {exc}",
                hint=f"Check the network and {API_URL_ENV} (GitHub Enterprise: https://HOST/api/v3).",
            ) from exc
        return resp

    def _json(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        resp = self._do(what, fn, *args, **kwargs)
        return resp.json() if resp.content else None

    # Reading ------------------------------------------------------------------------------
    def pull(self, pr: PullRef) -> dict[str, Any]:
        return self._json(
            f"reading {pr.slug}", self.gh.rest.pulls.get, pr.owner, pr.repo, pr.number
        )

    def pages(self, what: str, fn: Any, *args: Any, limit: int = _MAX_FILES) -> list[Any]:
        """Every item of a paginated list endpoint (``per_page``/``page``), up to ``limit``."""
        out: list[Any] = []
        page = 1
        while len(out) < limit:
            batch = self._json(what, fn, *args, per_page=_PAGE, page=page)
            out += batch or []
            if not batch or len(batch) < _PAGE:
                break
            page += 1
        return out[:limit]

    def pull_files(self, pr: PullRef) -> list[dict[str, Any]]:
        return self.pages(
            f"listing the files of {pr.slug}",
            self.gh.rest.pulls.list_files,
            pr.owner,
            pr.repo,
            pr.number,
        )

    def content(self, pr: PullRef, path: str, ref: str) -> str | None:
        from githubkit.exception import RequestFailed

        try:
            resp = self.gh.rest.repos.get_content(pr.owner, pr.repo, path, ref=ref)
        except RequestFailed:
            return None
        data = resp.json()
        if not isinstance(data, dict) or data.get("encoding") != "base64":
            return None
        try:
            return base64.b64decode(data.get("content", "")).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    def listing(self, pr: PullRef, directory: str, ref: str) -> list[str] | None:
        from githubkit.exception import RequestFailed

        try:
            resp = self.gh.rest.repos.get_content(pr.owner, pr.repo, directory or "", ref=ref)
        except RequestFailed:
            return None
        data = resp.json()
        return sorted(i["name"] for i in data if "name" in i) if isinstance(data, list) else None

    def viewer_login(self) -> str | None:
        """Whose token this is; None for installation tokens (GitHub Actions), which may not
        call GET /user."""
        from githubkit.exception import GitHubException

        try:
            return self.gh.rest.users.get_authenticated().json().get("login")
        except GitHubException:
            return None

    # Writing ------------------------------------------------------------------------------
    def upload_sarif(
        self, pr: PullRef, payload_b64: str, commit_sha: str, ref: str
    ) -> dict[str, Any]:
        data = {
            "commit_sha": commit_sha,
            "ref": ref,
            "sarif": payload_b64,
            "tool_name": "modelops-review",
        }
        return (
            self._json(
                f"uploading SARIF to {pr.owner}/{pr.repo}",
                self.gh.rest.code_scanning.upload_sarif,
                pr.owner,
                pr.repo,
                data=data,
            )
            or {}
        )


class PullContents:
    """A pull request's new side from the contents API at its head commit."""

    def __init__(self, client: GitHubClient, pr: PullRef, head_sha: str) -> None:
        self.client, self.pr, self.head = client, pr, head_sha

    def new_text(self, path: str) -> str | None:
        return self.client.content(self.pr, path, self.head)

    def old_text(self, path: str) -> str | None:
        return None  # rebuilt from the new text and the patch: the PR's own merge base

    def new_listing(self, directory: str) -> list[str] | None:
        return self.client.listing(self.pr, "" if directory == "." else directory, self.head)


def pull_diff(files: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """A unified diff from the PR files' patches; files GitHub gives no patch for are noted."""
    parts, notes = [], []
    for f in files:
        path, old = f["filename"], f.get("previous_filename") or f["filename"]
        patch = f.get("patch")
        if patch is None:
            notes.append(f"{path}: GitHub shows no patch (binary or too large); not reviewed")
            continue
        src = "/dev/null" if f.get("status") == "added" else f"a/{old}"
        dst = "/dev/null" if f.get("status") == "removed" else f"b/{path}"
        parts.append(
            f"diff --git a/{old} b/{path}\n--- {src}\n+++ {dst}\n{patch.rstrip(chr(10))}\n"
        )
    return "".join(parts), notes


def read_pull(
    client: GitHubClient, pr: PullRef
) -> tuple[dict[str, Any], list[ChangedFile], PullContents, str, list[str]]:
    info = client.pull(pr)
    head = info["head"]["sha"]
    text, notes = pull_diff(client.pull_files(pr))
    contents = PullContents(client, pr, head)
    files = parse_diff(text, contents) if text else []
    return info, files, contents, text, notes


# One review, kept in sync -----------------------------------------------------------------
def plan_comments(
    files: list[ChangedFile], findings: list[Finding], cap: int
) -> tuple[list[tuple[Finding, str]], list[Finding]]:
    """(findings to comment inline with their fingerprints, the rest for the summary):
    inline only on lines the diff shows, at most ``cap`` per file."""
    lines = {cf.path: cf.commentable for cf in files}
    det = [f for f in findings if f.deterministic]
    llm = [f for f in findings if not f.deterministic]
    inline, rest = [], []
    per_file: Counter[str] = Counter()
    for group in (det, llm):
        for f, fp in zip(group, fingerprints(group), strict=True):
            if f.line in lines.get(f.path, set()) and per_file[f.path] < cap:
                per_file[f.path] += 1
                inline.append((f, fp))
            else:
                rest.append(f)
    return inline, rest


def overflow_section(rest: list[Finding]) -> list[str]:
    if not rest:
        return []
    out = [
        "",
        f"{len(rest)} finding(s) not commented inline (outside the diff's lines, or over "
        "the per-file cap):",
    ]
    for f in rest[:50]:
        tag = f"`{f.rule}`" if f.deterministic else "LLM-written"
        out.append(f"- {tag} `{f.path}:{f.line}` {untrusted(f.message, 300)}")
    if len(rest) > 50:
        out.append(f"- … and {len(rest) - 50} more (see the SARIF / --json output)")
    return out


def sync_review(
    client: GitHubClient,
    pr: PullRef,
    head_sha: str,
    body: str,
    inline: list[tuple[Finding, str]],
) -> dict[str, Any]:
    """Create the review, or update the one an earlier run left: its body in place, each
    comment whose finding remains updated, each whose finding is gone deleted, and new
    findings' comments added in one follow-up review. Never a duplicate comment."""
    gh = client.gh.rest.pulls
    me = client.viewer_login()
    reviews = client.pages(
        f"listing reviews of {pr.slug}", gh.list_reviews, pr.owner, pr.repo, pr.number
    )
    ours = [
        r
        for r in reviews
        if REVIEW_MARKER in (r.get("body") or "")
        and (me is None or (r.get("user") or {}).get("login") == me)
    ]
    main = next((r for r in ours if FOLLOWUP_MARKER not in (r.get("body") or "")), None)
    full_body = f"{body}\n{REVIEW_MARKER}"
    wanted = {fp: (f, comment_body(f, fp)) for f, fp in inline}
    if main is None:
        created = client._json(
            f"creating a review on {pr.slug}",
            gh.create_review,
            pr.owner,
            pr.repo,
            pr.number,
            data={
                "commit_id": head_sha,
                "body": full_body,
                "event": "COMMENT",
                "comments": [_comment(f, text) for f, text in wanted.values()],
            },
        )
        return {
            "review_id": created["id"],
            "created": len(wanted),
            "updated": 0,
            "deleted": 0,
            "kept": 0,
        }
    client._do(
        f"updating review {main['id']}",
        gh.update_review,
        pr.owner,
        pr.repo,
        pr.number,
        main["id"],
        data={"body": full_body},
    )
    existing: dict[str, dict[str, Any]] = {}
    duplicates: list[dict[str, Any]] = []
    for r in ours:
        for c in client.pages(
            "listing review comments",
            gh.list_comments_for_review,
            pr.owner,
            pr.repo,
            pr.number,
            r["id"],
        ):
            m = FINDING_MARKER_RE.search(c.get("body") or "")
            if m and m.group(1) in existing:
                duplicates.append(c)  # e.g. left by a run that crashed half-way
            elif m:
                existing[m.group(1)] = c
    stats = {"review_id": main["id"], "created": 0, "updated": 0, "deleted": 0, "kept": 0}
    new = []
    for fp, (f, text) in wanted.items():
        c = existing.pop(fp, None)
        if c is not None and c.get("line") == f.line and c.get("path") == f.path:
            if c.get("body") != text:
                client._do(
                    "updating a review comment",
                    gh.update_review_comment,
                    pr.owner,
                    pr.repo,
                    c["id"],
                    data={"body": text},
                )
                stats["updated"] += 1
            else:
                stats["kept"] += 1
            continue
        if c is not None:  # the finding moved: its old comment goes, a new one is placed
            client._do(
                "deleting a moved review comment",
                gh.delete_review_comment,
                pr.owner,
                pr.repo,
                c["id"],
            )
            stats["deleted"] += 1
        new.append((f, text))
    for c in [*existing.values(), *duplicates]:  # fixed since the last run, or doubled
        client._do(
            "deleting a resolved review comment",
            gh.delete_review_comment,
            pr.owner,
            pr.repo,
            c["id"],
        )
        stats["deleted"] += 1
    if new:
        client._json(
            f"adding new comments on {pr.slug}",
            gh.create_review,
            pr.owner,
            pr.repo,
            pr.number,
            data={
                "commit_id": head_sha,
                "body": f"{len(new)} new finding(s) since the last run; the summary above is kept "
                f"up to date.\n{REVIEW_MARKER}\n{FOLLOWUP_MARKER}",
                "event": "COMMENT",
                "comments": [_comment(f, text) for f, text in new],
            },
        )
        stats["created"] = len(new)
    return stats


def _comment(f: Finding, text: str) -> dict[str, Any]:
    return {"path": f.path, "line": f.line, "side": "RIGHT", "body": text}


def _message(resp: Any) -> str:
    try:
        data = resp.json()
    except ValueError:
        return (resp.text or "")[:200]
    return str(data.get("message", data))[:300] if isinstance(data, dict) else str(data)[:300]
