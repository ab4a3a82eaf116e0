"""Small inline SVG charts for the console (line charts over time, horizontal bars with a
threshold). Hand-made markup with presentation attributes only: the console's CSP forbids
inline styles and scripts, and the page must work with no network (no CDN, no JS)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

W, H = 500, 190
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 24, 30
CAP = 5.0  # bars are capped at 5x their threshold (a p-value of 1e-30 would hide the rest)
COLORS = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777")


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def _scale(lo: float, hi: float, a: float, b: float):  # noqa: ANN202 - a small closure
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def line_chart(
    title: str,
    series: dict[str, list[tuple[float, float | None]]],
    *,
    unit: str = "",
    threshold: float | None = None,
    threshold_label: str = "",
    y_min: float | None = 0.0,
    y_max: float | None = None,
    chart_id: str = "",
) -> str:
    """Series of (epoch seconds, value or None) as lines; a dashed line at ``threshold``."""
    points = [(t, v) for s in series.values() for t, v in s if v is not None]
    if not points:
        return f'<p class="meta plot-empty">{escape(title)}: no data in the window.</p>'
    xs = [t for s in series.values() for t, _ in s]
    x0, x1 = min(xs), max(xs)
    vals = [v for _, v in points] + ([threshold] if threshold is not None else [])
    lo = min(vals) if y_min is None else min(y_min, min(vals))
    hi = max(vals) if y_max is None else y_max
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    hi = hi * 1.08 if y_max is None else hi
    sx, sy = _scale(x0, x1, LEFT, W - RIGHT), _scale(lo, hi, H - BOTTOM, TOP)
    out = [_open(title, chart_id)]
    out += _axes(lo, hi, sy, unit)
    for t in (x0, x1):
        label = datetime.fromtimestamp(t, UTC).strftime("%H:%M")
        anchor = "start" if t == x0 else "end"
        out.append(
            f'<text x="{sx(t):.1f}" y="{H - 10}" font-size="10" fill="#4b5563" '
            f'text-anchor="{anchor}">{label} UTC</text>'
        )
    if threshold is not None:
        y = sy(threshold)
        out.append(
            f'<line class="threshold" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#b91c1c" stroke-width="1.2" stroke-dasharray="5 4"/>'
            f'<text x="{W - RIGHT}" y="{y - 4:.1f}" font-size="10" fill="#b91c1c" '
            f'text-anchor="end">{escape(threshold_label or "threshold")} {_fmt(threshold)}{unit}</text>'
        )
    for i, (name, s) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        segment: list[str] = []
        for t, v in [*s, (0.0, None)]:
            if v is None:
                if len(segment) > 1:
                    out.append(
                        f'<polyline fill="none" stroke="{color}" stroke-width="1.8" '
                        f'points="{" ".join(segment)}"/>'
                    )
                segment = []
                continue
            segment.append(f"{sx(t):.1f},{sy(v):.1f}")
        for t, v in s:
            if v is not None:
                out.append(
                    f'<circle cx="{sx(t):.1f}" cy="{sy(v):.1f}" r="2.5" fill="{color}">'
                    f"<title>{escape(name)}: {_fmt(v)}{unit}</title></circle>"
                )
        out.append(
            f'<text x="{LEFT + 6 + 110 * i}" y="{TOP - 4}" font-size="10" fill="{color}">'
            f"■ {escape(name)}</text>"
        )
    out.append("</svg></figure>")
    return "".join(out)


def bar_chart(
    title: str, bars: list[dict[str, Any]], *, threshold_label: str = "", chart_id: str = ""
) -> str:
    """Horizontal bars ``{label, value, threshold, flagged}`` as value / threshold, so that
    one dashed line at 1 is every bar's threshold (scores whose methods differ compare)."""
    if not bars:
        return f'<p class="meta plot-empty">{escape(title)}: nothing measured.</p>'
    row = 18
    height = TOP + row * len(bars) + BOTTOM
    left, text_room = 140, 150  # room for the labels left and the scores right
    ratios = [min(b["ratio"], CAP) for b in bars]
    hi = max(max(ratios), 1.2)
    sx = _scale(0.0, hi, left, W - text_room)
    out = [_open(title, chart_id, height)]
    for i, (b, r) in enumerate(zip(bars, ratios, strict=True)):
        y = TOP + i * row
        color = "#b91c1c" if b["flagged"] else "#2563eb"
        out.append(
            f'<text x="{left - 6}" y="{y + 12}" font-size="10" fill="#1b1f24" text-anchor="end">'
            f"{escape(str(b['label'])[:24])}</text>"
            f'<rect class="{"bar-drift" if b["flagged"] else "bar"}" x="{left}" y="{y + 3}" '
            f'width="{max(sx(r) - left, 1):.1f}" height="{row - 6}" fill="{color}">'
            f"<title>{escape(str(b['label']))}: {escape(b['text'])}</title></rect>"
            f'<text x="{max(sx(r), left) + 4:.1f}" y="{y + 12}" font-size="9" fill="#4b5563">'
            f"{escape(b['text'])}</text>"
        )
    x = sx(1.0)
    out.append(
        f'<line class="threshold" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP - 4}" y2="{height - BOTTOM + 4}" '
        'stroke="#b91c1c" stroke-width="1.2" stroke-dasharray="5 4"/>'
        f'<text x="{x:.1f}" y="{height - 10}" font-size="10" fill="#b91c1c" text-anchor="middle">'
        f"{escape(threshold_label or 'threshold')} · bars capped at {CAP:g}×</text></svg></figure>"
    )
    return "".join(out)


def _open(title: str, chart_id: str, height: int = H) -> str:
    ident = f' id="{escape(chart_id)}"' if chart_id else ""
    return (
        f'<figure class="chart"{ident}><figcaption>{escape(title)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" '
        f'height="{height}" role="img" aria-label="{escape(title)}">'
        f'<rect x="0" y="0" width="{W}" height="{height}" fill="#ffffff"/>'
    )


def _axes(lo: float, hi: float, sy: Any, unit: str) -> list[str]:
    out = [
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#9ca3af"/>',
        f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" stroke="#9ca3af"/>',
    ]
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = sy(v)
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eef0f3"/>'
            f'<text x="{LEFT - 4}" y="{y + 3:.1f}" font-size="10" fill="#4b5563" '
            f'text-anchor="end">{_fmt(v)}{escape(unit)}</text>'
        )
    return out
