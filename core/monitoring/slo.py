"""Service-level numbers per version from the prediction log: latency p50/p95/p99, error
rate and throughput over a window, and the same per time bucket (the latency plot).

Only outcomes the server caused count against a version: an answer (200), a model failure
(500) or a timeout (504) of the version that served the request. A request refused at the
edge (malformed JSON, wrong width or types, a value outside the model's input range, 413,
429, a missing credential) is the client's: it is reported (``refused_at_edge``) and never
counts as a request, an error or a latency of any version, so no client can steer a verdict
(or the monitoring policy's rollback) by sending bad requests. Latency percentiles are over
single-row answers: a client's large batch is slow by its own choice (batches are counted
beside them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.monitoring.window import LogWindow

TIMELINE_BUCKETS = 12
# Statuses the server is answerable for: an answer, a model failure, a gateway error, a
# timeout. Everything in 400..499 is a refusal at the edge.
SERVER_FAILURE_MIN = 500


def server_outcomes(status: np.ndarray) -> np.ndarray:
    """Rows whose outcome the server caused (answered or failed), not edge refusals."""
    return (status == 200) | (status >= SERVER_FAILURE_MIN)


def _latency(lat: np.ndarray) -> dict[str, float | None]:
    if len(lat) == 0:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "mean_ms": None}
    p50, p95, p99 = np.percentile(lat, [50, 95, 99])
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "mean_ms": float(lat.mean()),
    }


def _single_rows(window: LogWindow, m: np.ndarray) -> np.ndarray:
    """Of the rows in ``m``, those that carried one row of features (or failed before
    their features were logged): a batch's latency is the client's choice of size."""
    out = m.copy()
    for i in np.flatnonzero(m):
        f = window.features[i]
        if isinstance(f, list) and f and isinstance(f[0], list | dict) and len(f) > 1:
            out[i] = False
        elif isinstance(f, dict) and f and all(isinstance(v, list) for v in f.values()):
            out[i] = len(next(iter(f.values()))) <= 1
    return out


def version_slo(window: LogWindow, version: str) -> dict[str, Any]:
    """SLO numbers of one version over the whole window (server outcomes only)."""
    m = window.mask(version)
    status = window.status
    counted = m & server_outcomes(status)
    total = int(counted.sum())
    server_errors = int(np.count_nonzero(counted & (status >= SERVER_FAILURE_MIN)))
    single = _single_rows(window, counted)
    return {
        "version": version,
        "requests": total,
        "errors": server_errors,
        "server_errors": server_errors,
        "timeouts": int(np.count_nonzero(counted & (status == 504))),
        "refused_at_edge": int(np.count_nonzero(m & (status >= 400) & (status < 500))),
        "batch_requests": int(np.count_nonzero(counted & ~single)),
        "error_rate": server_errors / total if total else None,
        "throughput_rps": total / window.seconds,
        **_latency(window.latency_ms[single]),
        "window_seconds": window.seconds,
    }


def bucket_index(window: LogWindow, buckets: int = TIMELINE_BUCKETS) -> np.ndarray:
    """The time bucket of every row of the window (equal-width buckets over the window)."""
    edges = np.linspace(window.since, window.until, buckets + 1)
    return np.clip(np.searchsorted(edges, window.ts, side="right") - 1, 0, buckets - 1)


def timeline(
    window: LogWindow, version: str | None = None, buckets: int = TIMELINE_BUCKETS
) -> list[dict[str, Any]]:
    """Per-bucket requests, error rate and latency percentiles (for plots and breach windows),
    counted as ``version_slo`` counts them."""
    m = window.mask(version) if version is not None else np.ones(len(window), dtype=bool)
    m &= server_outcomes(window.status)
    single = _single_rows(window, m)
    lat, status = window.latency_ms, window.status
    edges = np.linspace(window.since, window.until, buckets + 1)
    idx = bucket_index(window, buckets)
    out = []
    for b in range(buckets):
        sel = m & (idx == b)
        n = int(sel.sum())
        errs = int(np.count_nonzero(sel & (status >= SERVER_FAILURE_MIN)))
        out.append(
            {
                "start": float(edges[b]),
                "end": float(edges[b + 1]),
                "requests": n,
                "errors": errs,
                "error_rate": errs / n if n else None,
                **_latency(lat[sel & single]),
            }
        )
    return out


def slo_report(window: LogWindow) -> dict[str, Any]:
    """Every version seen in the window, plus requests no version was named for."""
    versions = sorted(
        {v for v, r in zip(window.version, window.role, strict=True) if v and r != "shadow"},
        key=_key,
    )
    unattributed = np.array([v is None for v in window.version], dtype=bool)
    return {
        "window_seconds": window.seconds,
        "requests": int(len(window)),
        "versions": {v: version_slo(window, v) for v in versions},
        "unattributed": {
            "requests": int(unattributed.sum()),
            "errors": int(np.count_nonzero(window.status[unattributed] != 200)),
        },
        "truncated": window.truncated,
    }


def _key(v: str) -> tuple[int, str]:
    return (int(v), v) if v.isdigit() else (1 << 60, v)
