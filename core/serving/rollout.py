"""Rollout plans: canary (stepped weights), blue-green (two slots, atomic switch) and shadow
(mirrored traffic), each step written as one routing revision through DeploymentService.

A rollout remembers the routes it started from (the baseline), so aborting it restores them
exactly. Only one rollout per deployment is active; any other revision written meanwhile
(a rollback, a direct deploy) supersedes it. Approvals are checked by the caller (tools);
this module records the approval id it was given.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.deployment import DeploymentRow, Revision, RevisionRow, ServedVersion, _revision
from core.errors import Conflict, InvalidInput, NotFound
from core.state import Base, ensure_tables, utcnow

if TYPE_CHECKING:
    from core.deployment import DeploymentService

ROLLOUT_STRATEGIES = ("canary", "blue-green", "shadow")
DEFAULT_CANARY_STEPS = (10.0, 50.0, 100.0)
ACTIVE = "active"


class RolloutRow(Base):
    __tablename__ = "deployment_rollouts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    strategy: Mapped[str] = mapped_column(String(32))
    candidate: Mapped[dict] = mapped_column(JSON)
    baseline: Mapped[list] = mapped_column(JSON)
    steps: Mapped[list] = mapped_column(JSON)
    step: Mapped[int] = mapped_column(Integer, default=0)
    # active | completed | aborted | rolled_back | superseded
    state: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    approval_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(512), default="")
    last_revision: Mapped[int] = mapped_column(Integer)
    created_at = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at = mapped_column(DateTime(timezone=True), default=utcnow)


class Rollout(BaseModel):
    id: int
    model_name: str
    environment: str
    strategy: str
    candidate: ServedVersion
    baseline: list[ServedVersion]
    steps: list[float]
    step: int
    state: str
    approval_id: str | None
    actor: str
    reason: str
    last_revision: int
    created_at: str
    updated_at: str

    @property
    def weight(self) -> float:
        """The candidate's current share of traffic (0 while staged or shadowed)."""
        return self.steps[self.step]

    @property
    def next_weight(self) -> float | None:
        return self.steps[self.step + 1] if self.step + 1 < len(self.steps) else None

    def describe_step(self, weight: float | None = None) -> str:
        w = self.weight if weight is None else weight
        v = self.candidate.version
        if self.strategy == "canary":
            return f"v{v} takes {w:g}% of traffic"
        if self.strategy == "blue-green":
            return (
                f"v{v} serves from the {self.candidate.slot} slot"
                if w
                else (f"v{v} loaded in the idle {self.candidate.slot} slot (no traffic)")
            )
        return f"v{v} serves all traffic" if w else f"v{v} shadows every request (answers logged)"


def plan_steps(
    strategy: str, steps: list[float] | None, first_percent: float | None
) -> list[float]:
    """The candidate's traffic share at each step; the last is always 100."""
    if strategy not in ROLLOUT_STRATEGIES:
        raise InvalidInput(
            f"unknown rollout strategy {strategy!r}",
            hint=f"Rollouts: {', '.join(ROLLOUT_STRATEGIES)}; use deploy for direct.",
        )
    if strategy != "canary":
        if steps not in (None, [0, 100], [0.0, 100.0]) or first_percent not in (None, 0):
            raise InvalidInput(
                f"{strategy} rollouts have two fixed steps (0 then 100); weights are for canary"
            )
        return [0.0, 100.0]
    if steps is None:
        first = DEFAULT_CANARY_STEPS[0] if first_percent is None else float(first_percent)
        steps = [first] + [s for s in DEFAULT_CANARY_STEPS if s > first]
    steps = [float(s) for s in steps]
    if not steps or steps[-1] != 100.0:
        raise InvalidInput(f"canary steps must end at 100, got {steps}")
    if any(not 0 < s <= 100 for s in steps) or any(
        b <= a for a, b in zip(steps, steps[1:], strict=False)
    ):
        raise InvalidInput(
            f"canary steps must be increasing percentages in (0, 100], got {steps}",
            hint="For example 10, 50, 100.",
        )
    return steps


