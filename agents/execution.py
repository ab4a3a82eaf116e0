"""What runs after a decision, as a job: ``run_job`` claims the approval's job row, runs
``Runtime.run_decided`` (the promotion workflow's executor, or an approved rollback) with
every executor step written to the row and passed to a listener, and records the outcome.

The CLI runs a job in its own process and prints the steps; the control plane runs it on a
background thread and answers the decision at once (``JobRunner``). The job row is a record
of progress; re-running the idempotent executor is what resumes an interrupted job.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.errors import ModelOpsError
from core.execution_jobs import process_owner
from core.progress import reporting

if TYPE_CHECKING:
    from agents.runtime import Runtime
    from policies.rbac import Actor

log = logging.getLogger(__name__)
Listener = Callable[[str, dict[str, Any]], None]
# A job another process left unfinished and silent this long is taken as orphaned: its
# longest silent stage is the gateway start plus health wait (well under this).
ORPHAN_AFTER_S = 90.0


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def decider(runtime: Runtime, approval_id: str) -> Actor:
    """The person whose recorded decision a resumed job acts on (from the approval row)."""
    req = runtime.services.approvals.get(approval_id)
    return runtime.services.policy.human(
        req.decided_by, authenticated=bool(req.decider_authenticated)
    )


def run_job(
    runtime: Runtime,
    approval_id: str,
    actor: Actor,
    *,
    listener: Listener | None = None,
    owner: str | None = None,
    resume: bool = False,
) -> dict[str, Any] | None:
    """Run the decided approval's job now; None when it is finished or someone else took it.

    A ``ModelOpsError`` marks the job failed and propagates (the CLI exits with its code);
    any other exception marks it failed too, then propagates (a bug is not swallowed)."""
    jobs = runtime.services.execution_jobs
    if not jobs.claim(approval_id, owner or process_owner(), resume=resume):
        return None

    def on_step(step: str, detail: dict[str, Any]) -> None:
        detail = _jsonable(detail)
        jobs.step(approval_id, step, detail)
        if listener is not None:
            listener(step, detail)

    try:
        with reporting(on_step):
            out = runtime.run_decided(approval_id, actor)
    except ModelOpsError as exc:
        jobs.fail(approval_id, exc.to_dict())
        raise
    except Exception as exc:
        jobs.fail(approval_id, {"code": "internal", "message": f"{type(exc).__name__}: {exc}"})
        raise
    out = _jsonable(out)
    jobs.finish(approval_id, out)
    return out


class JobRunner:
    """The control plane's background execution: one thread per running job, and the
    resumption of jobs a crashed process left behind (at start-up and on a status read)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.owner = process_owner()
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, approval_id: str, actor: Actor, *, resume: bool = False) -> None:
        with self._lock:
            alive = self._threads.get(approval_id)
            if alive is not None and alive.is_alive():
                return
            t = threading.Thread(
                target=self._run,
                args=(approval_id, actor, resume),
                name=f"job-{approval_id}",
                daemon=True,
            )
            self._threads[approval_id] = t
            t.start()

    def _run(self, approval_id: str, actor: Actor, resume: bool) -> None:
        try:
            run_job(self.runtime, approval_id, actor, owner=self.owner, resume=resume)
        except ModelOpsError as exc:
            log.warning("execution of %s failed: %s", approval_id, exc.message)
        except Exception:
            log.exception("execution of %s failed", approval_id)

    def running_here(self, approval_id: str) -> bool:
        with self._lock:
            t = self._threads.get(approval_id)
            return t is not None and t.is_alive()

    def wait(self, approval_id: str, timeout: float) -> None:
        with self._lock:
            t = self._threads.get(approval_id)
        if t is not None:
            t.join(timeout)

    def is_orphan(self, job: dict[str, Any]) -> bool:
        """Unfinished, and nobody is running it: not a live thread here, and either this
        process's own row (its thread died) or another process's row gone silent."""
        if job["state"] not in ("queued", "running") or self.running_here(job["approval_id"]):
            return False
        if job["owner"] == self.owner or _owner_gone(job["owner"]):
            return True
        from datetime import UTC, datetime

        quiet = datetime.now(UTC) - datetime.fromisoformat(job["updated_at"])
        return quiet.total_seconds() >= ORPHAN_AFTER_S

    def resume_if_orphaned(self, job: dict[str, Any]) -> bool:
        if not self.is_orphan(job):
            return False
        self.start(job["approval_id"], decider(self.runtime, job["approval_id"]), resume=True)
        return True

    def resume_all(self) -> list[str]:
        """At start-up: resume the jobs a dead process left unfinished (its pid is gone on
        this host, or it went silent); the executor deploys at most once either way."""
        resumed = []
        for job in self.runtime.services.execution_jobs.unfinished():
            try:
                if self.resume_if_orphaned(job):
                    resumed.append(job["approval_id"])
            except ModelOpsError as exc:
                log.warning("cannot resume %s: %s", job["approval_id"], exc.message)
        return resumed


def _owner_gone(owner: str) -> bool:
    """A job row's owner is a process of this host that no longer exists."""
    import os
    import socket

    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
