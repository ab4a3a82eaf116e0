"""The CLI's server mode (``agent --server URL …`` / ``MODELOPS_SERVER``): the tool calls a CLI
command makes go to the control plane's REST API with the person's token, and come back as
the same tool outputs, so every command renders exactly as embedded. Server errors come back
as the same ModelOpsError (message, hint, exit status). Imports httpx only.

Covered: models list/show, approvals list/show/validate/approve/reject/resume, deploy status,
deploy rollout advance/abort, deploy rollback, audit verify/trail, eval show, workflow run
ml-model-evaluation|promotion (docs/control-plane.md). Anything else says it runs embedded
only.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from core.errors import ExternalServiceError, InvalidInput, PermissionDenied, error_from_code

JOB_POLL_S = 0.25
JOB_WAIT_S = 300.0

TIMEOUT_S = float(os.environ.get("MODELOPS_SERVER_TIMEOUT", "330"))
EMBEDDED_ONLY_HINT = "Run it embedded: drop --server and unset MODELOPS_SERVER."


def _q(value: str) -> str:
    return quote(str(value), safe="")


# tool -> (method, path template, query keys, body keys); path fields come from the args.
_ROUTES: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...]]] = {
    "list_models": ("GET", "/models", (), ()),
    "get_model": ("GET", "/models/{name}", ("version",), ()),
    "get_evaluation": ("GET", "/evaluations/{evaluation_id}", (), ()),
    "list_approvals": ("GET", "/approvals", ("status",), ()),
    "get_approval": ("GET", "/approvals/{approval_id}", (), ()),
    "validate_approval": ("POST", "/approvals/{approval_id}/validate", (), ()),
    "list_deployments": ("GET", "/deployments", ("environment",), ()),
    "get_deployment": ("GET", "/deployments/{name}", ("environment",), ()),
    "advance_rollout": (
        "POST",
        "/deployments/{name}/rollout/advance",
        (),
        ("environment", "max_error_rate", "min_requests", "wait_seconds", "reason"),
    ),
    "abort_rollout": ("POST", "/deployments/{name}/rollout/abort", (), ("environment", "reason")),
    "rollback_deployment": (
        "POST",
        "/deployments/{name}/rollback",
        (),
        ("environment", "to_version", "reason"),
    ),
}
_WORKFLOW_TOOLS = {"evaluate_model": "ml-model-evaluation", "request_promotion": "promotion"}


@dataclass
class RemoteActor:
    """The person the server resolves from the token; the name is fetched when needed."""

    client: RemoteClient
    claimed: str | None = None
    _me: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def me(self) -> dict[str, Any]:
        if self._me is None:
            self._me = self.client.whoami()
        return self._me

    @property
    def name(self) -> str:
        return self.me["name"]

    @property
    def role(self) -> str:
        return self.me["role"]

    def describe(self) -> str:
        return f"{self.name} ({self.role})"

    def __str__(self) -> str:
        return self.name


class _RemotePromotion:
    def __init__(self, client: RemoteClient) -> None:
        self.client = client

    def resume(self, approval_id: str, actor: Any = None) -> dict[str, Any]:
        return self.client.request("POST", f"/approvals/{_q(approval_id)}/resume", idempotent=True)


class RemoteClient:
    """Stands in for the runtime in server mode (``common.runtime``); see the module doc."""

    remote = True

    def __init__(self, url: str, token: str, *, transport: Any = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "modelops-agent-cli"},
            timeout=TIMEOUT_S,
            transport=transport,
        )
        self._decided: dict[str, dict[str, Any]] = {}
        self.promotion = _RemotePromotion(self)

    @classmethod
    def from_cli(cls, url: str) -> RemoteClient:
        from agents.cli.identity import read_cli_token
        from policies.tokens import TOKEN_HINT

        if not url.startswith(("http://", "https://")):
            raise InvalidInput(
                f"--server {url!r} is not an http(s) URL",
                hint="e.g. --server http://127.0.0.1:8080",
            )
        token, _ = read_cli_token()
        if not token:
            raise PermissionDenied(
                "server mode needs your personal token: none in MODELOPS_TOKEN or the token file",
                hint=TOKEN_HINT,
            )
        return cls(url, token)

    def close(self) -> None:
        self._http.close()

    # What the CLI calls ---------------------------------------------------------------
    def human(self, claimed: str | None) -> RemoteActor:
        """The token's person; a different ``--as`` name is refused as embedded mode does."""
        actor = RemoteActor(self, claimed)
        if claimed and claimed != actor.name:
            raise PermissionDenied(
                f"the token belongs to {actor.name}, but --as/MODELOPS_USER says {claimed!r}",
                hint="Drop --as (and MODELOPS_USER) when you use a personal token; it names you.",
            )
        return actor

    def whoami(self) -> dict[str, Any]:
        return self.request("GET", "/whoami")

    def call_tool(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        if tool == "decide_approval":
            return self._decide(args)
        if tool in _WORKFLOW_TOOLS:
            return self.request(
                "POST",
                f"/workflows/{_WORKFLOW_TOOLS[tool]}/run",
                json={"input": args},
                idempotent=True,
            )
        route = _ROUTES.get(tool)
        if route is None:
            raise InvalidInput(
                f"this command (tool {tool}) is not available in server mode",
                hint=EMBEDDED_ONLY_HINT,
            )
        method, template, query_keys, body_keys = route
        names = [part[1:-1] for part in template.split("/") if part.startswith("{")]
        path = template.format(**{n: _q(args[n]) for n in names})
        params = {k: args[k] for k in query_keys if args.get(k) is not None}
        body = {k: args[k] for k in body_keys if args.get(k) is not None}
        out = self.request(
            method,
            path,
            params=params or None,
            json=body if method == "POST" else None,
            idempotent=method == "POST",
        )
        if tool == "get_model":
            out.pop("alias_history", None)  # server-only detail: the CLI shows the tool output
        return out

    def _decide(self, args: dict[str, Any]) -> dict[str, Any]:
        verb = "approve" if args["approve"] else "reject"
        out = self.request(
            "POST",
            f"/approvals/{_q(args['approval_id'])}/{verb}",
            json={"evidence_hash": args["evidence_hash"], "reason": args.get("reason", "")},
            idempotent=True,
        )
        self._decided[args["approval_id"]] = out
        return {"approval": out["approval"], "audit_head": out.get("audit_head")}

    def run_decided(
        self, approval_id: str, decider: Any = None, listener: Any = None
    ) -> dict[str, Any]:
        """What followed the decision: the server runs it as a job; follow its steps (each
        new one goes to ``listener(step, detail)``) until it is done or failed."""
        out = self._decided.pop(approval_id, None)
        if out is None:
            raise InvalidInput(f"no decision on {approval_id} was made through this client")
        url = (out.get("execution") or {}).get("status_url") or (
            f"/approvals/{_q(approval_id)}/execution"
        )
        seen = 0
        deadline = time.monotonic() + JOB_WAIT_S
        while True:
            job = self.request("GET", url)
            for s in job["steps"][seen:]:
                if listener is not None:
                    listener(s["step"], s["detail"])
            seen = len(job["steps"])
            if job["state"] == "failed":
                e = job["error"] or {}
                raise error_from_code(
                    e.get("code", "internal"), e.get("message", "failed"), e.get("hint", "")
                )
            if job["state"] == "done":
                return job["outcome"] or {}
            if time.monotonic() >= deadline:
                raise ExternalServiceError(
                    f"the execution of {approval_id} is still {job['state']} after "
                    f"{JOB_WAIT_S:g} s",
                    hint=f"Follow it: `agent approvals show {approval_id}`.",
                )
            time.sleep(JOB_POLL_S)

    def audit_check(self, anchor: tuple[int, str] | None) -> dict[str, Any]:
        params = {"anchor": f"{anchor[0]}:{anchor[1]}"} if anchor else None
        return self.request("GET", "/audit/verify", params=params)

    def audit_trail(self, model: str, version: str, include_reads: bool) -> dict[str, Any]:
        return self.request(
            "GET",
            f"/audit/trail/{_q(model)}/{_q(version)}",
            params={"all": str(include_reads).lower()},
        )

    def __getattr__(self, name: str) -> Any:
        if name in ("services", "dispatcher", "settings"):
            raise InvalidInput(
                "this command is not available in server mode", hint=EMBEDDED_ONLY_HINT
            )
        raise AttributeError(name)

    # HTTP -----------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = False,
    ) -> Any:
        import httpx

        headers = {"Idempotency-Key": uuid.uuid4().hex} if idempotent else {}
        attempts = 2 if idempotent or method == "GET" else 1
        for attempt in range(attempts):
            try:
                resp = self._http.request(method, path, params=params, json=json, headers=headers)
                break
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                # Safe to send again: a GET, or a POST with the same Idempotency-Key.
                if attempt + 1 < attempts:
                    continue
                raise ExternalServiceError(
                    f"cannot reach the control plane at {self.url}: {exc}",
                    hint="Is `agent serve` running there? Check --server / MODELOPS_SERVER.",
                ) from exc
            except httpx.HTTPError as exc:
                raise ExternalServiceError(
                    f"the control plane at {self.url} did not answer: {exc}",
                    hint="Is `agent serve` running there? Check --server / MODELOPS_SERVER.",
                ) from exc
        if resp.status_code >= 400:
            raise _error(resp)
        return resp.json()


def _error(resp: Any) -> Exception:
    try:
        err = resp.json()["error"]
        return error_from_code(
            "permission_denied" if err["code"] == "unauthenticated" else err["code"],
            err["message"],
            err.get("hint", ""),
        )
    except (ValueError, KeyError, TypeError):
        return ExternalServiceError(
            f"the control plane answered HTTP {resp.status_code}: {resp.text[:300]}"
        )