def routes_at(
    strategy: str, baseline: list[ServedVersion], candidate: ServedVersion, weight: float
) -> list[ServedVersion]:
    """The routing table of one rollout step."""
    if weight >= 100.0:
        final = candidate.model_copy(update={"weight": 100.0, "role": "primary"})
        if strategy != "blue-green":
            return [final.model_copy(update={"slot": None})]
        # The old slot stays loaded, without traffic, for an instant switch back.
        old = baseline[0].model_copy(update={"weight": 0.0, "role": "standby"})
        return [final, old]
    if strategy == "canary":
        scale = (100.0 - weight) / 100.0
        kept = [r.model_copy(update={"weight": r.weight * scale}) for r in baseline]
        return [*kept, candidate.model_copy(update={"weight": weight, "role": "canary"})]
    if strategy == "blue-green":
        return [*baseline, candidate.model_copy(update={"weight": 0.0, "role": "standby"})]
    return [*baseline, candidate.model_copy(update={"weight": 0.0, "role": "shadow", "slot": None})]


_STEP_NOTE = re.compile(r"^rollout #([0-9]+) step [0-9]+/[0-9]+: ")


def step_note(rollout_id: int, step: int, steps: int) -> str:
    """How a rollout step's revision reason begins (``rollout_of_revision`` reads it back)."""
    return f"rollout #{rollout_id} step {step + 1}/{steps}: "


def rollout_of_revision(action: str, reason: str) -> int | None:
    """The rollout a revision was written by (its step revisions carry no approval id of
    their own: the rollout holds it), or None."""
    m = _STEP_NOTE.match(reason or "") if action == "rollout" else None
    return int(m[1]) if m else None


