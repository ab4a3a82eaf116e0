"""The prediction log: every request the gateway answers (or rejects), in the state DB.

The request path appends a tuple to an in-memory deque; a background thread turns batches
of them into rows and inserts them with one executemany per batch. Nothing on the request
path touches the database. When the database stays unreachable the buffer is capped, and
what had to be dropped is counted (``/health``, ``/metrics``) and logged, never hidden.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from core.errors import InvalidInput
from core.state import Base, ensure_tables

log = logging.getLogger("modelops.gateway.log")
MAX_PENDING = 200_000
BATCH_ROWS = 5_000
BACKGROUND_NICENESS = 10
_SLICE = 256  # rows per executemany inside one batch's transaction
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY
_COLUMNS = (
    "model_name",
    "target",  # the environment; the column keeps its first name
    "ts",
    "request_id",
    "revision",
    "model_version",
    "role",
    "status",
    "latency_ms",
    "features",
    "output",
    "error",
)


class PredictionLogRow(Base):
    __tablename__ = "prediction_log"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    model_name: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column("target", String(32))  # column keeps its first name
    ts = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    role: Mapped[str] = mapped_column(String(16))  # primary | canary | shadow | none
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    features: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON array (or rows)
    output: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON object
    error: Mapped[str | None] = mapped_column(String(512), nullable=True)
    __table_args__ = (Index("ix_prediction_log_model_ts", "model_name", "target", "ts"),)


# (epoch seconds, request seq, revision, version, role, status, latency s, features, output, error)
Entry = tuple[float, int, int | None, str | None, str, int, float, Any, Any, str | None]


class PredictionLog:
    """Buffers entries in memory and writes them in batches from one background thread."""

    def __init__(
        self,
        engine: Engine,
        model_name: str,
        environment: str,
        *,
        gateway_id: str,
        flush_seconds: float = 0.5,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.engine = engine
        self.model_name = model_name
        self.environment = environment
        self.gateway_id = gateway_id
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self._pending: deque[Entry] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self.flush_errors = 0
        self.last_error: str | None = None
        self._stamp_sec = -1
        self._stamp_prefix = ""
        ensure_tables(engine, PredictionLogRow)

    def record(self, entry: Entry) -> None:
        """Called on the request path: one deque append (append/popleft are thread-safe)."""
        if len(self._pending) < self.max_pending:
            self._pending.append(entry)
        else:
            self.dropped += 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and write whatever is still buffered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()

    def _run(self) -> None:
        _lower_priority(f"prediction log of {self.model_name}")
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> int:
        """Write everything buffered so far; on a database error keep it for the next try."""
        total = 0
        while self._pending:
            n = min(len(self._pending), BATCH_ROWS)
            batch = [self._pending.popleft() for _ in range(n)]
            try:
                self._insert(batch)
            except Exception as exc:  # the DB may be down or locked: retry later, say so
                self.flush_errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.error("prediction log flush failed (%d rows kept): %s", n, self.last_error)
                room = self.max_pending - len(self._pending)
                keep = batch[: max(room, 0)]
                self.dropped += n - len(keep)
                self._pending.extendleft(reversed(keep))
                return total
            self.written += n
            total += n
        return total

    def _insert(self, batch: list[Entry]) -> None:
        # A raw executemany with tuples: SQLAlchemy's per-row parameter processing costs
        # several times the insert itself. This thread shares the GIL with the request
        # path, so it works in slices and yields between them (sleep(0) hands the GIL to a
        # waiting request at once instead of after the 5 ms switch interval).
        sql, sqlite = self._sql()
        prefix = f"{self.gateway_id}-"
        dumps = orjson.dumps
        stamp = self._stamp
        zone = "" if sqlite else "+00:00"
        with self.engine.begin() as conn:
            for start in range(0, len(batch), _SLICE):
                rows = []
                for ts, seq, rev, version, role, status, latency, features, output, error in batch[
                    start : start + _SLICE
                ]:
                    rows.append(
                        (
                            self.model_name,
                            self.environment,
                            stamp(ts) + zone,
                            prefix + str(seq),
                            rev,
                            version,
                            role,
                            status,
                            latency * 1000.0,
                            None
                            if features is None
                            else dumps(features, option=_JSON_OPTS).decode(),
                            None if output is None else dumps(output, option=_JSON_OPTS).decode(),
                            error[:512] if error else None,
                        )
                    )
                    if len(rows) % 32 == 0:
                        time.sleep(0)
                conn.exec_driver_sql(sql, rows)
                time.sleep(0)

    def _stamp(self, ts: float) -> str:
        """UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's DateTime text on SQLite); the
        seconds part is formatted once per second, which keeps this well under a µs."""
        sec = int(ts)
        if sec != self._stamp_sec:
            self._stamp_sec = sec
            self._stamp_prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec))
        return f"{self._stamp_prefix}.{int((ts - sec) * 1_000_000):06d}"

    def _sql(self) -> tuple[str, bool]:
        dialect = self.engine.dialect
        mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
        if mark is None:
            raise InvalidInput(
                f"the prediction log cannot write through the {dialect.name} driver "
                f"(paramstyle {dialect.paramstyle})",
                hint="Use SQLite or PostgreSQL (psycopg) for MODELOPS_STATE_DB_URL.",
            )
        sql = f"INSERT INTO prediction_log ({', '.join(_COLUMNS)}) VALUES ({', '.join([mark] * len(_COLUMNS))})"
        return sql, dialect.name == "sqlite"


def _lower_priority(what: str) -> None:
    """Run this (background) thread at a lower CPU priority than the request path.

    On Linux a thread has its own nice value; with every core busy, the scheduler then
    prefers the event loop over the log writer, which keeps the writer out of tail latency.
    """
    if not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
    except OSError as exc:
        log.warning("could not lower the priority of the %s thread: %s", what, exc)


def read_prediction_log(
    engine: Engine, model_name: str, *, environment: str = "production", limit: int = 1000
) -> list[dict[str, Any]]:
    """The newest ``limit`` log rows of a model, newest first, with JSON columns decoded."""
    ensure_tables(engine, PredictionLogRow)
    q = (
        select(PredictionLogRow)
        .where(
            PredictionLogRow.model_name == model_name, PredictionLogRow.environment == environment
        )
        .order_by(PredictionLogRow.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [
        {
            **r,
            "features": None if r["features"] is None else orjson.loads(r["features"]),
            "output": None if r["output"] is None else orjson.loads(r["output"]),
        }
        for r in rows
    ]


def wait_for_rows(
    engine: Engine, model_name: str, n: int, *, environment: str, timeout: float
) -> int:
    """Poll until the log holds at least ``n`` rows for the model (for tests and tools)."""
    from sqlalchemy import func

    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(PredictionLogRow)
                .where(
                    PredictionLogRow.model_name == model_name,
                    PredictionLogRow.environment == environment,
                )
            ).scalar_one()
        if count >= n:
            return count
        time.sleep(0.1)
    return count
