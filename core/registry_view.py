"""A read-only view of MLflow's model-registry tables in a SQLite store, for the read paths.

MLflow spends about 2.5 s per process importing itself and checking its schema before it
answers ``search_registered_models`` (benchmarks/cli.py measures it); this view reads the same
rows with SQLAlchemy Core in milliseconds, without importing mlflow. It never writes: the
connection is opened read-only and every write goes through MLflow (``core.registry``). Any
other store, a schema revision it was not checked against, or MLflow workspaces: no view, and
callers use the MLflow client. tests/test_registry_view.py compares both answers.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, and_, bindparam, column, create_engine, func, select, table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from core.errors import InvalidInput, NotFound
from core.names import parse_version_ref, validate_name
from core.registry import (
    ALIASES,
    ModelVersionInfo,
    no_such_version,
    version_info,
    version_of_label,
)

# MLflow schema revisions (``alembic_version``) whose registry tables this view was checked
# against. A store at any other revision is read through MLflow, which migrates or refuses it;
# the test that compares this set with the installed mlflow's migration head says when to
# re-check the tables below after an mlflow upgrade.
#   dc11669786a5  mlflow 3.17's head (job executor persistence).
#   f4a9b2c7d1e6  mlflow 3.18's head. Its chain since dc11669786a5 leaves every table read
#                 here untouched: e7d1f4b2a9c6 adds the skill-registry tables (skills,
#                 skill_versions, skill_tags, skill_version_tags, skill_aliases),
#                 8b6ad64cb8f5 adds columns, indexes and issue_categories to SQL issues, and
#                 f4a9b2c7d1e6 makes MCP server version columns case-sensitive (on MySQL and
#                 MSSQL only; a no-op on SQLite). The two intermediate revisions are no
#                 release's head, and MLflow refuses a store stopped there, so they stay out.
KNOWN_SCHEMA_REVISIONS = frozenset({"dc11669786a5", "f4a9b2c7d1e6"})
# Without MLFLOW_ENABLE_WORKSPACES, MLflow's SQL store reads and writes this workspace only.
DEFAULT_WORKSPACE = "default"
# MLflow marks a deleted version with this stage and a deleted logged model with this
# lifecycle stage, and hides both from every read.
_DELETED_VERSION_STAGE = "Deleted_Internal"
_DELETED_LOGGED_MODEL = "deleted"

_models = table("registered_models", column("workspace"), column("name"), column("description"))
_versions = table(
    "model_versions",
    column("workspace"),
    column("name"),
    column("version"),
    column("creation_time"),
    column("description"),
    column("current_stage"),
    column("source"),
    column("run_id"),
    column("status"),
)
_version_tags = table(
    "model_version_tags",
    column("workspace"),
    column("name"),
    column("version"),
    column("key"),
    column("value"),
)
_aliases = table(
    "registered_model_aliases",
    column("workspace"),
    column("name"),
    column("alias"),
    column("version"),
)
_logged_models = table(
    "logged_models", column("model_id"), column("artifact_location"), column("lifecycle_stage")
)
_alembic = table("alembic_version", column("version_num"))


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///…`` tracking URI (None for any other store)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(tracking_uri).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _workspaces_enabled() -> bool:
    return os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").strip().lower() in ("true", "1")


def open_registry_view(tracking_uri: str) -> RegistryView | None:
    """The view of this store, or None when MLflow must answer (not SQLite, no database yet,
    a schema revision the view does not know, or workspaces enabled)."""
    path = sqlite_path(tracking_uri)
    if path is None or not path.is_file() or _workspaces_enabled():
        return None
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    engine = create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False),
        # Pooled: opening and closing a connection per read was half of a read's cost in a
        # long-lived process (agent serve); each SELECT still sees the latest commit.
        poolclass=QueuePool,
    )
    try:
        with engine.connect() as conn:
            revisions = set(conn.execute(select(_alembic.c.version_num)).scalars())
    except SQLAlchemyError:  # not (yet) an MLflow database: MLflow creates or refuses it
        engine.dispose()
        return None
    if len(revisions) != 1 or not revisions <= KNOWN_SCHEMA_REVISIONS:
        engine.dispose()
        return None
    return RegistryView(engine)


class RegistryView:
    """The read methods of ``core.registry.ModelRegistry`` with the same answers, from SQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list_models(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            models = conn.execute(_LIST_MODELS).all()
            counts = {row.name: (row.n, row.latest) for row in conn.execute(_VERSION_COUNTS)}
            aliases = self._aliases(conn, None)
        out = []
        for m in models:
            n, latest = counts.get(m.name, (0, None))
            out.append(
                {
                    "name": m.name,
                    "latest_version": int(latest) if latest is not None else None,
                    "versions": int(n),
                    "aliases": aliases.get(m.name, {}),
                    "description": m.description or "",
                }
            )
        return sorted(out, key=lambda m: m["name"])

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        with self.engine.connect() as conn:
            self._require_model(conn, name)
            return self._version_infos(conn, name, None)

    def get(self, name: str, version: str | int) -> ModelVersionInfo:
        """A version by number, by alias (``champion``/``challenger``) or by version label."""
        validate_name("model", name)
        version = str(version)
        ref = parse_version_ref(name, version)
        if ref.label:
            labelled = [
                int(v.version) for v in self.list_versions(name) if v.version_label == ref.label
            ]
            version = version_of_label(name, ref.label, sorted(labelled))
        with self.engine.connect() as conn:
            self._require_model(conn, name)
            if version in ALIASES:
                number = self._aliases(conn, name).get(name, {}).get(version)
            elif version.isdigit():
                number = int(version)
            else:
                raise InvalidInput(
                    f"invalid version {version!r} for {name}",
                    hint="Give a version number or one of: champion, challenger.",
                )
            found = [] if number is None else self._version_infos(conn, name, int(number))
        if not found:
            raise no_such_version(name, version)
        return found[0]

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version an alias points at, or None when unset."""
        with self.engine.connect() as conn:
            self._require_model(conn, name)
            v = self._aliases(conn, name).get(name, {}).get(alias)
        return str(v) if v is not None else None

    # Queries ---------------------------------------------------------------------------
    def _require_model(self, conn: Any, name: str) -> None:
        validate_name("model", name)
        row = conn.execute(
            select(_models.c.name).where(
                _models.c.workspace == DEFAULT_WORKSPACE, _models.c.name == name
            )
        ).first()
        if row is None:
            raise NotFound(
                f"no registered model named {name!r}",
                hint="See `agent models list` for registered models.",
            )

    def _aliases(self, conn: Any, name: str | None) -> dict[str, dict[str, int]]:
        """model name -> {alias: version} (MLflow's ``RegisteredModel.aliases``)."""
        rows = (
            conn.execute(_ALL_ALIASES)
            if name is None
            else conn.execute(_ALIASES_OF, {"alias_model": name})
        )
        out: dict[str, dict[str, int]] = {}
        for row in rows:
            out.setdefault(row.name, {})[row.alias] = row.version
        return out

    def _version_infos(self, conn: Any, name: str, number: int | None) -> list[ModelVersionInfo]:
        """The live versions of ``name`` (or only version ``number``), in version order."""
        where = [_live_versions(), _versions.c.name == name]
        tag_where = [
            _version_tags.c.workspace == DEFAULT_WORKSPACE,
            _version_tags.c.name == name,
        ]
        if number is not None:
            where.append(_versions.c.version == number)
            tag_where.append(_version_tags.c.version == number)
        rows = conn.execute(select(_versions).where(*where).order_by(_versions.c.version)).all()
        if not rows:
            return []
        tags: dict[int, dict[str, str]] = {}
        for t in conn.execute(
            select(_version_tags.c.version, _version_tags.c.key, _version_tags.c.value).where(
                *tag_where
            )
        ):
            tags.setdefault(int(t.version), {})[t.key] = t.value
        aliases = self._aliases(conn, name).get(name, {})
        logged = self._logged_artifacts(conn, (r.source for r in rows))
        out = []
        for r in rows:
            source = r.source or ""
            artifact_uri = source
            if source.startswith("models:/m-"):
                model_id = source.removeprefix("models:/")
                if model_id not in logged:
                    raise NotFound(
                        f"{name}/{r.version}'s logged model {model_id} does not exist "
                        "(deleted from the tracking store?)"
                    )
                artifact_uri = logged[model_id]
            out.append(
                version_info(
                    name=name,
                    version=str(r.version),
                    aliases=sorted(a for a, v in aliases.items() if str(v) == str(r.version)),
                    run_id=r.run_id,
                    source=source,
                    artifact_uri=artifact_uri,
                    status=r.status,
                    description=r.description,
                    tags=tags.get(int(r.version), {}),
                    created_at_ms=int(r.creation_time or 0),
                )
            )
        return out

    def _logged_artifacts(self, conn: Any, sources: Iterable[str]) -> dict[str, str]:
        ids = sorted(
            {s.removeprefix("models:/") for s in sources if s and s.startswith("models:/m-")}
        )
        if not ids:
            return {}
        rows = conn.execute(
            select(_logged_models.c.model_id, _logged_models.c.artifact_location).where(
                _logged_models.c.model_id.in_(ids),
                _logged_models.c.lifecycle_stage != _DELETED_LOGGED_MODEL,
            )
        )
        return {r.model_id: r.artifact_location for r in rows}


def _live_versions() -> Any:
    # The same predicates as MLflow's store: the workspace, and not deleted (a NULL stage
    # fails the comparison in SQL there too).
    return and_(
        _versions.c.workspace == DEFAULT_WORKSPACE,
        _versions.c.current_stage != _DELETED_VERSION_STAGE,
    )


# The statements every read runs, built once: building them per call (operators, cache keys)
# cost about a fifth of a `list_models` read in a long-lived process (agent serve).
_LIST_MODELS = (
    select(_models.c.name, _models.c.description)
    .where(_models.c.workspace == DEFAULT_WORKSPACE)
    .order_by(_models.c.name)
)
_VERSION_COUNTS = (
    select(
        _versions.c.name,
        func.count(_versions.c.version).label("n"),
        func.max(_versions.c.version).label("latest"),
    )
    .where(_live_versions())
    .group_by(_versions.c.name)
)
_ALL_ALIASES = select(_aliases.c.name, _aliases.c.alias, _aliases.c.version).where(
    _aliases.c.workspace == DEFAULT_WORKSPACE
)
_ALIASES_OF = _ALL_ALIASES.where(_aliases.c.name == bindparam("alias_model"))
