"""A self-contained HTML monitoring report: tables plus PNG plots (matplotlib, inline).
Numbers are rounded for reading (4 significant digits, shares as percentages) and a metric
set prints as ``name value`` pairs, never as a Python dict."""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime
from typing import Any

MAX_FEATURE_PLOTS = 12


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return (
        f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'
    )


def _histograms(features: dict[str, Any], drift: dict[str, dict[str, Any]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(features)[:MAX_FEATURE_PLOTS]
    if not names:
        return "<p>No numeric feature values in the window to plot.</p>"
    cols = 3
    rows = (len(names) + cols - 1) // cols
    # Constrained layout leaves room for each title above its own axes (tight bounding boxes
    # alone let a title run into the tick labels of the row above).
    fig, axes = plt.subplots(
        rows, cols, figsize=(12, 3.0 * rows), squeeze=False, layout="constrained"
    )
    for ax, name in zip(axes.flat, names, strict=False):
        ref, cur = features[name]
        ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
        both = np.concatenate([ref, cur]) if len(cur) else ref
        bins = np.histogram_bin_edges(both, bins=30) if len(both) else 10
        ax.hist(ref, bins=bins, density=True, alpha=0.55, label="reference")
        if len(cur):
            ax.hist(cur, bins=bins, density=True, alpha=0.55, label="current")
        d = drift.get(name, {})
        flag = " DRIFT" if d.get("drifted") else ""
        score = f" {d['method']} {d['score']:.3g}" if d.get("score") is not None else ""
        ax.set_title(f"{name}{score}{flag}", fontsize=9, color="crimson" if flag else "black")
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    return _png(fig)


def _drift_scores(scores: list[tuple]) -> str:
    import matplotlib.pyplot as plt

    if not scores:
        return "<p>No drift scores (too little data in the window).</p>"
    fig, ax = plt.subplots(figsize=(12, max(2.0, 0.25 * len(scores))), layout="constrained")
    names = [s[0] for s in scores]
    from core.monitoring.drift import threshold_ratio

    ratios = [threshold_ratio(method, score, thr) for _, score, thr, method, _ in scores]
    colors = ["crimson" if s[4] else "steelblue" for s in scores]
    ax.barh(names, [min(r, 10) for r in ratios], color=colors)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_xlabel("drift score relative to its threshold (> 1 is drift; capped at 10)")
    ax.tick_params(labelsize=7)
    return _png(fig)


def _latency(timelines: dict[str, list[dict[str, Any]]]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 3), layout="constrained")
    plotted = False
    for version, buckets in timelines.items():
        xs = [datetime.fromtimestamp(b["start"], UTC) for b in buckets if b["p99_ms"] is not None]
        if not xs:
            continue
        plotted = True
        for key, style in (("p50_ms", ":"), ("p95_ms", "--"), ("p99_ms", "-")):
            ax.plot(
                xs,
                [b[key] for b in buckets if b["p99_ms"] is not None],
                style,
                label=f"v{version} {key[:3]}",
            )
    if not plotted:
        return "<p>No requests in the window: no latency to plot.</p>"
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=7, ncol=3)
    ax.tick_params(labelsize=7)
    return _png(fig)


