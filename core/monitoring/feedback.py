"""Labels and outcomes that arrive after a prediction: ``POST /feedback`` on the gateway.

The gateway checks the body's shape and appends it to an in-memory buffer (a deque); a
background thread writes batches to the state DB, as the prediction log does. A label joins
its prediction by ``prediction_id`` (``<gateway>-<seq>``, returned with every prediction).
Import-light: the gateway imports this module.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import BigInteger, DateTime, Float, Index, Integer, String, Text, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from core.state import Base, aware, ensure_tables

log = logging.getLogger("modelops.gateway.feedback")
PREDICTION_ID = re.compile(r"^([0-9a-f]{8})-([1-9][0-9]{0,17})$")
MAX_ITEMS = 1000
MAX_PENDING = 100_000
MAX_METRICS = 20
_SCALARS = (str, int, float, bool)


class FeedbackRow(Base):
    __tablename__ = "prediction_feedback"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    model_name: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column("target", String(32))  # column keeps its first name
    prediction_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    metrics: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON object
    covariate: Mapped[float | None] = mapped_column(Float, nullable=True)
    ts = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_feedback_model_pid", "model_name", "target", "prediction_id"),)


class FeedbackError(ValueError):
    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def parse_feedback(body: Any) -> list[tuple[str, Any, dict | None, float | None]]:
    """``{"prediction_id", "label"?, "metrics"?, "covariate"?}`` or ``{"feedback": [...]}``.

    ``label``: the true answer (a JSON scalar, or a list for a batch prediction);
    ``metrics``: A/B outcomes by name (numbers); ``covariate``: a pre-period value (CUPED).
    """
    if type(body) is not dict:
        raise FeedbackError('body must be a JSON object with a "prediction_id"')
    items = body.get("feedback") if "feedback" in body else [body]
    if type(items) is not list or not items:
        raise FeedbackError('"feedback" must be a non-empty array of objects')
    if len(items) > MAX_ITEMS:
        raise FeedbackError(f"at most {MAX_ITEMS} feedback items per request, got {len(items)}")
    out = []
    for i, item in enumerate(items):
        where = f"item {i}: " if len(items) > 1 else ""
        if type(item) is not dict:
            raise FeedbackError(f"{where}expected an object")
        extra = set(item) - {"prediction_id", "label", "metrics", "covariate"}
        if extra:
            raise FeedbackError(f"{where}unknown fields {sorted(extra)}")
        pid = item.get("prediction_id")
        if type(pid) is not str or not PREDICTION_ID.match(pid):
            raise FeedbackError(
                f'{where}"prediction_id" must be the id a prediction returned (e.g. "1a2b3c4d-17")'
            )
        label = item.get("label")
        if label is not None and not (
            isinstance(label, _SCALARS)
            or (
                type(label) is list
                and len(label) <= MAX_ITEMS
                and all(isinstance(v, _SCALARS) for v in label)
            )
        ):
            raise FeedbackError(
                f'{where}"label" must be a string, number or boolean (or a list of them)'
            )
        metrics = item.get("metrics")
        if metrics is not None:
            if (
                type(metrics) is not dict
                or len(metrics) > MAX_METRICS
                or not all(
                    type(k) is str and 0 < len(k) <= 64 and _is_number(v)
                    for k, v in metrics.items()
                )
            ):
                raise FeedbackError(
                    f'{where}"metrics" must map up to {MAX_METRICS} names to finite numbers'
                )
        cov = item.get("covariate")
        if cov is not None and not _is_number(cov):
            raise FeedbackError(f'{where}"covariate" must be a finite number')
        if label is None and metrics is None:
            raise FeedbackError(f'{where}give a "label" or "metrics" (or both)')
        out.append((pid, label, metrics, None if cov is None else float(cov)))
    return out


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and v == v and v not in (float("inf"), float("-inf"))


class FeedbackLog:
    """Buffers feedback in memory and writes it in batches from one background thread."""

    def __init__(
        self, engine: Engine, model_name: str, environment: str, *, flush_seconds: float = 0.5
    ) -> None:
        self.engine = engine
        self.model_name = model_name
        self.environment = environment
        self.flush_seconds = flush_seconds
        self._pending: deque = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None
        ensure_tables(engine, FeedbackRow)

    def record(self, items: list[tuple[str, Any, dict | None, float | None]]) -> int:
        now = time.time()
        room = MAX_PENDING - len(self._pending)
        for item in items[: max(room, 0)]:
            self._pending.append((now, *item))
        dropped = max(len(items) - max(room, 0), 0)
        self.dropped += dropped
        return len(items) - dropped

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feedback-log", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> int:
        batch = []
        while self._pending and len(batch) < 5000:
            batch.append(self._pending.popleft())
        if not batch:
            return 0
        rows = [
            {
                "model_name": self.model_name,
                "target": self.environment,  # a Core insert takes column names
                "prediction_id": pid,
                "label": None if label is None else orjson.dumps(label).decode(),
                "metrics": None if metrics is None else orjson.dumps(metrics).decode(),
                "covariate": cov,
                "ts": datetime.fromtimestamp(ts, UTC),
            }
            for ts, pid, label, metrics, cov in batch
        ]
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(FeedbackRow), rows)
        except Exception as exc:  # keep them for the next try, say so
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("feedback flush failed (%d kept): %s", len(batch), self.last_error)
            self._pending.extendleft(reversed(batch))
            return 0
        self.written += len(batch)
        return len(batch) + self.flush()


def read_feedback(
    engine: Engine,
    model_name: str,
    *,
    environment: str = "production",
    since: float | None = None,
    limit: int = 200_000,
) -> list[dict[str, Any]]:
    """Feedback rows of a model (newest last), JSON decoded; the latest per prediction wins."""
    ensure_tables(engine, FeedbackRow)
    t = FeedbackRow
    q = select(t.prediction_id, t.label, t.metrics, t.covariate, t.ts).where(
        t.model_name == model_name, t.environment == environment
    )
    if since is not None:
        q = q.where(t.ts >= datetime.fromtimestamp(since, UTC))
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(t.id.desc()).limit(limit)).all()
    latest: dict[str, dict[str, Any]] = {}
    for r in reversed(rows):
        latest[r.prediction_id] = {
            "prediction_id": r.prediction_id,
            "label": None if r.label is None else orjson.loads(r.label),
            "metrics": None if r.metrics is None else orjson.loads(r.metrics),
            "covariate": r.covariate,
            "ts": aware(r.ts).timestamp()
            if not isinstance(r.ts, str)
            else datetime.fromisoformat(r.ts).timestamp(),
        }
    return list(latest.values())
