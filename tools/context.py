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
    from core.execution_jobs import ExecutionJobs
    from core.features import FeatureStore
    from core.registry import ModelRegistry
    from core.registry_view import RegistryView
    from policies.approvals import ApprovalService
    from policies.audit import AuditLog
    from policies.pinned import PinnedPolicy
    from policies.rbac import Actor, Policy
    from policies.tokens import TokenStore
    from policies.validations import ValidationStore
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
    def registry_reader(self) -> ModelRegistry | RegistryView:
        """For read-only lookups (list, show): a read-only view of MLflow's SQLite tables when
        it can serve this store (no mlflow import, ~2.5 s less per CLI call), else the MLflow
        registry. Writes always go through ``registry``."""
        from core.registry_view import open_registry_view

        return open_registry_view(self.settings.resolved_tracking_uri) or self.registry

    @cached_property
    def features(self) -> FeatureStore:
        """The feature store: the Chroma server at ``chroma_url``, else the embedded store
        under home/chroma (held by this process until it exits)."""
        from core.features import FeatureStore

        if self.settings.chroma_url:
            return FeatureStore(url=self.settings.chroma_url)
        return FeatureStore(self.settings.resolved_chroma_path)

    @cached_property
    def deployments(self) -> DeploymentService:
        from core.deployment import DeploymentService

        s = self.settings
        return DeploymentService(
            s.resolved_state_db_url,
            self.home_dir,
            gateway_options={
                "batching": s.gateway_batching,
                "batch_window_ms": s.gateway_batch_window_ms,
                "max_batch": s.gateway_max_batch,
                "workers": s.gateway_workers,
            },
        )

    @cached_property
    def home_dir(self) -> Path:
        """``settings.home_dir``, resolved once (a server checks the pin on every request);
        every path this object derives from the home starts here."""
        return self.settings.home_dir

    @cached_property
    def pinned(self) -> PinnedPolicy:
        """The policy in force: this home's pinned copy, digest-checked (policies/pinned.py).
        A configured policies_dir that differs from it is refused, never used; a lost pin in
        a home whose audit log records one is refused, never replaced by the bundled policy."""
        from policies.pinned import load_pinned, pin_stamp

        # Stamped before it is read: a pin replaced meanwhile is read again on the next check.
        self._pin_stamp = pin_stamp(self.home_dir)
        return load_pinned(self.home_dir, policies_dir=self.settings.policies_dir, audit=self.audit)

    # What is read from the policy in force (ApprovalService holds the policy it was made with).
    POLICY_CACHES = ("pinned", "policy", "thresholds", "approvals")

    def forget_policy(self) -> None:
        """Drop everything read from the policy: the next use reads the pin again."""
        for name in self.POLICY_CACHES:
            self.__dict__.pop(name, None)

    def refresh_policy(self) -> bool:
        """For a long-running process (``agent serve``): when another process replaced the
        pin (``agent policy apply``), forget the policy read before, so the next decision is
        made under the policy in force and not the one this process started with. One stat
        call; True when the policy will be read again."""
        from policies.pinned import pin_stamp

        if "pinned" not in self.__dict__:
            return False
        if pin_stamp(self.home_dir) == getattr(self, "_pin_stamp", None):
            return False
        self.forget_policy()
        return True

    @cached_property
    def policy(self) -> Policy:
        return self.pinned.policy

    @cached_property
    def thresholds(self) -> dict[str, Any]:
        return self.pinned.thresholds

    @property
    def policy_digest(self) -> str:
        """Digest of the policy in force (roles + thresholds): record it with every decision."""
        return self.pinned.digest

    @cached_property
    def tokens(self) -> TokenStore:
        from policies.tokens import TokenStore

        return TokenStore(self.engine)

    @cached_property
    def audit(self) -> AuditLog:
        from policies.audit import AuditLog

        return AuditLog(self.engine, anchor_path=self.settings.resolved_audit_anchor)

    @cached_property
    def approvals(self) -> ApprovalService:
        from policies.approvals import ApprovalService

        return ApprovalService(self.engine, self.policy, self.audit)

    @cached_property
    def execution_jobs(self) -> ExecutionJobs:
        from core.execution_jobs import ExecutionJobs

        return ExecutionJobs(self.engine)

    @cached_property
    def validations(self) -> ValidationStore:
        from policies.validations import ValidationStore

        return ValidationStore(self.engine)

    def allowed_roots(self) -> list[Path]:
        return [Path.cwd().resolve(), self.home_dir]

    def resolve_data_path(self, raw: str, what: str = "dataset") -> Path:
        """A data file (``what``: how errors name it) inside the working directory or
        MODELOPS_HOME; anything else is refused."""
        if not raw or "\0" in raw:
            raise InvalidInput(f"empty or invalid {what} path")
        path = Path(raw).expanduser()
        if is_dataset_name(raw) and not (Path.cwd() / raw).exists():
            # A name, not a path: a dataset registered with `agent data register NAME FILE`.
            from core.datasets.registry import DatasetRegistry

            path = DatasetRegistry(self.engine).resolve(raw)
        if not path.is_absolute():
            path = Path.cwd() / path
        resolved = path.resolve()
        roots = self.allowed_roots()
        if not any(resolved.is_relative_to(r) for r in roots):
            raise InvalidInput(
                f"{what} path {raw!r} is outside the allowed directories",
                hint="Use a file under the working directory or MODELOPS_HOME.",
            )
        if not resolved.is_file():
            raise NotFound(f"{what} file {raw!r} does not exist")
        return resolved

    def resolve_output_dir(
        self, raw: str | None, *, default: str, force: bool = False, hint: str | None = None
    ) -> Path:
        """The folder to write output into (``raw``, else ``default``; relative to the working
        directory), symlinks resolved. It must lie inside the working directory or
        MODELOPS_HOME (not be one of them, nor the artifact store or gateway records), and be
        new or empty unless ``force``. Nothing is created or deleted here. ``hint``: the
        caller's own example (the default one names `agent deploy render`)."""
        text = raw or default
        hint = hint or (
            "Choose a new folder under the working directory or MODELOPS_HOME, "
            "e.g. `agent deploy render NAME --out deploy/NAME`."
        )
        if not text or "\0" in text or len(text) > 4096:
            raise InvalidInput("empty or invalid output folder", hint=hint)
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = Path.cwd() / path
        resolved = path.resolve()
        roots = self.allowed_roots()
        if not any(resolved.is_relative_to(r) for r in roots):
            raise InvalidInput(
                f"output folder {text!r} is outside the allowed directories"
                + (f" (it resolves to {resolved})" if resolved != path else ""),
                hint=hint,
            )
        home = self.home_dir
        managed = [home / "gateways", home / "artifacts"]
        if self.settings.resolved_artifact_root.startswith("file:"):
            from core.artifacts import local_path

            managed.append(local_path(self.settings.resolved_artifact_root).resolve())
        if resolved in roots or any(resolved.is_relative_to(m) for m in managed):
            raise InvalidInput(
                f"output folder {text!r} is the working directory, MODELOPS_HOME or a folder "
                "they manage",
                hint=hint,
            )
        if resolved.exists() and not resolved.is_dir():
            raise InvalidInput(f"output folder {text!r} exists and is not a folder", hint=hint)
        if resolved.is_dir() and any(resolved.iterdir()) and not force:
            raise InvalidInput(
                f"output folder {text!r} exists and is not empty",
                hint="Choose a new folder with --out, or pass --force to re-render into a "
                "folder an earlier `agent deploy render` wrote (other files are never "
                "overwritten).",
            )
        return resolved


def is_dataset_name(raw: str) -> bool:
    """``customer_data_2024``: a valid name with no folder and no file extension."""
    from core.names import is_valid_name

    return is_valid_name(raw) and "/" not in raw and "." not in raw


@dataclass
class CallContext:
    """Passed to every tool function: who is calling, and what they can reach."""

    services: Services
    actor: Actor
    dispatcher: Dispatcher
