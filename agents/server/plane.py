"""The control plane's one object: the runtime (services + dispatcher + promotion workflow),
the authenticator, the guards and the operations the REST API and the console share.

Every operation runs as the authenticated person through the dispatcher, so validation,
RBAC and audit hold exactly as at the CLI. A decision takes the CLI's path:
``decide_approval`` through the dispatcher, answered at once; ``Runtime.run_decided`` then
runs as a job on a background thread (``agents.execution``), read at
``GET /approvals/{id}/execution``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from fastapi.responses import JSONResponse

from agents.execution import JobRunner
from agents.server.auth import Authenticator, Principal
from agents.server.guards import IdempotencyStore, RateLimiter, SessionStore, fingerprint
from agents.server.metrics import ServerMetrics
from agents.server.responses import ApiError
from core.errors import ModelOpsError

if TYPE_CHECKING:
    from agents.runtime import Runtime
    from agents.supervisor import AgentSystem
    from tools.context import Services

AUDIT_READ = ("deploy:read", "approvals:read")
READ_THREADS = 2
WORKFLOWS = {
    "ml-model-evaluation": "Evaluate a model version (the evaluate_model tool's input).",
    "promotion": "Request production promotion: evidence, gates, QA validation, then human approval.",
    "mlops-deployment": "Roll out (direct, canary, blue-green, shadow) or roll back a model version.",
}


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    chat_per_minute: float = 60.0
    chat_burst: int = 10
    max_body_bytes: int = 1_000_000
    # The address people use (behind a proxy); default: the one each request came to.
    public_url: str | None = None
    # None: Secure cookies when the request came over https (proxy headers trusted).
    secure_cookies: bool | None = None
    session_hours: float = 12.0
    llm_timeout_s: float = 60.0
    llm_retries: int = 2
    max_steps: int = 8
    # Point reads (ControlPlane.lookup) on the event loop; None: when the state DB and the
    # registry view are SQLite files in this process (nothing to wait on but the CPU).
    inline_lookups: bool | None = None


class ControlPlane:
    def __init__(self, runtime: Runtime, config: ServerConfig) -> None:
        self.runtime = runtime
        self.config = config
        self.services = runtime.services
        self.dispatcher = runtime.dispatcher
        self.auth = Authenticator(self.services)
        self.metrics = ServerMetrics(self.services)
        self.idempotency = IdempotencyStore()
        self.chat_limit = RateLimiter(config.chat_per_minute, config.chat_burst)
        self.sessions = SessionStore(config.session_hours * 3600)
        self.jobs = JobRunner(runtime)
        self._agents: AgentSystem | None = None
        self._agents_lock = threading.Lock()
        # Reads other than lookups run on a few threads only: more threads than cores only
        # queue on the GIL and starve the event loop (and SQLite's busy wait sleeps); writes
        # and chat runs, which wait on other things, keep the default pool.
        self._read_slots: tuple[Any, anyio.CapacityLimiter] | None = None
        inline = config.inline_lookups
        self.inline_lookups = _in_process_stores(self.services) if inline is None else inline

    async def lookup(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A point read (a few SQL reads bounded by what exists now, not by history; no
        network): run on the event loop when the stores are SQLite in this process, else as
        ``read``.

        The hop to a thread and back cost more than such a read itself: measured at 16
        clients, 1.9 ms of server CPU per ``GET /models`` through the read threads against
        0.95 ms on the loop (benchmarks/control_plane.py). Its one write, the audit row, waits
        for SQLite's write lock like any writer; writers hold it for one short transaction."""
        if self.inline_lookups:
            return fn(*args)
        return await self.read(fn, *args)

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a read (``fn(*args)``) on the read threads."""
        loop = asyncio.get_running_loop()
        if self._read_slots is None or self._read_slots[0] is not loop:
            # A limiter belongs to one event loop (tests run the app on several).
            self._read_slots = (loop, anyio.CapacityLimiter(READ_THREADS))
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self._read_slots[1])

    def warm(self) -> None:
        """Open the stores before serving: lazy construction is not meant for many threads."""
        s = self.services
        for attr in ("policy", "thresholds", "tokens", "audit", "approvals", "validations"):
            getattr(s, attr)
        s.deployments  # noqa: B018
        s.registry_reader  # noqa: B018
        s.execution_jobs  # noqa: B018
        from tools.base import load_catalog

        load_catalog()

    @property
    def agents(self) -> AgentSystem:
        with self._agents_lock:
            if self._agents is None:
                from agents.llm import LLMConfig
                from agents.supervisor import AgentSystem

                cfg = LLMConfig.from_env(
                    settings=self.runtime.settings,
                    timeout_s=self.config.llm_timeout_s,
                    max_retries=self.config.llm_retries,
                )
                self._agents = AgentSystem(
                    self.runtime, llm_config=cfg, max_steps=self.config.max_steps
                )
            return self._agents

    def close(self) -> None:
        if self._agents is not None:
            self._agents.close()

    # Tool calls -------------------------------------------------------------------------
    def tool(self, p: Principal, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call a tool as the person; an error result becomes the matching HTTP error."""
        result = self.dispatcher.call(p.actor, name, args or {})
        self.metrics.tool_calls.labels(name, "ok" if result.ok else result.error.code).inc()
        if not result.ok:
            raise ApiError.from_result(result.error)
        return result.output or {}

    def idempotent(
        self,
        p: Principal,
        key: str | None,
        route: str,
        payload: Any,
        act: Any,
        *,
        accepted: bool = False,
    ) -> JSONResponse:
        """``accepted``: a success is 202 (recorded; what follows runs as a job)."""
        status, body, replayed = self.idempotency.run(p.name, key, fingerprint(route, payload), act)
        if accepted and status == 200:
            status = 202
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return JSONResponse(body, status_code=status, headers=headers)

    # Approvals --------------------------------------------------------------------------
    def decide(
        self, p: Principal, approval_id: str, *, approve: bool, evidence_hash: str, reason: str
    ) -> dict[str, Any]:
        """The CLI's decision path: ``decide_approval`` (every rule, audited), answered at
        once; what follows it (``Runtime.run_decided``) runs as a job on a thread."""
        decided = self.tool(
            p,
            "decide_approval",
            {
                "approval_id": approval_id,
                "approve": approve,
                "evidence_hash": evidence_hash,
                "reason": reason,
            },
        )
        job = self.services.execution_jobs.queue(approval_id, p.name)
        self.jobs.start(approval_id, p.actor)
        return {
            "approval": decided["approval"],
            "audit_head": decided.get("audit_head"),
            "execution": {
                "approval_id": approval_id,
                "state": job["state"],
                "status_url": execution_url(approval_id),
            },
            "outcome": None,
            "outcome_error": None,
        }

    def execution(self, p: Principal, approval_id: str) -> dict[str, Any]:
        """The job that follows a decision, for anyone who may read approvals. Polled twice a
        second by the console, so a read is not audited (a refusal is); a job a crashed
        process left unfinished is resumed here."""
        policy = self.services.policy
        if not policy.authorize(p.actor, "approvals:read").allowed:
            reason = f"{p.actor.describe()} may not read approvals"
            self.services.audit.append(
                p.actor,
                "approvals.execution",
                "approvals:read",
                decision="denied",
                outcome="permission_denied",
                detail={"approval_id": approval_id, "via": "control-plane"},
                reason=reason,
            )
            raise ApiError(403, "permission_denied", reason, "See policies/roles.yaml.")
        job = self.services.execution_jobs.get(approval_id)
        if job is None:
            raise ApiError(
                404,
                "not_found",
                f"no execution recorded for {approval_id}",
                f"A decision starts one: `agent approvals show {approval_id}`.",
            )
        resumed = self.jobs.resume_if_orphaned(job)
        return {**job, "resumed": resumed, "status_url": execution_url(approval_id)}

    def resume(self, p: Principal, approval_id: str) -> dict[str, Any]:
        self.tool(p, "get_approval", {"approval_id": approval_id})  # validates and authorizes
        try:
            return self.runtime.promotion.resume(approval_id, p.actor)
        except ModelOpsError as exc:
            raise ApiError.from_error(exc) from exc

    # Audit ------------------------------------------------------------------------------
    def require_audit_reader(self, p: Principal, what: str) -> None:
        """Reading the audit needs deploy:read or approvals:read (as at the CLI); a refusal
        is audited, a read is not (the log must not grow because someone looked at it)."""
        policy = self.services.policy
        if any(policy.authorize(p.actor, perm).allowed for perm in AUDIT_READ):
            return
        reason = f"{p.actor.describe()} holds neither deploy:read nor approvals:read"
        self.services.audit.append(
            p.actor,
            what,
            AUDIT_READ[0],
            decision="denied",
            outcome="permission_denied",
            detail={"via": "control-plane"},
            reason=reason,
        )
        raise ApiError(403, "permission_denied", reason, "See policies/roles.yaml.")

    def audit_verify(self, p: Principal, anchor: tuple[int, str] | None) -> dict[str, Any]:
        self.require_audit_reader(p, "audit.verify")
        return self.services.audit.check(anchor=anchor).model_dump()

    def audit_trail(
        self, p: Principal, model: str, version: str, include_reads: bool = False
    ) -> dict[str, Any]:
        from policies.audit_trail import build_trail

        self.require_audit_reader(p, "audit.trail")
        catalog = self.dispatcher.catalog

        def is_read(entry: dict[str, Any]) -> bool:
            tool = catalog.get(entry["action"])
            return tool is not None and tool.side_effect == "read"

        s = self.services
        return build_trail(
            s.audit, s.approvals, model, version, skip=None if include_reads else is_read
        )

    # Models -----------------------------------------------------------------------------
    def alias_history(self, p: Principal, name: str) -> list[dict[str, Any]]:
        """Where the aliases pointed over time, oldest first: ``champion`` mirrors production,
        so each production revision that served one version at 100 % moved it there (with
        the approval behind it); ``challenger`` moves by ``set_challenger`` (audit log)."""
        try:
            revisions = self.tool(p, "get_deployment", {"name": name, "environment": "production"})[
                "history"
            ]
        except ApiError as exc:
            if exc.status != 404:
                raise
            revisions = []  # never deployed: the champion alias never moved
        history: list[dict[str, Any]] = []
        for r in reversed(revisions):
            weights = r["weights"]
            if len(weights) == 1 and next(iter(weights.values())) >= 100:
                history.append(
                    {
                        "alias": "champion",
                        "version": next(iter(weights)),
                        "at": str(r["at"]),
                        "by": r["actor"],
                        "approval_id": r["approval_id"],
                        "cause": f"revision {r['revision']} ({r['action']})",
                    }
                )
        for e in self.services.audit.entries(
            action="set_challenger", model=name, decision="allowed"
        ):
            if e["outcome"] != "ok":
                continue
            history.append(
                {
                    "alias": "challenger",
                    "version": str(e["detail"].get("version", "")),
                    "at": str(e["ts"]),
                    "by": e["actor"],
                    "approval_id": None,
                    "cause": f"set_challenger (audit seq {e['seq']})",
                }
            )
        history.sort(key=lambda h: h["at"])
        return history

    # Workflows --------------------------------------------------------------------------
    def run_workflow(self, p: Principal, name: str, data: dict[str, Any]) -> dict[str, Any]:
        if name == "ml-model-evaluation":
            return self.tool(p, "evaluate_model", data)
        if name == "promotion":
            return self.tool(p, "request_promotion", data)
        if name == "mlops-deployment":
            from agents.deployment_workflow import run_deployment_workflow

            try:
                return run_deployment_workflow(self.dispatcher, p.actor, data)
            except ModelOpsError as exc:
                raise ApiError.from_error(exc) from exc
        raise ApiError(404, "not_found", f"no workflow named {name!r}", ", ".join(WORKFLOWS))


def execution_url(approval_id: str) -> str:
    return f"/approvals/{approval_id}/execution"


def _in_process_stores(services: Services) -> bool:
    """True when a point read waits on nothing but this process's CPU: the state DB is a
    SQLite file and the registry is read through the SQL view of MLflow's SQLite file."""
    from core.registry_view import RegistryView

    return services.engine.dialect.name == "sqlite" and isinstance(
        services.registry_reader, RegistryView
    )
