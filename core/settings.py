"""One settings resolver: CLI flag -> environment (``MODELOPS_*``) -> ``modelops.toml`` -> default.

Everything the system writes lives under ``MODELOPS_HOME`` (default ``./.modelops``) unless a
URL is given explicitly, so tests only need to point that one variable at a temp dir.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _config_file() -> Path:
    return Path(os.environ.get("MODELOPS_CONFIG", "modelops.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELOPS_", extra="ignore")

    home: Path = Field(default=Path(".modelops"), description="Directory for all local state.")
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking/registry URI (default sqlite under home)."
    )
    artifact_root: str | None = Field(
        default=None, description="Where MLflow stores artifacts (default home/artifacts)."
    )
    state_db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL for approvals, deployments, audit (default sqlite under home).",
    )
    graphs_db: str | None = Field(
        default=None, description="LangGraph checkpoint SQLite file (default home/graphs.db)."
    )
    chroma_url: str | None = Field(
        default=None,
        description="Chroma server for the feature store (http://HOST:PORT); default an "
        "embedded store under home/chroma, one process at a time.",
    )
    policies_dir: Path | None = Field(
        default=None,
        description="Directory with roles.yaml and thresholds.yaml; it must hold the policy "
        "pinned in the home (policies/pinned.py), else it is refused, never used.",
    )
    audit_anchor: Path | None = Field(
        default=None,
        description="Append-only file that receives the audit head (seq hash) after every "
        "append, outside the state DB (default home/audit-anchor.log).",
    )
    user: str | None = Field(default=None, description="Who you are when --as is not given.")
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    gateway_batching: bool = Field(
        default=True, description="Micro-batch concurrent single-row requests in the gateway."
    )
    gateway_batch_window_ms: float = Field(
        default=0.5,
        ge=0,
        le=50,
        description="Longest wait for more rows (a lone request never waits).",
    )
    gateway_max_batch: int = Field(default=64, ge=1, le=1000, description="Rows per model call.")
    gateway_workers: int = Field(
        default=0, ge=0, le=64, description="Gateway worker processes (0: one per core)."
    )
    llm_model: str = "gpt-4o-mini"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_config_file()),
        )

    # Resolved locations ---------------------------------------------------------------
    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def resolved_artifact_root(self) -> str:
        return self.artifact_root or (self.home_dir / "artifacts").as_uri()

    @property
    def resolved_state_db_url(self) -> str:
        return self.state_db_url or f"sqlite:///{self.home_dir / 'state.db'}"

    @property
    def resolved_graphs_db(self) -> Path:
        return Path(self.graphs_db) if self.graphs_db else self.home_dir / "graphs.db"

    @property
    def resolved_audit_anchor(self) -> Path:
        path = self.audit_anchor or self.home_dir / "audit-anchor.log"
        return path.expanduser().resolve()

    @property
    def resolved_chroma_path(self) -> Path:
        return self.home_dir / "chroma"

    @property
    def resolved_policies_dir(self) -> Path:
        return self.policies_dir or Path(__file__).resolve().parent.parent / "policies"

    def ensure_home(self) -> Path:
        home = self.home_dir
        home.mkdir(parents=True, exist_ok=True)
        return home


def load_settings(**overrides: Any) -> Settings:
    """Settings with explicit overrides (CLI flags) taking precedence over env and file.
    A value that does not fit is an InvalidInput naming the setting as the user wrote it."""
    from pydantic import ValidationError

    from core.errors import InvalidInput

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        parts = []
        for e in exc.errors()[:5]:
            field = str(e["loc"][0]) if e["loc"] else "?"
            got = (
                f" (got {e['input']!r})"
                if "input" in e and not isinstance(e["input"], dict)
                else ""
            )
            parts.append(f"{field} (MODELOPS_{field.upper()}): {e['msg']}{got}")
        raise InvalidInput(
            "a setting is not valid: " + "; ".join(parts),
            hint=f"Fix it in the environment or in {_config_file()} (see the README's "
            "Configuration table).",
        ) from exc
