"""A fake GitHub REST API on 127.0.0.1 (a real HTTP server thread) with the endpoints the review
bot uses: a pull request, its files, file contents, reviews, review comments and the
code-scanning SARIF upload. It records every request and what was posted, refuses a wrong
token (401), and answers 422 for an inline comment on a line the diff does not show, as GitHub
does."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

API_PREFIX = "/api/v3"
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def commentable_lines(patch: str) -> set[int]:
    """New-side line numbers a patch shows (its own small parser, independent of unidiff)."""
    out: set[int] = set()
    new = 0
    for line in patch.splitlines():
        m = _HUNK.match(line)
        if m:
            new = int(m.group(1))
            continue
        if line.startswith("-") or line.startswith("\\"):
            continue
        if line.startswith("+") or line.startswith(" ") or line == "":
            out.add(new)
            new += 1
    return out


@dataclass
class Pull:
    owner: str
    repo: str
    number: int
    head_sha: str
    base_sha: str
    merge_sha: str | None
    files: list[dict[str, Any]]
    contents: dict[str, str]  # path -> text at head
    reviews: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class FakeGitHub:
    def __init__(
        self, token: str = "ghs_fake_token_for_tests", login: str = "modelops-bot"
    ) -> None:
        self.token = token
        self.login = login
        self.user_endpoint = True  # False: GET /user is 403, like an Actions installation token
        self.pulls: dict[tuple[str, str, int], Pull] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        self.sarif_uploads: list[dict[str, Any]] = []
        self.requests: list[Recorded] = []
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> FakeGitHub:
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{API_PREFIX}"

    # Set-up --------------------------------------------------------------------------------
    def add_pull(self, pull: Pull) -> Pull:
        """Open a pull request, or (same number again) push a new head to it: its reviews and
        their comments stay, as on GitHub."""
        key = (pull.owner, pull.repo, pull.number)
        if key in self.pulls:
            pull.reviews = self.pulls[key].reviews
        self.pulls[key] = pull
        return pull

    def add_pull_from_git(
        self, repo: Path, base: str, head: str, *, slug: str = "acme/churn", number: int = 7
    ) -> Pull:
        """A pull request whose files and contents come from two commits of a local repo
        (called again after a new commit: the push of a new head)."""
        owner, name = slug.split("/")

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
            ).stdout

        base_sha, head_sha = git("rev-parse", base).strip(), git("rev-parse", head).strip()
        files = []
        for row in git("diff", "--name-status", "-M", base_sha, head_sha).splitlines():
            status, *paths = row.split("\t")
            path = paths[-1]
            kind = {"A": "added", "D": "removed", "M": "modified"}.get(status[0], "renamed")
            patch = git("diff", "-M", "--no-color", base_sha, head_sha, "--", *paths)
            body = patch.split("\n@@", 1)
            entry: dict[str, Any] = {
                "sha": head_sha,
                "filename": path,
                "status": kind,
                "patch": "@@" + body[1].rstrip("\n") if len(body) == 2 else None,
            }
            if kind == "renamed":
                entry["previous_filename"] = paths[0]
            files.append(entry)
        contents = {
            p: git("show", f"{head_sha}:{p}")
            for p in git("ls-tree", "-r", "--name-only", head_sha).splitlines()
        }
        return self.add_pull(
            Pull(owner, name, number, head_sha, base_sha, "f" * 40, files, contents)
        )

    # Views for tests -----------------------------------------------------------------------
    def pull(self, slug: str = "acme/churn", number: int = 7) -> Pull:
        owner, name = slug.split("/")
        return self.pulls[(owner, name, number)]

    def review_comments(self, review_id: int | None = None) -> list[dict[str, Any]]:
        return [
            c
            for c in self.comments.values()
            if review_id is None or c["pull_request_review_id"] == review_id
        ]

    def posted(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method]

    def next_id(self) -> int:
        return next(self._ids)


def _page(items: list[Any], query: dict[str, list[str]]) -> list[Any]:
    per = int(query.get("per_page", ["30"])[0])
    page = int(query.get("page", ["1"])[0])
    return items[(page - 1) * per : page * per]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, fake: FakeGitHub) -> None:
        self.fake = fake
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    @property
    def fake(self) -> FakeGitHub:
        return self.server.fake

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # Plumbing ------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        path = unquote(url.path)
        query = parse_qs(url.query)
        fake = self.fake
        with fake._lock:
            fake.requests.append(Recorded(method, path, query, body))
        auth = self.headers.get("Authorization", "")
        if auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
            return self._send(401, {"message": "Bad credentials"})
        if not path.startswith(API_PREFIX):
            return self._send(404, {"message": "Not Found"})
        path = path[len(API_PREFIX) :]
        with fake._lock:
            status, payload = self._route(method, path, query, body)
        self._send(status, payload)

    def _send(self, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    # Routes --------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        fake = self.fake
        if path == "/user" and method == "GET":
            if not fake.user_endpoint:
                return 403, {"message": "Resource not accessible by integration"}
            return 200, {"login": fake.login, "type": "Bot"}
        m = re.match(r"^/repos/([^/]+)/([^/]+)(/.*)$", path)
        if not m:
            return 404, {"message": "Not Found"}
        owner, repo, rest = m.groups()
        if rest == "/code-scanning/sarifs" and method == "POST":
            return self._sarif(owner, repo, body)
        if rest.startswith("/contents"):
            return self._contents(owner, repo, rest[len("/contents") :].lstrip("/"), query)
        if rest.startswith("/pulls/comments/"):
            return self._comment(method, int(rest.rsplit("/", 1)[1]), body)
        pm = re.match(r"^/pulls/(\d+)(/.*)?$", rest)
        if not pm:
            return 404, {"message": "Not Found"}
        pull = fake.pulls.get((owner, repo, int(pm.group(1))))
        if pull is None:
            return 404, {"message": "Not Found"}
        sub = pm.group(2) or ""
        if sub == "" and method == "GET":
            return 200, {
                "number": pull.number,
                "state": "open",
                "head": {"sha": pull.head_sha, "ref": "feature"},
                "base": {"sha": pull.base_sha, "ref": "main"},
                "merge_commit_sha": pull.merge_sha,
            }
        if sub == "/files" and method == "GET":
            return 200, _page(pull.files, query)
        if sub == "/reviews" and method == "GET":
            return 200, _page(pull.reviews, query)
        if sub == "/reviews" and method == "POST":
            return self._create_review(pull, body)
        rm = re.match(r"^/reviews/(\d+)(/comments)?$", sub)
        if rm:
            review = next((r for r in pull.reviews if r["id"] == int(rm.group(1))), None)
            if review is None:
                return 404, {"message": "Not Found"}
            if rm.group(2) and method == "GET":
                return 200, _page(fake.review_comments(review["id"]), query)
            if method == "PUT":
                if review["user"]["login"] != fake.login:
                    return 403, {"message": "You can only update your own reviews"}
                review["body"] = body["body"]
                return 200, review
        return 404, {"message": f"no fake route {method} {rest}"}

    def _create_review(self, pull: Pull, body: dict[str, Any]) -> tuple[int, Any]:
        fake = self.fake
        if body.get("commit_id") not in (None, pull.head_sha):
            return 422, {"message": "commit_id is not the head of the pull request"}
        files = {f["filename"]: f for f in pull.files}
        for c in body.get("comments") or []:
            f = files.get(c["path"])
            if f is None or c["line"] not in commentable_lines(f.get("patch") or ""):
                return 422, {
                    "message": "Unprocessable Entity",
                    "errors": [f"Line could not be resolved: {c['path']}:{c['line']}"],
                }
        review = {
            "id": fake.next_id(),
            "user": {"login": fake.login},
            "body": body.get("body", ""),
            "state": "COMMENTED" if body.get("event") == "COMMENT" else "PENDING",
            "commit_id": pull.head_sha,
        }
        pull.reviews.append(review)
        for c in body.get("comments") or []:
            cid = fake.next_id()
            fake.comments[cid] = {
                "id": cid,
                "pull_request_review_id": review["id"],
                "path": c["path"],
                "line": c["line"],
                "side": c.get("side", "RIGHT"),
                "body": c["body"],
                "commit_id": pull.head_sha,
                "user": {"login": fake.login},
            }
        return 200, review

    def _comment(self, method: str, cid: int, body: Any) -> tuple[int, Any]:
        c = self.fake.comments.get(cid)
        if c is None:
            return 404, {"message": "Not Found"}
        if method == "PATCH":
            c["body"] = body["body"]
            return 200, c
        if method == "DELETE":
            del self.fake.comments[cid]
            return 204, None
        return 404, {"message": "Not Found"}

    def _contents(self, owner: str, repo: str, path: str, query: dict) -> tuple[int, Any]:
        ref = query.get("ref", [""])[0]
        pull = next(
            (p for p in self.fake.pulls.values() if (p.owner, p.repo) == (owner, repo)), None
        )
        if pull is None or ref not in (pull.head_sha, ""):
            return 404, {"message": "Not Found"}
        if path in pull.contents:
            text = pull.contents[path]
            return 200, {
                "type": "file",
                "encoding": "base64",
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "content": base64.b64encode(text.encode()).decode(),
            }
        prefix = f"{path}/" if path else ""
        names = sorted(
            {p[len(prefix) :].split("/", 1)[0] for p in pull.contents if p.startswith(prefix)}
        )
        if not names:
            return 404, {"message": "Not Found"}
        return 200, [{"name": n, "path": prefix + n, "type": "file"} for n in names]

    def _sarif(self, owner: str, repo: str, body: dict[str, Any]) -> tuple[int, Any]:
        if not re.fullmatch(r"[0-9a-f]{40}", body.get("commit_sha", "")):
            return 422, {"message": "commit_sha must be a 40-character SHA"}
        if not str(body.get("ref", "")).startswith("refs/"):
            return 422, {"message": "ref must be a fully qualified ref"}
        raw = base64.b64decode(body["sarif"])
        if len(raw) > 10 * 1024 * 1024:
            return 413, {"message": "SARIF upload is too large"}
        sarif = json.loads(gzip.decompress(raw))
        upload_id = f"sarif-{self.fake.next_id()}"
        self.fake.sarif_uploads.append(
            {
                "owner": owner,
                "repo": repo,
                "ref": body["ref"],
                "commit_sha": body["commit_sha"],
                "tool_name": body.get("tool_name"),
                "sarif": sarif,
                "id": upload_id,
            }
        )
        url = f"{self.fake.base_url}/repos/{owner}/{repo}/code-scanning/sarifs/{upload_id}"
        return 202, {"id": upload_id, "url": url}


def serve_fake_github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    """A started fake GitHub with GITHUB_TOKEN / GITHUB_API_URL pointing at it (for a
    fixture: ``yield from serve_fake_github(monkeypatch)``)."""
    with FakeGitHub() as server:
        monkeypatch.setenv("GITHUB_TOKEN", server.token)
        monkeypatch.setenv("GITHUB_API_URL", server.base_url)
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.delenv(var, raising=False)
        yield server


@pytest.fixture
def fake_github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    yield from serve_fake_github(monkeypatch)