def render_html(report: dict[str, Any], plots: dict[str, dict[str, Any]]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Monitoring report: {e(report['model_name'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}.drift{color:crimson}</style>",
        "</head><body>",
        f"<h1>{e(report['model_name'])} ({e(report['environment'])})</h1>",
        f"<p>Window: {e(report['window']['from'])} to {e(report['window']['to'])} "
        f"({report['window']['seconds'] / 60:g} min); {report['window']['rows']} log rows.</p>",
    ]
    for note in report.get("notes", []):
        parts.append(f"<p><em>{e(note)}</em></p>")
    for vr in report["versions"]:
        v = vr["version"]
        plot = plots.get(v, {})
        parts.append(f"<h2>v{e(v)}</h2>")
        parts.append(
            f"<p>Reference profile: {e(vr.get('reference_profile', {}).get('description', 'none'))}</p>"
        )
        slo = vr["slo"]
        parts.append(
            "<table><tr><th>requests</th><th>errors</th><th>error rate</th><th>p50 ms</th>"
            "<th>p95 ms</th><th>p99 ms</th><th>req/s</th></tr><tr>"
            + "".join(
                f"<td>{_fmt(slo.get(k))}</td>"
                for k in (
                    "requests",
                    "errors",
                    "error_rate",
                    "p50_ms",
                    "p95_ms",
                    "p99_ms",
                    "throughput_rps",
                )
            )
            + "</tr></table>"
        )
        drift = vr.get("data_drift", {})
        if drift.get("columns"):
            parts.append(
                f"<h3>Data drift: {drift['drifted']} of {drift['evaluated']} features "
                f"(dataset drift: {drift['dataset_drift']})</h3><table><tr><th>feature</th>"
                "<th>method</th><th>score</th><th>threshold</th><th>status</th><th>PSI</th></tr>"
            )
            for c in drift["columns"]:
                cls = " class='drift'" if c.get("drifted") else ""
                parts.append(
                    f"<tr{cls}><td>{e(c['column'])}</td><td>{e(str(c.get('method')))}</td>"
                    f"<td>{_fmt(c.get('score'))}</td><td>{_fmt(c.get('threshold'))}</td>"
                    f"<td>{e(c['status'])} {e(c.get('message', ''))}</td><td>{_fmt(c.get('psi'))}</td></tr>"
                )
            parts.append("</table>")
        else:
            parts.append(
                f"<p>Data drift: {e(str(drift.get('status')))} {e(drift.get('message', ''))}</p>"
            )
        by_col = {c["column"]: c for c in drift.get("columns", [])}
        parts.append("<h3>Feature histograms: reference vs current</h3>")
        parts.append(_histograms(plot.get("features", {}), by_col))
        parts.append("<h3>Drift scores</h3>")
        parts.append(_drift_scores(plot.get("drift_scores", [])))
        est = vr.get("estimated_performance", {})
        parts.append(
            f"<h3>Estimated performance ({e(est.get('implementation_status', ''))})</h3>"
            f"<p>{e(str(est.get('status')))}: "
            f"{_metrics(est.get('metrics')) or e(str(est.get('reason', '')))}"
            f"{_rows(est.get('rows'), 'predictions')}</p>"
            "<ul>"
            + "".join(
                f"<li>{e(a)}</li>" for a in est.get("assumptions", []) + est.get("warnings", [])
            )
            + "</ul>"
        )
        real = vr.get("realized_performance", {})
        parts.append(
            f"<h3>Realized performance</h3><p>{e(str(real.get('status')))}: "
            f"{_metrics(real.get('metrics')) or e(str(real.get('reason', 'no labels yet')))}"
            f"{_rows(real.get('rows'), 'labels')}</p>"
            + (f"<p><em>{e(real['note'])}</em></p>" if real.get("note") else "")
        )
    parts.append("<h2>Latency over time</h2>")
    parts.append(
        _latency(
            {
                vr["version"]: plots.get(vr["version"], {}).get("timeline", [])
                for vr in report["versions"]
            }
        )
    )
    if report.get("alerts"):
        parts.append(
            "<h2>Alerts</h2><ul>"
            + "".join(
                f"<li>[{e(str(a.get('severity')))}] {e(str(a.get('kind')))}: {e(a['message'])}</li>"
                for a in report["alerts"]
            )
            + "</ul>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _metrics(metrics: Any) -> str:
    """``accuracy 0.9387, f1 0.95``: a metric set as a reader wants it."""
    if not isinstance(metrics, dict) or not metrics:
        return ""
    return ", ".join(f"{html.escape(str(k))} {_fmt(v)}" for k, v in metrics.items())


def _rows(n: Any, what: str) -> str:
    return f" (on {n} {what})" if isinstance(n, int) and n else ""
