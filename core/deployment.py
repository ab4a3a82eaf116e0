"""Deployment records, routing revisions and the detached gateway process.

A deployment is one model name on one environment; each change of its routing table (direct
deploy, rollout step, rollback) is a new revision. The gateway polls the latest revision and
swaps its routing table in place, so a change never restarts it. Rollout plans (canary,
blue-green, shadow) live in ``core.serving.rollout`` and write revisions through this service.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.errors import Conflict, InvalidInput, NotFound
from core.names import validate_name
from core.serving import process
from core.state import Base, ensure_tables, get_engine, utcnow

if TYPE_CHECKING:
    from core.serving.rollout import RolloutService

STRATEGIES = ("direct", "canary", "blue-green", "shadow")
# The deployment environments: ``production`` is the gateway an approved promotion deploys
# to; ``staging`` is a separate deployment and gateway for trying versions without an
# approval. ``local`` was production's name before; it is accepted, with a warning, for one
# release (``normalize_environment``), and stored rows that say ``local`` are read as
# production (``core.state`` rewrites them once).
PRODUCTION = "production"
ENVIRONMENTS = (PRODUCTION, "staging")
PRODUCTION_ENVIRONMENTS = (PRODUCTION,)
DEPRECATED_ENVIRONMENTS = {"local": PRODUCTION}
Role = Literal["primary", "canary", "shadow", "standby"]


class ServedVersion(BaseModel):
    """What the gateway needs to load and label one version, without asking MLflow.

    ``role``: primary/canary routes take ``weight`` percent of the traffic; a shadow route gets
    a mirrored copy of every request (its answers are logged, never returned); a standby
    route (weight 0) is the idle blue-green slot, kept loaded for an instant switch back.
    """

    version: str
    weight: float = Field(ge=0, le=100)
    artifact_uri: str
    artifact_sha256: str
    implementation_status: str = ""
    accuracy_claim: str = ""
    validation_status: str = ""
    role: Role = "primary"
    slot: Literal["blue", "green"] | None = None


class DeploymentRow(Base):
    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128))
    # The column keeps its first name; the attribute says what it holds.
    environment: Mapped[str] = mapped_column("target", String(32), default=PRODUCTION)
    created_at = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("model_name", "target"),)


class RevisionRow(Base):
    __tablename__ = "deployment_revisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    revision: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))  # deploy | rollout | rollback | abort
    routes: Mapped[list] = mapped_column(JSON)
    approval_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(512), default="")
    created_at = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("deployment_id", "revision"),)


class Revision(BaseModel):
    revision: int
    strategy: str
    action: str
    routes: list[ServedVersion]
    approval_id: str | None
    actor: str
    reason: str
    created_at: str

    @property
    def live_versions(self) -> list[str]:
        return [r.version for r in self.routes if r.weight > 0]

    @property
    def shadow_versions(self) -> list[str]:
        return [r.version for r in self.routes if r.role == "shadow"]

    @property
    def standby_versions(self) -> list[str]:
        return [r.version for r in self.routes if r.role == "standby"]

    @property
    def primary(self) -> ServedVersion | None:
        """The route with the most traffic (the first of equals)."""
        live = [r for r in self.routes if r.weight > 0]
        return max(live, key=lambda r: r.weight) if live else None

    def weights(self) -> dict[str, float]:
        return {r.version: r.weight for r in self.routes if r.weight > 0}


class DeploymentStatus(BaseModel):
    model_name: str
    environment: str
    revision: Revision | None
    history: list[Revision]
    gateway: dict[str, Any]


class EnvironmentDeprecation(FutureWarning):
    """A deprecated environment name was used (shown to the person, not only to developers)."""


def normalize_environment(environment: str) -> str:
    """``environment`` with a deprecated name (``local``) replaced, warning once per use."""
    new = DEPRECATED_ENVIRONMENTS.get(environment)
    if new is None:
        return environment
    warnings.warn(
        f"environment {environment!r} is deprecated; use {new!r} (accepted for one release)",
        EnvironmentDeprecation,
        stacklevel=3,
    )
    return new


# The type every tool, workflow and API input uses for an environment field.
Environment = Annotated[Literal["production", "staging"], BeforeValidator(normalize_environment)]


def check_environment(environment: str) -> str:
    environment = normalize_environment(environment)
    if environment not in ENVIRONMENTS:
        raise InvalidInput(
            f"unknown deployment environment {environment!r}",
            hint=f"Use one of: {', '.join(ENVIRONMENTS)} (kubernetes manifests: `agent deploy render`).",
        )
    return environment


class DeploymentService:
    """Create revisions, roll back, and run the gateway process for a model."""

    def __init__(
        self, state_db_url: str, home: Path, *, gateway_options: dict[str, Any] | None = None
    ) -> None:
        self.state_db_url = state_db_url
        self.home = home
        # How the gateways this service starts (and renders) run: process.start_gateway's
        # batching/batch_window_ms/max_batch/workers (absent: the gateway's defaults).
        self.gateway_options = dict(gateway_options or {})
        self.engine = get_engine(state_db_url)
        ensure_tables(self.engine, DeploymentRow, RevisionRow)

    @cached_property
    def rollouts(self) -> RolloutService:
        from core.serving.rollout import RolloutService

        return RolloutService(self)

    # Routing revisions ----------------------------------------------------------------
    def deploy(
        self,
        model_name: str,
        served: ServedVersion,
        *,
        strategy: str = "direct",
        actor: str,
        approval_id: str | None = None,
        reason: str = "",
        environment: str = PRODUCTION,
        session: Session | None = None,
    ) -> Revision:
        """Route all traffic to ``served`` (direct). Idempotent on ``approval_id``. With
        ``session``, the revision is written inside the caller's transaction."""
        if strategy != "direct":
            raise InvalidInput(
                f"deploy() routes all traffic at once; {strategy!r} is a rollout strategy",
                hint="Start canary, blue-green and shadow rollouts with start_rollout.",
            )
        check_environment(environment)
        with self.transaction(session) as s:
            if approval_id is not None:
                done = s.scalar(select(RevisionRow).where(RevisionRow.approval_id == approval_id))
                if done is not None:
                    return _revision(done)
            dep = self.deployment_row(s, model_name, environment, create=True)
            route = served.model_copy(update={"weight": 100.0, "role": "primary", "slot": None})
            row = self.append_revision(
                s, dep, strategy, "deploy", [route], actor, reason, approval_id
            )
            return _revision(row)

    def rollback(
        self,
        model_name: str,
        *,
        actor: str,
        to_version: str | None = None,
        reason: str = "",
        environment: str = PRODUCTION,
        session: Session | None = None,
    ) -> Revision:
        """Route all traffic to ``to_version`` (any version live in an earlier revision) or,
        without it, to the version that served before the current one. One new revision, so
        the gateway switches atomically; a blue-green deployment keeps its other slot loaded."""
        with self.transaction(session) as s:
            dep = self.deployment_row(s, model_name, environment, create=False)
            revs = [_revision(r) for r in self._revision_rows(s, dep)]
            current = revs[0]
            live = current.live_versions
            if to_version is not None:
                to_version = str(to_version)
                choice = next(
                    (
                        r
                        for rev in revs
                        for r in rev.routes
                        if r.weight > 0 and r.version == to_version
                    ),
                    None,
                )
                if choice is None:
                    deployed = sorted(
                        {r.version for rev in revs for r in rev.routes if r.weight > 0}, key=int
                    )
                    raise NotFound(
                        f"{model_name} v{to_version} was never deployed on {environment}",
                        hint=f"Deployed versions: {', '.join(deployed)}.",
                    )
                if live == [to_version]:
                    raise Conflict(f"{model_name} v{to_version} is already the live version")
            else:
                choice = _previous_route(current, revs[1:])
                if choice is None:
                    raise Conflict(
                        f"{model_name} has no earlier deployed version to roll back to",
                        hint="Rollback needs a previous revision with a different version.",
                    )
            routes = _rollback_routes(current, choice)
            strategy = "blue-green" if any(r.slot for r in routes) else "direct"
            row = self.append_revision(s, dep, strategy, "rollback", routes, actor, reason, None)
            return _revision(row)

    @contextmanager
    def transaction(self, session: Session | None = None) -> Iterator[Session]:
        """The caller's session (its transaction commits the change), or a new one."""
        if session is not None:
            yield session
            return
        with Session(self.engine) as s, s.begin():
            yield s

    def rollback_choice(
        self, model_name: str, *, to_version: str | None = None, environment: str = PRODUCTION
    ) -> str:
        """The version ``rollback`` would route to, without changing anything."""
        with Session(self.engine) as s:
            s.begin()
            try:
                return self.rollback(
                    model_name,
                    actor="dry-run",
                    to_version=to_version,
                    environment=environment,
                    session=s,
                ).live_versions[0]
            finally:
                s.rollback()

    def current(self, model_name: str, environment: str = PRODUCTION) -> Revision | None:
        with Session(self.engine) as s:
            dep = self.deployment_row(s, model_name, environment, create=False, missing_ok=True)
            if dep is None:
                return None
            row = s.scalar(
                select(RevisionRow)
                .where(RevisionRow.deployment_id == dep.id)
                .order_by(RevisionRow.revision.desc())
                .limit(1)
            )
            return _revision(row) if row else None

    def revision_for_approval(self, approval_id: str) -> Revision | None:
        with Session(self.engine) as s:
            row = s.scalar(select(RevisionRow).where(RevisionRow.approval_id == approval_id))
            return _revision(row) if row else None

    def count_revisions(self, model_name: str, environment: str = PRODUCTION) -> int:
        with Session(self.engine) as s:
            dep = self.deployment_row(s, model_name, environment, create=False, missing_ok=True)
            if dep is None:
                return 0
            return int(
                s.scalar(select(func.count()).where(RevisionRow.deployment_id == dep.id)) or 0
            )

    def status(self, model_name: str, environment: str = PRODUCTION) -> DeploymentStatus:
        with Session(self.engine) as s:
            dep = self.deployment_row(s, model_name, environment, create=False)
            history = [_revision(r) for r in self._revision_rows(s, dep)]
        return DeploymentStatus(
            model_name=model_name,
            environment=environment,
            revision=history[0] if history else None,
            history=history,
            gateway=self.gateway_info(model_name, environment),
        )

    def list_deployments(self, environment: str | None = None) -> list[str]:
        """Names of deployed models (on ``environment``, or on any environment)."""
        q = select(DeploymentRow.model_name).distinct()
        if environment is not None:
            q = q.where(DeploymentRow.environment == environment)
        with Session(self.engine) as s:
            return sorted(s.scalars(q).all())

    def deployment_row(
        self,
        s: Session,
        model_name: str,
        environment: str,
        *,
        create: bool,
        missing_ok: bool = False,
    ) -> DeploymentRow | None:
        dep = s.scalar(
            select(DeploymentRow).where(
                DeploymentRow.model_name == model_name, DeploymentRow.environment == environment
            )
        )
        if dep is None and create:
            # The name later becomes a gateway folder (core.serving.process): one rule for both.
            validate_name("model", model_name)
            dep = DeploymentRow(model_name=model_name, environment=check_environment(environment))
            s.add(dep)
            s.flush()
        if dep is None and not missing_ok:
            raise NotFound(
                f"{model_name} has no deployment on {environment}",
                hint="Deployments are created by an approved promotion: see `agent approvals list`.",
            )
        return dep

    def append_revision(
        self,
        s: Session,
        dep: DeploymentRow,
        strategy: str,
        action: str,
        routes: list[ServedVersion],
        actor: str,
        reason: str,
        approval_id: str | None,
    ) -> RevisionRow:
        """Add the next revision inside the caller's transaction."""
        if strategy not in STRATEGIES:
            raise InvalidInput(
                f"unknown rollout strategy {strategy!r}",
                hint=f"Use one of: {', '.join(STRATEGIES)}.",
            )
        _check_routes(routes)
        last = s.scalar(
            select(func.max(RevisionRow.revision)).where(RevisionRow.deployment_id == dep.id)
        )
        row = RevisionRow(
            deployment_id=dep.id,
            revision=(last or 0) + 1,
            strategy=strategy,
            action=action,
            routes=[r.model_dump() for r in routes],
            approval_id=approval_id,
            actor=actor,
            reason=reason[:512],
        )
        s.add(row)
        s.flush()
        return row

    def _revision_rows(self, s: Session, dep: DeploymentRow) -> list[RevisionRow]:
        return list(
            s.scalars(
                select(RevisionRow)
                .where(RevisionRow.deployment_id == dep.id)
                .order_by(RevisionRow.revision.desc())
            )
        )

    # Gateway process ------------------------------------------------------------------
    def gateway_info(self, model_name: str, environment: str = PRODUCTION) -> dict[str, Any]:
        return process.read_gateway(self.home, model_name, environment)

    def ensure_gateway(
        self,
        model_name: str,
        *,
        host: str,
        port: int,
        timeout: float = 60.0,
        environment: str = PRODUCTION,
        poll_seconds: float = 0.5,
    ) -> dict[str, Any]:
        """Start the model's gateway detached unless it is already running; wait until healthy."""
        info = self.gateway_info(model_name, environment)
        if info.get("running"):
            if info.get("state_db") != process.state_db_fingerprint(self.state_db_url):
                raise Conflict(
                    f"the {environment} gateway of {model_name} (pid {info['pid']}) serves the "
                    "routes of another state database",
                    hint=f"Stop it first: `agent deploy stop {model_name} --environment {environment}`.",
                )
            return info
        return process.start_gateway(
            self.home,
            self.state_db_url,
            model_name,
            environment=check_environment(environment),
            host=host,
            port=port,
            timeout=timeout,
            poll_seconds=poll_seconds,
            **self.gateway_options,
        )

    def stop_gateway(self, model_name: str, environment: str | None = None) -> bool:
        """Stop the gateway on ``environment`` (every environment of the model when None)."""
        environments = (
            [environment] if environment else process.gateway_environments(self.home, model_name)
        )
        stopped = False
        for t in environments:
            stopped = process.stop_gateway(self.home, model_name, t) or stopped
        return stopped


