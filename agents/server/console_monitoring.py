"""The console's monitoring page: the ``monitor_report`` tool's output (the object
``agent monitor report NAME --json`` prints) shaped for reading: every version that served in
the window, numbers rounded, drifted features marked, inline SVG plots, and the alerts stored
for the window with what was done about them. ``monitoring_view`` is a pure function."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from agents.server.console import _NAME, SECURITY_HEADERS, _cp, _user, render
from agents.server.console_plots import bar_chart, line_chart
from agents.server.responses import ApiError

router = APIRouter(prefix="/console", include_in_schema=False)
MAX_WINDOW_MINUTES = 7 * 24 * 60
SLO_FIELDS = (
    "requests", "errors", "server_errors", "timeouts", "refused_at_edge", "batch_requests",
    "error_rate", "p50_ms", "p95_ms", "p99_ms",
)  # fmt: skip


def num(v: Any, digits: int = 4) -> str:
    """A number for reading: ints as they are, floats to ``digits`` significant digits."""
    if v is None:
        return "–"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}g}"


def ms(v: Any) -> str:
    return "–" if v is None else f"{v:.1f} ms"


def pct(v: Any) -> str:
    return "–" if v is None else f"{v * 100:.2f} %"


def slo_view(slo: dict[str, Any]) -> dict[str, str]:
    """Every SLO field of the report, formatted (the test checks each is on the page)."""
    out = {k: num(slo.get(k)) for k in SLO_FIELDS}
    out["error_rate"] = pct(slo.get("error_rate"))
    for k in ("p50_ms", "p95_ms", "p99_ms"):
        out[k] = ms(slo.get(k))
    out["throughput_rps"] = num(slo.get("throughput_rps"), 3)
    return out


def _metrics(block: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, num(v, 3)) for k, v in (block.get("metrics") or {}).items()]


def _drift_view(d: dict[str, Any]) -> dict[str, Any]:
    from core.monitoring.drift import threshold_ratio

    columns = []
    bars = []
    for c in d.get("columns") or []:
        columns.append(
            {
                "column": c.get("column"),
                "status": c.get("status"),
                "method": c.get("method"),
                "score": num(c.get("score")),
                "threshold": num(c.get("threshold")),
                "psi": num(c.get("psi")),
                "drifted": bool(c.get("drifted")),
                "message": c.get("message", ""),
            }
        )
        if c.get("score") is not None and c.get("threshold") is not None:
            bars.append(
                {
                    "label": c["column"],
                    "ratio": threshold_ratio(c["method"], c["score"], c["threshold"]),
                    "flagged": bool(c.get("drifted")),
                    "text": f"{c['method']} {num(c['score'], 3)} (threshold {num(c['threshold'], 3)})",
                }
            )
    columns.sort(key=lambda c: not c["drifted"])  # drifted first
    return {
        "status": d.get("status"),
        "message": d.get("message", ""),
        "drifted": d.get("drifted"),
        "evaluated": d.get("evaluated"),
        "dataset_drift": d.get("dataset_drift"),
        "share": pct(d.get("drift_share")) if d.get("drift_share") is not None else "–",
        "rows": d.get("current_rows"),
        "columns": columns,
        "drifted_names": [c["column"] for c in columns if c["drifted"]],
        "bars": bars,
    }


def _plots(vr: dict[str, Any], slo_rules: dict[str, Any]) -> list[str]:
    v = vr["version"]
    tl = vr.get("timeline") or []
    mid = [((b["start"] + b["end"]) / 2, b) for b in tl]
    latency = line_chart(
        f"v{v} latency over time (single-row answers)",
        {k[:3]: [(t, b.get(k)) for t, b in mid] for k in ("p50_ms", "p95_ms", "p99_ms")},
        unit=" ms",
        threshold=slo_rules.get("latency_p99_ms"),
        threshold_label="p99 SLO",
        chart_id=f"plot-latency-{v}",
    )
    errors = line_chart(
        f"v{v} error rate (server errors and timeouts)",
        {"error rate": [(t, b.get("error_rate")) for t, b in mid]},
        threshold=slo_rules.get("error_rate"),
        threshold_label="SLO",
        y_max=None,
        chart_id=f"plot-errors-{v}",
    )
    volume = line_chart(
        f"v{v} request volume per bucket",
        {"requests": [(t, float(b.get("requests") or 0)) for t, b in mid]},
        chart_id=f"plot-volume-{v}",
    )
    drift = _drift_view(vr.get("data_drift") or {})
    bars = bar_chart(
        f"v{v} drift per feature (score relative to its threshold; > 1 is drift)",
        drift["bars"],
        threshold_label="threshold (1)",
        chart_id=f"plot-drift-{v}",
    )
    perf = vr.get("performance_timeline") or []
    pmid = [((b["start"] + b["end"]) / 2, b) for b in perf]
    performance = line_chart(
        f"v{v} accuracy: estimated (HEURISTIC) vs realized (labels)",
        {
            "estimated": [(t, b.get("estimated_accuracy")) for t, b in pmid],
            "realized": [(t, b.get("realized_accuracy")) for t, b in pmid],
        },
        y_min=0.0,
        y_max=1.0,
        chart_id=f"plot-performance-{v}",
    )
    return [latency, errors, volume, bars, performance]


def _alert_view(a: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": a.get("id"),
        "at": (a.get("created_at") or "")[:19],
        "severity": a.get("severity"),
        "kind": a.get("kind"),
        "version": a.get("version"),
        "message": a.get("message"),
        "value": num(a.get("value")),
        "threshold": num(a.get("threshold")),
        "action": a.get("action", "alert"),
        "delivery": a.get("delivery", ""),
    }


def monitoring_view(out: dict[str, Any]) -> dict[str, Any]:
    """The page's content from the monitor_report tool's output."""
    r = out["report"]
    slo_rules = {**((r.get("policy") or {}).get("slo") or {})}
    overrides = (r.get("policy") or {}).get("overrides") or {}
    if overrides.get("latency_p99_threshold_ms") is not None:
        slo_rules["latency_p99_ms"] = overrides["latency_p99_threshold_ms"]
    if overrides.get("error_rate_threshold") is not None:
        slo_rules["error_rate"] = overrides["error_rate_threshold"]
    versions = []
    for vr in r["versions"]:
        est, real, pd = (
            vr.get("estimated_performance") or {},
            vr.get("realized_performance") or {},
            vr.get("prediction_drift") or {},
        )
        versions.append(
            {
                "version": vr["version"],
                "served_earlier": bool(vr.get("served_earlier")),
                "answered": vr.get("answered_requests"),
                "profile": (vr.get("reference_profile") or {}).get("description", ""),
                "slo": slo_view(vr.get("slo") or {}),
                "drift": _drift_view(vr.get("data_drift") or {}),
                "prediction_drift": {
                    "status": pd.get("status"),
                    "method": pd.get("method"),
                    "score": num(pd.get("score")),
                    "threshold": num(pd.get("threshold")),
                    "on": pd.get("on", ""),
                    "drifted": bool(pd.get("drifted")),
                    "message": pd.get("message", ""),
                },
                "estimated": {
                    "status": est.get("status"),
                    "metrics": _metrics(est),
                    "rows": est.get("rows"),
                    "reason": est.get("reason", ""),
                    "warnings": est.get("warnings") or [],
                },
                "realized": {
                    "status": real.get("status"),
                    "metrics": _metrics(real),
                    "rows": real.get("rows", 0),
                    "note": real.get("note", ""),
                },
                "problems": vr.get("problems") or [],
                "plots": _plots(vr, slo_rules),
            }
        )
    w = r["window"]
    return {
        "name": out["name"],
        "environment": r["environment"],
        "window": {
            "from": w["from"],
            "to": w["to"],
            "minutes": num(w["seconds"] / 60, 4),
            "rows": w["rows"],
            "truncated": w.get("truncated"),
        },
        "notes": r.get("notes") or [],
        "versions": versions,
        "alerts_now": [_alert_view(a) for a in out.get("alerts") or []],
        "stored_alerts": [_alert_view(a) for a in out.get("stored_alerts") or []],
        "slo_rules": {k: num(v) for k, v in slo_rules.items()},
        "policy_digest": (r.get("policy") or {}).get("digest") or "",
    }


def _window(window_minutes: float | None) -> None:
    if window_minutes is not None and not 0 < window_minutes <= MAX_WINDOW_MINUTES:
        raise ApiError(422, "invalid_input", "window_minutes: between 0 and 7 days")


@router.get("/models/{name}/monitoring")
def monitoring_page(request: Request, name: str, window_minutes: float | None = None) -> Response:
    """The monitoring report of what production served in the window (the same object as
    the API's GET /models/{name}/monitoring and `agent monitor report NAME --json`)."""
    from agents.server.api_ops import monitoring_args

    p, session = _user(request)
    if not _NAME.match(name):
        raise ApiError(404, "not_found", "no such model")
    _window(window_minutes)
    out = _cp(request).tool(
        p, "monitor_report", monitoring_args(name, None, "production", window_minutes)
    )
    return render(
        request,
        "monitoring.html",
        who=p.name,
        csrf=session.csrf,
        name=name,
        m=monitoring_view(out),
        window_minutes=window_minutes,
    )


@router.get("/models/{name}/monitoring/report.html")
def monitoring_report_html(
    request: Request, name: str, window_minutes: float | None = None
) -> Response:
    """The report with its plots, as `agent monitor report NAME --html FILE` writes it (the
    tool writes it to a new file under MODELOPS_HOME; it is read back and removed). Its own
    CSP: inline PNG plots and the report's inline style, still no script."""
    from agents.server.api_ops import monitoring_args

    p, _session = _user(request)
    if not _NAME.match(name):
        raise ApiError(404, "not_found", "no such model")
    _window(window_minutes)
    cp = _cp(request)
    scratch = cp.services.settings.home_dir / "console-reports"
    scratch.mkdir(exist_ok=True)
    target = scratch / f"{secrets.token_hex(8)}.html"
    args = {**monitoring_args(name, None, "production", window_minutes), "html_path": str(target)}
    try:
        cp.tool(p, "monitor_report", args)
        html = target.read_text()
    finally:
        target.unlink(missing_ok=True)
    headers = {
        **SECURITY_HEADERS,
        "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    }
    return HTMLResponse(html, headers=headers)
