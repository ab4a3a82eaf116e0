"""Services a tool call can reach, built lazily from one Settings object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InvalidInput, NotFound
from core.settings import Settings

if TYPE_CHECKING:
    from core.deployment import DeploymentService
    from core.registry import ModelRegistry
    from policies.approvals import ApprovalService
    from policies.audit import AuditLog
    from policies.rbac import Actor, Policy
    from tools.dispatcher import Dispatcher


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.ensure_home()
        # Set by the agents layer: runs the promotion workflow up to its approval node.
        self.promotion_runner: Callable[..., dict[str, Any]] | None = None

    @cached_property
    def engine(self):  # noqa: ANN201
        from core.state import get_engine

        return get_engine(self.settings.resolved_state_db_url)

    @cached_property
    def registry(self) -> ModelRegistry:
        from core.registry import ModelRegistry

        return ModelRegistry(
            self.settings.resolved_tracking_uri, self.settings.resolved_artifact_root
        )

    @cached_property
    def deployments(self) -> DeploymentService:
        from core.deployment import DeploymentService

        return DeploymentService(self.settings.resolved_state_db_url, self.settings.home_dir)

    @cached_property
    def policy(self) -> Policy:
        from policies.rbac import load_policy

        return load_policy(self.settings.resolved_policies_dir)

    @cached_property
    def thresholds(self) -> dict[str, Any]:
        from policies.gates import load_thresholds

        return load_thresholds(self.settings.resolved_policies_dir)

    @cached_property
    def audit(self) -> AuditLog:
        from policies.audit import AuditLog

        return AuditLog(self.engine)

    @cached_property
    def approvals(self) -> ApprovalService:
        from policies.approvals import ApprovalService

        return ApprovalService(
            self.engine, self.policy, self.audit, ttl_hours=self.settings.approval_ttl_hours
        )

    def allowed_roots(self) -> list[Path]:
        return [Path.cwd().resolve(), self.settings.home_dir]

    def resolve_data_path(self, raw: str) -> Path:
        """A data file inside the working directory or MODELOPS_HOME; anything else is refused."""
        if not raw or "\0" in raw:
            raise InvalidInput("empty or invalid dataset path")
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        resolved = path.resolve()
        roots = self.allowed_roots()
        if not any(resolved.is_relative_to(r) for r in roots):
            raise InvalidInput(
                f"dataset path {raw!r} is outside the allowed directories",
                hint="Use a file under the working directory or MODELOPS_HOME.",
            )
        if not resolved.is_file():
            raise NotFound(f"dataset file {raw!r} does not exist")
        return resolved


@dataclass
class CallContext:
    """Passed to every tool function: who is calling, and what they can reach."""

    services: Services
    actor: Actor
    dispatcher: Dispatcher
