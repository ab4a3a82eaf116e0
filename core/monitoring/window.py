"""One time window of the prediction log, decoded for monitoring.

Rows are read newest first and bounded (``max_rows``); the window says when it was cut.
Features are decoded from every shape the gateway logs: one row (``[x1..xn]``), a batch
(``[[...], ...]``), and named columns (``{"name": x}``, ``[{"name": x}, ...]`` or
``{"name": [x, ...]}``). Positional rows are named after the reference's features when the
widths agree; a width that does not is a schema change, reported and never guessed at.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.serving.prediction_log import PredictionLogRow
from core.state import aware, ensure_tables

MAX_ROWS = 50_000


@dataclass
class LogWindow:
    model_name: str
    environment: str
    since: float
    until: float
    ts: np.ndarray  # epoch seconds
    request_id: list[str]
    revision: list[int | None]
    version: list[str | None]
    role: list[str]
    status: np.ndarray
    latency_ms: np.ndarray
    features: list[Any]
    output: list[Any]
    truncated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max(self.until - self.since, 1e-9)

    def __len__(self) -> int:
        return len(self.request_id)

    def mask(self, version: str | None = None, *, served: bool = True) -> np.ndarray:
        """Rows of one version (and, with ``served``, not shadow copies)."""
        v = np.array([x == version for x in self.version], dtype=bool)
        if served:
            v &= np.array([r != "shadow" for r in self.role], dtype=bool)
        return v


def read_window(
    engine: Engine,
    model_name: str,
    *,
    environment: str = "production",
    seconds: float = 3600.0,
    until: float | None = None,
    max_rows: int = MAX_ROWS,
) -> LogWindow:
    """The log rows of ``model_name`` from ``until - seconds`` to ``until`` (now)."""
    ensure_tables(engine, PredictionLogRow)
    end = time.time() if until is None else until
    start = end - seconds
    t = PredictionLogRow
    q = (
        select(
            t.ts, t.request_id, t.revision, t.model_version, t.role, t.status,
            t.latency_ms, t.features, t.output,
        )
        .where(
            t.model_name == model_name,
            t.environment == environment,
            t.ts >= datetime.fromtimestamp(start, UTC),
            t.ts <= datetime.fromtimestamp(end, UTC),
        )
        .order_by(t.id.desc())
        .limit(max_rows + 1)
    )  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    truncated = len(rows) > max_rows
    rows = rows[:max_rows][::-1]
    notes = []
    if truncated:
        first = _epoch(rows[0].ts) if rows else start
        notes.append(
            f"the window holds more than {max_rows} rows; the newest {max_rows} were read "
            f"(from {datetime.fromtimestamp(first, UTC).isoformat(timespec='seconds')})"
        )
    return LogWindow(
        model_name,
        environment,
        start,
        end,
        np.array([_epoch(r.ts) for r in rows], dtype=float),
        [r.request_id for r in rows],
        [r.revision for r in rows],
        [r.model_version for r in rows],
        [r.role for r in rows],
        np.array([r.status for r in rows], dtype=int),
        np.array([r.latency_ms for r in rows], dtype=float),
        [None if r.features is None else orjson.loads(r.features) for r in rows],
        [None if r.output is None else orjson.loads(r.output) for r in rows],
        truncated,
        notes,
    )


def _epoch(ts: Any) -> float:
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    return aware(ts).timestamp()


# Features and outputs ------------------------------------------------------------------
@dataclass
class DecodedRows:
    columns: dict[str, list[Any]]
    n_rows: int
    problems: list[str]
    request_index: list[int]  # the window row each decoded row came from


def decode_features(
    features: list[Any], reference_names: list[str], rows_of: list[int] | None = None
) -> DecodedRows:
    """Columns of values from logged feature payloads (``None`` where a value is absent)."""
    cols: dict[str, list[Any]] = {}
    problems: dict[str, int] = {}
    origin: list[int] = []
    n = 0
    width = len(reference_names)
    indices = rows_of if rows_of is not None else range(len(features))

    def add(row: dict[str, Any], i: int) -> None:
        nonlocal n
        for k in set(cols) | set(row):
            cols.setdefault(k, [None] * n).append(row.get(k))
        n += 1
        origin.append(i)

    for i in indices:
        payload = features[i]
        for row in _rows(payload):
            if isinstance(row, dict):
                add(row, i)
            elif isinstance(row, list):
                if len(row) != width:
                    key = f"rows of {len(row)} values where the reference has {width} features"
                    problems[key] = problems.get(key, 0) + 1
                    continue
                add(dict(zip(reference_names, row, strict=True)), i)
            else:
                problems["payloads that are not rows"] = (
                    problems.get("payloads that are not rows", 0) + 1
                )
    return DecodedRows(cols, n, [f"{c} {what}" for what, c in problems.items()], origin)


def _rows(payload: Any) -> list[Any]:
    if payload is None:
        return []
    if isinstance(payload, dict):
        if payload and all(isinstance(v, list) for v in payload.values()):
            lengths = {len(v) for v in payload.values()}
            if len(lengths) == 1:
                (m,) = lengths
                return [{k: v[j] for k, v in payload.items()} for j in range(m)]
        return [payload]
    if isinstance(payload, list) and payload and isinstance(payload[0], list | dict):
        return payload
    return [payload] if isinstance(payload, list) else [None]


def decode_outputs(outputs: list[Any], rows_of: list[int]) -> tuple[list[Any], list[Any]]:
    """Predictions and probability rows, one per decoded request row."""
    preds: list[Any] = []
    probas: list[Any] = []
    for i in rows_of:
        out = outputs[i] or {}
        p, pr = out.get("prediction"), out.get("probabilities")
        if isinstance(p, list):
            preds.extend(p)
            probas.extend(pr if isinstance(pr, list) and len(pr) == len(p) else [None] * len(p))
        else:
            preds.append(p)
            probas.append(pr)
    return preds, probas


def numeric_column(values: list[Any]) -> np.ndarray:
    """Floats, with NaN for anything missing or not a number."""
    return np.array(
        [v if isinstance(v, int | float) and not isinstance(v, bool) else np.nan for v in values],
        dtype=np.float64,
    )