class RolloutService:
    """Start, advance, abort and inspect rollouts of one DeploymentService's deployments."""

    def __init__(self, deployments: DeploymentService) -> None:
        self.deployments = deployments
        self.engine = deployments.engine
        ensure_tables(self.engine, RolloutRow)

    def start(
        self,
        model_name: str,
        candidate: ServedVersion,
        *,
        strategy: str,
        actor: str,
        steps: list[float] | None = None,
        first_percent: float | None = None,
        approval_id: str | None = None,
        reason: str = "",
        environment: str = "production",
        session: Session | None = None,
    ) -> Rollout:
        """Write the first step's revision. Idempotent on ``approval_id``. With ``session``,
        inside the caller's transaction."""
        plan = plan_steps(strategy, steps, first_percent)
        deps = self.deployments
        with deps.transaction(session) as s:
            if approval_id is not None:
                done = s.scalar(select(RolloutRow).where(RolloutRow.approval_id == approval_id))
                if done is not None:
                    return self._model(s, done)
            dep = deps.deployment_row(s, model_name, environment, create=False, missing_ok=True)
            current = self._current(s, dep)
            problem = self._start_problem(
                s, dep, current, model_name, candidate.version, strategy, environment
            )
            if problem is not None:
                raise problem
            baseline = [r for r in current.routes if r.weight > 0]
            if strategy == "blue-green":
                live_slot = baseline[0].slot or "blue"
                baseline = [baseline[0].model_copy(update={"slot": live_slot, "role": "primary"})]
                candidate = candidate.model_copy(
                    update={"slot": "green" if live_slot == "blue" else "blue"}
                )
            else:
                baseline = [
                    r.model_copy(update={"role": "primary", "slot": None}) for r in baseline
                ]
                candidate = candidate.model_copy(update={"slot": None})
            row = RolloutRow(
                deployment_id=dep.id,
                strategy=strategy,
                candidate=candidate.model_dump(),
                baseline=[r.model_dump() for r in baseline],
                steps=plan,
                step=0,
                state=ACTIVE,
                approval_id=approval_id,
                actor=actor,
                reason=reason[:512],
                last_revision=current.revision,
            )
            s.add(row)
            s.flush()
            self._write_step(s, dep, row, 0, actor, reason)
            return self._model(s, row)

    def preflight(
        self, model_name: str, version: str, strategy: str, environment: str = "production"
    ) -> Conflict | None:
        """Why a plan (``direct`` or a rollout strategy) for ``version`` cannot start now, or
        None: the same rules ``start`` enforces, asked before an approval is spent on it. A
        direct deploy is refused mid-rollout too (it would silently void that rollout)."""
        with Session(self.engine) as s, s.begin():
            dep = self.deployments.deployment_row(
                s, model_name, environment, create=False, missing_ok=True
            )
            current = self._current(s, dep)
            if strategy == "direct":
                running = self._active_row(s, dep, current)
                return (
                    None if running is None else self._in_progress(running, model_name, environment)
                )
            return self._start_problem(s, dep, current, model_name, version, strategy, environment)

    def _in_progress(self, running: RolloutRow, model_name: str, environment: str) -> Conflict:
        return Conflict(
            f"rollout #{running.id} of {model_name} v{running.candidate['version']} is "
            f"still in progress on {environment}",
            hint=f"Advance it to the end (`agent deploy rollout advance {model_name} "
            f"--environment {environment}`) or abort it (`agent deploy rollout abort "
            f"{model_name} --environment {environment}`) first.",
        )

    def _start_problem(
        self,
        s: Session,
        dep: DeploymentRow | None,
        current: Revision | None,
        model_name: str,
        version: str,
        strategy: str,
        environment: str,
    ) -> Conflict | None:
        """The one statement of when a rollout cannot start (``start`` and ``preflight``)."""
        if current is None:
            return Conflict(
                f"nothing serves {model_name} on {environment} yet, so there is no baseline "
                f"for a {strategy} rollout",
                hint="Deploy a first version directly (production: an approved promotion).",
            )
        running = self._active_row(s, dep, current)
        if running is not None:
            return self._in_progress(running, model_name, environment)
        baseline = [r for r in current.routes if r.weight > 0]
        if str(version) in {r.version for r in baseline}:
            return Conflict(f"{model_name} v{version} already serves traffic on {environment}")
        if strategy == "blue-green" and len(baseline) != 1:
            return Conflict(
                "blue-green needs one live version to switch from; finish the current split first"
            )
        return None

    def advance(
        self, model_name: str, *, actor: str, environment: str = "production", reason: str = ""
    ) -> Rollout:
        """Write the next step's revision (the caller has checked the gateway's health)."""
        with Session(self.engine) as s, s.begin():
            dep, row = self._require_active(s, model_name, environment)
            self._write_step(s, dep, row, row.step + 1, actor, reason)
            return self._model(s, row)

    def abort(
        self, model_name: str, *, actor: str, environment: str = "production", reason: str = ""
    ) -> Rollout:
        """Put the baseline routes back exactly as they were when the rollout started."""
        with Session(self.engine) as s, s.begin():
            dep, row = self._require_active(s, model_name, environment)
            baseline = [ServedVersion(**r) for r in row.baseline]
            strategy = "blue-green" if any(r.slot for r in baseline) else "direct"
            rev = self.deployments.append_revision(
                s,
                dep,
                strategy,
                "abort",
                baseline,
                actor,
                reason or f"abort rollout #{row.id} of v{row.candidate['version']}",
                None,
            )
            self._finish(row, "aborted", rev.revision)
            return self._model(s, row)

    def rollback(
        self,
        model_name: str,
        *,
        actor: str,
        to_version: str | None = None,
        reason: str = "",
        environment: str = "production",
        session: Session | None = None,
    ) -> Revision:
        """DeploymentService.rollback, marking an active rollout as rolled back, in one
        transaction (the caller's, with ``session``)."""
        with self.deployments.transaction(session) as s:
            rev = self.deployments.rollback(
                model_name,
                actor=actor,
                to_version=to_version,
                reason=reason,
                environment=environment,
                session=s,
            )
            dep = self.deployments.deployment_row(s, model_name, environment, create=False)
            for row in s.scalars(
                select(RolloutRow).where(
                    RolloutRow.deployment_id == dep.id, RolloutRow.state == ACTIVE
                )
            ):
                self._finish(row, "rolled_back", rev.revision)
        return rev

    def active(self, model_name: str, environment: str = "production") -> Rollout | None:
        with Session(self.engine) as s, s.begin():
            dep = self.deployments.deployment_row(
                s, model_name, environment, create=False, missing_ok=True
            )
            row = self._active_row(s, dep, self._current(s, dep))
            return self._model(s, row) if row is not None else None

    def for_approval(self, approval_id: str) -> Rollout | None:
        with Session(self.engine) as s:
            row = s.scalar(select(RolloutRow).where(RolloutRow.approval_id == approval_id))
            return self._model(s, row) if row is not None else None

    def history(self, model_name: str, environment: str = "production") -> list[Rollout]:
        with Session(self.engine) as s:
            dep = self.deployments.deployment_row(
                s, model_name, environment, create=False, missing_ok=True
            )
            if dep is None:
                return []
            rows = s.scalars(
                select(RolloutRow)
                .where(RolloutRow.deployment_id == dep.id)
                .order_by(RolloutRow.id.desc())
            )
            return [self._model(s, r) for r in rows]

    # Internals ------------------------------------------------------------------------
    def _current(self, s: Session, dep: DeploymentRow | None) -> Revision | None:
        if dep is None:
            return None
        row = s.scalar(
            select(RevisionRow)
            .where(RevisionRow.deployment_id == dep.id)
            .order_by(RevisionRow.revision.desc())
            .limit(1)
        )
        return _revision(row) if row is not None else None

    def _active_row(
        self, s: Session, dep: DeploymentRow | None, current: Revision | None
    ) -> RolloutRow | None:
        if dep is None:
            return None
        row = s.scalar(
            select(RolloutRow).where(RolloutRow.deployment_id == dep.id, RolloutRow.state == ACTIVE)
        )
        if row is not None and (current is None or current.revision != row.last_revision):
            # Someone else changed the routes (rollback, direct deploy): this plan is void.
            self._finish(row, "superseded", row.last_revision)
            return None
        return row

    def _require_active(
        self, s: Session, model_name: str, environment: str
    ) -> tuple[DeploymentRow, RolloutRow]:
        dep = self.deployments.deployment_row(s, model_name, environment, create=False)
        row = self._active_row(s, dep, self._current(s, dep))
        if row is None:
            raise NotFound(
                f"{model_name} has no rollout in progress on {environment}",
                hint="Start one with `agent deploy rollout start`; see `agent deploy status`.",
            )
        return dep, row

    def _write_step(
        self, s: Session, dep: DeploymentRow, row: RolloutRow, step: int, actor: str, reason: str
    ) -> None:
        candidate = ServedVersion(**row.candidate)
        baseline = [ServedVersion(**r) for r in row.baseline]
        weight = row.steps[step]
        routes = routes_at(row.strategy, baseline, candidate, weight)
        final = step == len(row.steps) - 1
        strategy = row.strategy if not (final and row.strategy == "shadow") else "direct"
        note = step_note(row.id, step, len(row.steps)) + Rollout.describe_step(
            self._model(s, row), weight
        )
        rev = self.deployments.append_revision(
            s, dep, strategy, "rollout", routes, actor, f"{note}. {reason}".strip(), None
        )
        row.step = step
        row.last_revision = rev.revision
        row.updated_at = utcnow()
        if final:
            row.state = "completed"

    def _finish(self, row: RolloutRow, state: str, revision: int) -> None:
        row.state = state
        row.last_revision = revision
        row.updated_at = utcnow()

    def _model(self, s: Session, row: RolloutRow) -> Rollout:
        dep = s.get(DeploymentRow, row.deployment_id)
        return Rollout(
            id=row.id,
            model_name=dep.model_name,
            environment=dep.environment,
            strategy=row.strategy,
            candidate=ServedVersion(**row.candidate),
            baseline=[ServedVersion(**r) for r in row.baseline],
            steps=list(row.steps),
            step=row.step,
            state=row.state,
            approval_id=row.approval_id,
            actor=row.actor,
            reason=row.reason,
            last_revision=row.last_revision,
            created_at=row.created_at.isoformat() if row.created_at else "",
            updated_at=row.updated_at.isoformat() if row.updated_at else "",
        )


