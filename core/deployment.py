"""Deployment records, routing revisions and the detached gateway process.

A deployment is one model name on one target; each change of its routing table
(rollout step, rollback) is a new revision. The gateway polls the latest revision and
swaps its routing table in place, so a change never restarts it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.errors import Conflict, ExternalServiceError, InvalidInput, NotFound
from core.state import Base, ensure_tables, get_engine, utcnow

STRATEGIES = ("direct",)


class ServedVersion(BaseModel):
    """What the gateway needs to load and label one version, without asking MLflow."""

    version: str
    weight: float = Field(ge=0, le=100)
    artifact_uri: str
    artifact_sha256: str
    implementation_status: str = ""
    accuracy_claim: str = ""
    validation_status: str = ""


class DeploymentRow(Base):
    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(32), default="local")
    created_at = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("model_name", "target"),)


class RevisionRow(Base):
    __tablename__ = "deployment_revisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"))
    revision: Mapped[int] = mapped_column(Integer)
    strategy: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))  # deploy | rollback
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


class DeploymentStatus(BaseModel):
    model_name: str
    target: str
    revision: Revision | None
    history: list[Revision]
    gateway: dict[str, Any]


class DeploymentService:
    """Create revisions, roll back, and run the gateway process for a model."""

    def __init__(self, state_db_url: str, home: Path) -> None:
        self.state_db_url = state_db_url
        self.home = home
        self.engine = get_engine(state_db_url)
        ensure_tables(self.engine, DeploymentRow, RevisionRow)

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
        target: str = "local",
    ) -> Revision:
        """Route all traffic to ``served`` (direct). Idempotent on ``approval_id``."""
        if strategy not in STRATEGIES:
            raise InvalidInput(
                f"unknown rollout strategy {strategy!r}",
                hint=f"Use one of: {', '.join(STRATEGIES)}.",
            )
        with Session(self.engine) as s, s.begin():
            if approval_id is not None:
                done = s.scalar(select(RevisionRow).where(RevisionRow.approval_id == approval_id))
                if done is not None:
                    return _revision(done)
            dep = self._deployment(s, model_name, target, create=True)
            route = served.model_copy(update={"weight": 100.0})
            row = self._append(s, dep, strategy, "deploy", [route], actor, reason, approval_id)
            return _revision(row)

    def rollback(
        self,
        model_name: str,
        *,
        actor: str,
        to_version: str | None = None,
        reason: str = "",
        target: str = "local",
    ) -> Revision:
        """Route all traffic back to ``to_version`` or to the version live before the current one."""
        with Session(self.engine) as s, s.begin():
            dep = self._deployment(s, model_name, target, create=False)
            revs = list(
                s.scalars(
                    select(RevisionRow)
                    .where(RevisionRow.deployment_id == dep.id)
                    .order_by(RevisionRow.revision.desc())
                )
            )
            current = _revision(revs[0])
            live = set(current.live_versions)
            candidates = [r for rev in revs[1:] for r in _revision(rev).routes if r.weight > 0]
            if to_version is not None:
                choice = next((r for r in candidates if r.version == str(to_version)), None)
                if choice is None:
                    deployed = sorted({r.version for r in candidates} | live, key=int)
                    raise NotFound(
                        f"{model_name} v{to_version} was never deployed on {target}",
                        hint=f"Deployed versions: {', '.join(deployed)}.",
                    )
                if choice.version in live and len(live) == 1:
                    raise Conflict(f"{model_name} v{to_version} is already the live version")
            else:
                choice = next((r for r in candidates if r.version not in live), None)
                if choice is None:
                    raise Conflict(
                        f"{model_name} has no earlier deployed version to roll back to",
                        hint="Rollback needs a previous revision with a different version.",
                    )
            route = choice.model_copy(update={"weight": 100.0})
            row = self._append(s, dep, "direct", "rollback", [route], actor, reason, None)
            return _revision(row)

    def current(self, model_name: str, target: str = "local") -> Revision | None:
        with Session(self.engine) as s:
            dep = self._deployment(s, model_name, target, create=False, missing_ok=True)
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

    def count_revisions(self, model_name: str, target: str = "local") -> int:
        with Session(self.engine) as s:
            dep = self._deployment(s, model_name, target, create=False, missing_ok=True)
            if dep is None:
                return 0
            return int(
                s.scalar(select(func.count()).where(RevisionRow.deployment_id == dep.id)) or 0
            )

    def status(self, model_name: str, target: str = "local") -> DeploymentStatus:
        with Session(self.engine) as s:
            dep = self._deployment(s, model_name, target, create=False)
            rows = list(
                s.scalars(
                    select(RevisionRow)
                    .where(RevisionRow.deployment_id == dep.id)
                    .order_by(RevisionRow.revision.desc())
                )
            )
        history = [_revision(r) for r in rows]
        return DeploymentStatus(
            model_name=model_name,
            target=target,
            revision=history[0] if history else None,
            history=history,
            gateway=self.gateway_info(model_name),
        )

    def list_deployments(self) -> list[str]:
        with Session(self.engine) as s:
            return sorted(s.scalars(select(DeploymentRow.model_name)).all())

    def _deployment(
        self, s: Session, model_name: str, target: str, *, create: bool, missing_ok: bool = False
    ) -> DeploymentRow | None:
        dep = s.scalar(
            select(DeploymentRow).where(
                DeploymentRow.model_name == model_name, DeploymentRow.target == target
            )
        )
        if dep is None and create:
            dep = DeploymentRow(model_name=model_name, target=target)
            s.add(dep)
            s.flush()
        if dep is None and not missing_ok:
            raise NotFound(
                f"{model_name} has no deployment on {target}",
                hint="Deployments are created by an approved promotion: see `agent approvals list`.",
            )
        return dep

    def _append(
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
            reason=reason,
        )
        s.add(row)
        s.flush()
        return row

    # Gateway process ------------------------------------------------------------------
    def _gateway_dir(self, model_name: str) -> Path:
        d = self.home / "gateways" / model_name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def gateway_info(self, model_name: str) -> dict[str, Any]:
        meta_file = self._gateway_dir(model_name) / "gateway.json"
        if not meta_file.exists():
            return {"running": False}
        meta = json.loads(meta_file.read_text())
        meta["running"] = _pid_alive(meta.get("pid"))
        return meta

    def ensure_gateway(
        self, model_name: str, *, host: str, port: int, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Start the model's gateway detached unless it is already running; wait until healthy."""
        info = self.gateway_info(model_name)
        if info.get("running"):
            return info
        if port == 0:
            port = _free_port(host)
        gdir = self._gateway_dir(model_name)
        log = open(gdir / "gateway.log", "ab")  # noqa: SIM115 - handed to the child process
        env = {
            **os.environ,
            "MODELOPS_STATE_DB_URL": self.state_db_url,
            "MODELOPS_HOME": str(self.home),
        }
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "core.serving.gateway",
                "--model",
                model_name,
                "--host",
                host,
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        log.close()
        url = f"http://{host}:{port}"
        meta = {
            "pid": proc.pid,
            "host": host,
            "port": port,
            "url": url,
            "log": str(gdir / "gateway.log"),
            "started_at": time.time(),
        }
        (gdir / "gateway.json").write_text(json.dumps(meta))
        _wait_healthy(url, proc, timeout, gdir / "gateway.log")
        return {**meta, "running": True}

    def stop_gateway(self, model_name: str) -> bool:
        info = self.gateway_info(model_name)
        pid = info.get("pid")
        stopped = False
        if info.get("running") and pid:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not _pid_alive(pid):
                    break
                time.sleep(0.05)
            stopped = True
        meta_file = self._gateway_dir(model_name) / "gateway.json"
        if meta_file.exists():
            meta_file.unlink()
        return stopped


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


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise ExternalServiceError(
                f"gateway exited with code {proc.returncode} during start-up",
                hint=f"Its log ends with:\n{tail}",
            )
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise ExternalServiceError(
        f"gateway at {url} not healthy after {timeout:.0f} s", hint=f"See {log}."
    )
