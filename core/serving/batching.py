"""Adaptive micro-batching of single-row requests for one served version.

Concurrent single-row requests that reach the event loop in the same tick are gathered into
one model call (one ONNX Runtime or scikit-learn call on a stacked array) and each is answered
with its own row. A lone request is never held back: the flush is scheduled with
``call_soon``, so it runs on the next loop iteration. Only when at least two rows are already
waiting does the batcher wait, at most ``window_s``, for more (up to ``max_batch`` rows).

A lone client pays nothing at all: while only one connection has sent rows to a version for
the last ``CONCURRENCY_MEMORY_S`` (and none is waiting), its rows skip the batcher and are
predicted at once (``Batcher.alone``); a second connection turns gathering back on.

A failing batch call is retried row by row, so one bad row fails only its own request; every
request gets either its own result or its own exception, never a silently dropped answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

PredictFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
DEFAULT_WINDOW_S = 0.0005
MAX_WINDOW_S = 0.05
DEFAULT_MAX_BATCH = 64
MAX_MAX_BATCH = 1000
# After a row from another connection than the last one, gather for at least this long.
CONCURRENCY_MEMORY_S = 0.002


def check_config(window_s: float, max_batch: int) -> None:
    """Raise ValueError with a clear message for a window or batch size out of range."""
    if not (isinstance(window_s, int | float) and 0 <= window_s <= MAX_WINDOW_S):
        raise ValueError(f"batch window {window_s!r} s: must be between 0 and {MAX_WINDOW_S} s")
    if isinstance(max_batch, bool) or not isinstance(max_batch, int):
        raise ValueError(f"max batch {max_batch!r}: must be an integer")
    if not 1 <= max_batch <= MAX_MAX_BATCH:
        raise ValueError(f"max batch {max_batch}: must be between 1 and {MAX_MAX_BATCH}")


def batching_flags(
    enabled: bool = True, window_ms: float | None = None, max_batch: int | None = None
) -> list[str]:
    """The ``core.serving.gateway`` command-line flags for a batching configuration, none
    for a default (checked here, so a bad value fails before any process or manifest is made)."""
    check_config(
        DEFAULT_WINDOW_S if window_ms is None else window_ms / 1000,
        DEFAULT_MAX_BATCH if max_batch is None else max_batch,
    )
    flags = [] if enabled else ["--no-batching"]
    if window_ms is not None:
        flags += ["--batch-window-ms", f"{float(window_ms):g}"]
    if max_batch is not None:
        flags += ["--max-batch", str(max_batch)]
    return flags


class Batcher:
    """Gathers single-row calls to ``predict`` into batches on the running event loop.

    ``inline``: run the model call on the event loop (µs-scale ONNX calls); otherwise in the
    loop's default executor. ``batches`` and ``batched_rows`` count what was run.
    """

    def __init__(
        self,
        predict: PredictFn,
        *,
        inline: bool,
        window_s: float = DEFAULT_WINDOW_S,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        check_config(window_s, max_batch)
        self.predict = predict
        self.inline = inline
        self.window_s = float(window_s)
        self.max_batch = max_batch
        self._pending: list[tuple[np.ndarray, asyncio.Future]] = []
        self._scheduled = False
        self._waited = False
        self._last_peer: Any = None
        self._gather_until = 0.0
        self.batches = 0
        self.batched_rows = 0

    def alone(self, peer: Any, now: float) -> bool:
        """True when this row may skip the batcher: it comes from the same connection as the
        last one, no other connection sent a row for ``CONCURRENCY_MEMORY_S``, and no row is
        waiting. (``peer``: the connection's address; ``now``: a monotonic clock in s.)"""
        if peer != self._last_peer or peer is None:
            self._last_peer = peer
            self._gather_until = now + CONCURRENCY_MEMORY_S
            return False
        return now >= self._gather_until and not self._pending

    def submit(self, x: np.ndarray) -> asyncio.Future:
        """A future for ``predict(x)`` on one row (``x`` of shape (1, n_features))."""
        if x.ndim != 2 or x.shape[0] != 1:
            raise ValueError(f"the batcher takes one row of shape (1, n), got {x.shape}")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((x, fut))
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            self._waited = False
            loop.call_soon(self._tick)
        return fut

    def _tick(self) -> None:
        n = len(self._pending)
        if n == 0:
            self._scheduled = False
            return
        # Two or more already waiting: others are likely in flight; wait once, briefly.
        if n >= 2 and self.window_s > 0 and not self._waited and n < self.max_batch:
            self._waited = True
            asyncio.get_running_loop().call_later(self.window_s, self._tick)
            return
        self._flush()

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._scheduled = False
        if not batch:
            return
        self.batches += 1
        self.batched_rows += len(batch)
        if self.inline:
            _answer(batch, run_batch(self.predict, [x for x, _ in batch]))
            return
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(None, run_batch, self.predict, [x for x, _ in batch])
        job.add_done_callback(lambda j: _answer(batch, _job_result(j, len(batch))))


def _job_result(job: asyncio.Future, n: int) -> list:
    exc = job.exception()
    return [exc] * n if exc is not None else job.result()


def _answer(batch: list[tuple[np.ndarray, asyncio.Future]], results: list) -> None:
    for (_, fut), res in zip(batch, results, strict=True):
        if fut.done():  # the request gave up (timeout, disconnect)
            continue
        if isinstance(res, BaseException):
            fut.set_exception(res)
        else:
            fut.set_result(res)


def run_batch(predict: PredictFn, rows: list[np.ndarray]) -> list:
    """``predict`` on the stacked rows, split back per row; a failed call is retried row by
    row, so each row gets its own result or its own exception."""
    if len(rows) == 1:
        return [_one(predict, rows[0])]
    try:
        labels, proba = predict(np.concatenate(rows))
        labels = np.asarray(labels)
        if len(labels) != len(rows) or (proba is not None and len(proba) != len(rows)):
            raise ValueError(f"model returned {len(labels)} rows for {len(rows)}")
    except Exception:
        return [_one(predict, x) for x in rows]
    return [
        (labels[i : i + 1], None if proba is None else _row(proba, i)) for i in range(len(rows))
    ]


def _row(proba: Any, i: int) -> Any:
    # ONNX Runtime's zipmap output is a list of dicts; arrays are sliced as arrays.
    return proba[i : i + 1]


def _one(predict: PredictFn, x: np.ndarray) -> Any:
    try:
        return predict(x)
    except Exception as exc:  # returned, then raised in the request that sent this row
        return exc