class HealthVerdict(BaseModel):
    healthy: bool
    reasons: list[str]
    health: dict[str, Any]


def check_gateway(
    url: str,
    *,
    expect_revision: int,
    candidate_version: str,
    max_error_rate: float = 0.01,
    min_requests: int = 0,
    wait_seconds: float = 10.0,
) -> HealthVerdict:
    """Is the gateway serving ``expect_revision`` and the candidate healthy on it?

    Waits up to ``wait_seconds`` for the gateway to pick the revision up (it polls the
    state DB) and for the candidate to have answered ``min_requests`` requests *on that
    revision* (a rollout step is judged on its own traffic). Failures are the candidate's
    server errors, the 4xx its own input contract caused (not a client's malformed JSON) and
    its timeouts. A candidate the gateway does not report is unhealthy, never "0 errors".
    """
    import httpx

    deadline = time.monotonic() + wait_seconds
    while True:
        reasons: list[str] = []
        try:
            r = httpx.get(f"{url}/health", timeout=3.0)
            health = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            health, reasons = {}, [f"gateway at {url} did not answer /health: {exc}"]
        else:
            if health.get("status") != "ok":
                reasons.append(f"gateway status is {health.get('status')!r}")
            if health.get("last_reload_error"):
                reasons.append(f"last reload failed: {health['last_reload_error']}")
            if health.get("revision") != expect_revision:
                reasons.append(
                    f"gateway serves revision {health.get('revision')}, not {expect_revision}"
                )
            reasons += _candidate_problems(
                health, candidate_version, max_error_rate=max_error_rate, min_requests=min_requests
            )
        if not reasons or time.monotonic() >= deadline:
            return HealthVerdict(healthy=not reasons, reasons=reasons, health=health)
        time.sleep(0.1)