def _check_routes(routes: list[ServedVersion]) -> None:
    live = [r for r in routes if r.weight > 0]
    if not live:
        raise InvalidInput("a revision needs at least one route with traffic")
    total = sum(r.weight for r in live)
    if abs(total - 100.0) > 1e-6:
        raise InvalidInput(f"route weights must add up to 100, got {total:g}")
    versions = [r.version for r in routes]
    if len(set(versions)) != len(versions):
        raise InvalidInput(f"a version may appear once per revision, got {versions}")
    for r in routes:
        if r.role in ("shadow", "standby") and r.weight > 0:
            raise InvalidInput(f"a {r.role} route carries no traffic (v{r.version})")


def _previous_route(current: Revision, earlier: list[Revision]) -> ServedVersion | None:
    live = current.live_versions
    if len(live) > 1:
        # Mid-rollout: go back to the version that served alone before traffic was split.
        return next((rev.primary for rev in earlier if len(rev.live_versions) == 1), None)
    return next(
        (rev.primary for rev in earlier if rev.primary and rev.primary.version not in live), None
    )


def _rollback_routes(current: Revision, choice: ServedVersion) -> list[ServedVersion]:
    chosen = choice.model_copy(update={"weight": 100.0, "role": "primary"})
    slotted = [r for r in current.routes if r.slot]
    if not slotted:
        return [chosen.model_copy(update={"slot": None})]
    # Blue-green: the chosen version goes live in its own slot (or the idle one), and what
    # serves now becomes the standby slot, so a second switch is instant as well.
    active = current.primary
    idle = next((r for r in slotted if r.version == choice.version), None)
    if idle is None:
        idle = next((r for r in slotted if r.weight == 0), None)
    slot = (
        idle.slot if idle is not None else ("green" if active and active.slot == "blue" else "blue")
    )
    routes = [chosen.model_copy(update={"slot": slot})]
    if active is not None and active.version != choice.version:
        other = "green" if slot == "blue" else "blue"
        routes.append(active.model_copy(update={"weight": 0.0, "role": "standby", "slot": other}))
    return routes


def _revision(row: RevisionRow) -> Revision:
    return Revision(
        revision=row.revision,
        strategy=row.strategy,
        action=row.action,
        routes=[ServedVersion(**r) for r in row.routes],
        approval_id=row.approval_id,
        actor=row.actor,
        reason=row.reason,
        created_at=row.created_at.isoformat() if row.created_at else "",
    )
