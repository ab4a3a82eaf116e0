"""Our own tables (deployments, approvals, audit, …) on SQLAlchemy.

SQLite under ``MODELOPS_HOME`` by default; the same tables run on PostgreSQL for scale-out.
Each store declares its tables on ``Base`` and creates them on first use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import Engine, String, create_engine, event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(dt: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every value we write is UTC."""
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine per URL per process; tables created on first use."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            # WAL lets the gateway read the routing table while the CLI writes.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            # In WAL mode NORMAL never corrupts the file; a power cut may lose the last commits.
            # It makes each audited tool call ~4x cheaper (fsync per checkpoint, not per commit).
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


class SchemaMarkRow(Base):
    """One row per one-time data migration already applied to this database."""

    __tablename__ = "schema_marks"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)


_checked: set[tuple[str, str]] = set()
# Tables whose ``target`` column holds a deployment environment (read as ``environment``).
_ENVIRONMENT_TABLES = ("deployments", "prediction_log", "prediction_feedback", "monitoring_alerts")
_LEGACY_ENVIRONMENTS = {"local": "production"}


def ensure_tables(engine: Engine, *tables) -> None:  # noqa: ANN002
    """Create the given tables if missing; each store calls this for the tables it owns.
    Rows written before an environment was renamed (``local`` -> ``production``) are
    rewritten once per table and database, and the migration is marked done."""
    Base.metadata.create_all(
        engine, tables=[SchemaMarkRow.__table__, *(t.__table__ for t in tables)]
    )
    for t in tables:
        table = t.__table__
        if table.name in _ENVIRONMENT_TABLES and "target" in table.c:
            _rename_environments(engine, table)


def _rename_environments(engine: Engine, table) -> None:  # noqa: ANN001
    key = f"{table.name}:environment-names-v2"
    if (str(engine.url), key) in _checked:
        return
    with engine.connect() as conn:
        done = conn.scalar(select(SchemaMarkRow.key).where(SchemaMarkRow.key == key))
    if done is None:
        try:
            with engine.begin() as conn:
                for old, new in _LEGACY_ENVIRONMENTS.items():
                    conn.execute(update(table).where(table.c.target == old).values(target=new))
                conn.execute(SchemaMarkRow.__table__.insert().values(key=key))
        except IntegrityError:
            pass  # another process applied it first, in its own transaction
    _checked.add((str(engine.url), key))
