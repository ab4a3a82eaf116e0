"""Our own tables (deployments, approvals, audit, …) on SQLAlchemy.

SQLite under ``MODELOPS_HOME`` by default; the same tables run on PostgreSQL for scale-out.
Each store declares its tables on ``Base`` and creates them on first use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase


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


def ensure_tables(engine: Engine, *tables) -> None:  # noqa: ANN002
    """Create the given tables if missing; each store calls this for the tables it owns."""
    Base.metadata.create_all(engine, tables=[t.__table__ for t in tables])
