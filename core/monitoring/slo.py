"""Service-level numbers per version from the prediction log: latency p50/p95/p99, error
rate and throughput over a window, and the same per time bucket (the latency plot).

A request counts against a version when the log names the version: an answer (200), a
model failure (500), a timeout (504), or an input the version's own contract refused (a
4xx after routing). A client's malformed request is refused before any version is picked;
it is counted at the model level (``unattributed``), never against a version.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.monitoring.window import LogWindow

TIMELINE_BUCKETS = 12


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


def version_slo(window: LogWindow, version: str) -> dict[str, Any]:
    """SLO numbers of one version over the whole window."""
    m = window.mask(version)
    status = window.status[m]
    total = int(m.sum())
    errors = int(np.count_nonzero(status != 200))
    return {
        "version": version,
        "requests": total,
        "errors": errors,
        "server_errors": int(np.count_nonzero(status >= 500)),
        "rejected": int(np.count_nonzero((status >= 400) & (status < 500))),
        "error_rate": errors / total if total else None,
        "throughput_rps": total / window.seconds,
        **_latency(window.latency_ms[m]),
        "window_seconds": window.seconds,
    }


def timeline(
    window: LogWindow, version: str | None = None, buckets: int = TIMELINE_BUCKETS
) -> list[dict[str, Any]]:
    """Per-bucket requests, error rate and latency percentiles (for plots and breach windows)."""
    m = window.mask(version) if version is not None else np.ones(len(window), dtype=bool)
    ts, lat, status = window.ts[m], window.latency_ms[m], window.status[m]
    edges = np.linspace(window.since, window.until, buckets + 1)
    idx = np.clip(np.searchsorted(edges, ts, side="right") - 1, 0, buckets - 1)
    out = []
    for b in range(buckets):
        sel = idx == b
        n = int(sel.sum())
        errs = int(np.count_nonzero(status[sel] != 200))
        out.append(
            {
                "start": float(edges[b]),
                "end": float(edges[b + 1]),
                "requests": n,
                "errors": errs,
                "error_rate": errs / n if n else None,
                **_latency(lat[sel]),
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