_REVISION_COUNTS = ("requests", "server_errors", "rejected", "timeouts")


def _candidate_problems(
    health: dict[str, Any], version: str, *, max_error_rate: float, min_requests: int
) -> list[str]:
    """Why the candidate is not (yet) healthy on the revision /health reports; [] if it is."""
    versions = health.get("versions") or []
    cand = next((v for v in versions if v.get("version") == version), None)
    rev = health.get("revision")
    if cand is None:
        serving = ", ".join(f"v{v.get('version')}" for v in versions) or "no version"
        return [
            f"v{version} is not among the versions the gateway reports at revision {rev} "
            f"({serving}), so it has no health to judge"
        ]
    counts = cand.get("this_revision")
    if not isinstance(counts, dict) or not all(
        isinstance(counts.get(k), int) for k in _REVISION_COUNTS
    ):
        return [
            f"the gateway reports no per-revision counts for v{version} (a reload in "
            "progress, or a gateway older than this check: restart it)"
        ]
    if cand.get("role") == "shadow":
        failures = counts.get("shadow_errors") or 0
        served = (counts.get("shadow_requests") or 0) + failures
        kinds = f"{failures} mirrored calls failed"
    else:
        failures = counts["server_errors"] + counts["timeouts"]
        served = counts["requests"] + failures
        kinds = f"{counts['server_errors']} server errors, {counts['timeouts']} timeouts"
    if served < min_requests:
        return [
            f"v{version} answered {served} requests on revision {rev}, fewer than {min_requests}"
        ]
    if served and failures / served > max_error_rate:
        return [
            f"v{version} failed {failures} of {served} requests on revision {rev} "
            f"({failures / served:.1%} > {max_error_rate:.1%}: {kinds})"
        ]
    return []
