"""``agent monitor report|watch|alerts``: drift, performance and SLOs of a served model."""

from __future__ import annotations

import time
from typing import Any

import click

from agents.cli.common import as_option, call, console, emit, environment_option, human, json_option

environment_opt = environment_option()
MAX_WATCH_SECONDS = 24 * 3600


def parse_window(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``2d`` (or plain minutes) -> minutes."""
    units = {"s": 1 / 60, "m": 1.0, "h": 60.0, "d": 1440.0}
    raw = text.strip().lower()
    try:
        if raw and raw[-1] in units:
            minutes = float(raw[:-1]) * units[raw[-1]]
        else:
            minutes = float(raw)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: use e.g. 30m, 1h or 2d") from exc
    if not 0 < minutes <= 7 * 1440:
        raise click.BadParameter(f"{text!r}: between a second and 7 days")
    return minutes


@click.group()
def monitor() -> None:
    """Monitoring: drift, estimated/realized performance, SLOs, alerts, policy rollbacks."""


def render_report(data: dict[str, Any]) -> None:
    from rich.markup import escape

    c = console()
    r = data["report"]
    w = r["window"]
    c.print(
        f"[bold]{r['model_name']}[/bold] ({r['environment']}): {w['from']} → {w['to']}, {w['rows']} log rows"
    )
    for note in r.get("notes", []):
        c.print(f"  note: {note}")
    for vr in r["versions"]:
        slo = vr["slo"]
        c.print(
            f"\n[bold]v{vr['version']}[/bold]  reference profile: {vr['reference_profile']['description']}"
        )
        rate = "–" if slo["error_rate"] is None else f"{slo['error_rate']:.2%}"
        p = (
            "–"
            if slo["p99_ms"] is None
            else f"p50 {slo['p50_ms']:.1f} / p95 {slo['p95_ms']:.1f} / p99 {slo['p99_ms']:.1f} ms"
        )
        c.print(
            f"  SLO: {slo['requests']} requests, errors {slo['errors']} ({rate}), {p}, {slo['throughput_rps']:.3g} req/s"
        )
        if slo.get("refused_at_edge") or slo.get("batch_requests"):
            c.print(
                f"    not counted: {slo.get('refused_at_edge', 0)} refused at the edge (the "
                f"clients'), {slo.get('batch_requests', 0)} batch requests left out of latency"
            )
        d = vr["data_drift"]
        if d.get("status") == "measured":
            verdict = {True: "DATASET DRIFT", False: "no dataset drift", None: "not judged"}[
                d["dataset_drift"]
            ]
            c.print(
                f"  data drift: {d['drifted']} of {d['evaluated']} features drifted → {verdict} (share threshold {d['drift_share']:g}; {d['current_rows']} rows)"
            )
            for col in d["columns"]:
                if col["status"] not in ("ok",):
                    score = (
                        ""
                        if col["score"] is None
                        else f" {col['method']} {col['score']:.4g} (threshold {col['threshold']:g})"
                    )
                    extra = (
                        f" new categories {col['new_categories']}"
                        if col.get("new_categories")
                        else ""
                    )
                    c.print(
                        f"    {col['column']}: {col['status']}{score}{extra} {col.get('message', '')}"
                    )
        else:
            c.print(f"  data drift: {d.get('status')} {d.get('message', '')}")
        pd_ = vr["prediction_drift"]
        if pd_.get("score") is not None:
            c.print(
                f"  prediction drift ({pd_['on']}): {pd_['status']} {pd_['method']} {pd_['score']:.4g} (threshold {pd_['threshold']:g})"
            )
        else:
            c.print(f"  prediction drift: {pd_.get('status')} {pd_.get('message', '')}")
        est = vr["estimated_performance"]
        if est.get("status") == "estimated":
            m = ", ".join(f"{k} {v:.3f}" for k, v in est["metrics"].items())
            c.print(f"  estimated performance [HEURISTIC]: {m} on {est['rows']} predictions")
            for warn in est.get("warnings", []):
                c.print(f"    warning: {warn}")
        else:
            c.print(
                f"  estimated performance [HEURISTIC]: {est.get('status')}: {est.get('reason', '')}"
            )
        real = vr["realized_performance"]
        if real.get("status") == "measured":
            c.print(
                "  realized performance: "
                + ", ".join(f"{k} {v:.3f}" for k, v in real["metrics"].items())
                + f" on {real['rows']} labels"
            )
        else:
            c.print(f"  realized performance: {real.get('status')} ({real.get('rows', 0)} labels)")
        if real.get("note"):
            c.print(f"    {real['note']}")
        for p_ in vr.get("problems", []):
            c.print(f"  problem: {p_}")
    alerts = data.get("alerts") or []
    c.print(f"\nalerts: {len(alerts)}")
    for a in alerts:
        c.print(escape(f"  [{a['severity']}] {a['kind']}: {a['message']}"))
    if data.get("rollback"):
        rb = data["rollback"]
        if rb.get("executed"):
            what = "EXECUTED: " + rb["message"]
        elif rb.get("ordered") and not rb.get("acted"):
            what = f"{rb.get('message', '')} (not run: {rb.get('acts_for', '')})"
        else:
            what = rb.get("message") or (rb.get("error") or {}).get("message", "")
        c.print(escape(f"policy rollback: {what}"))
        for note in rb.get("notes") or []:
            c.print(escape(f"  note: {note}"))
    if data.get("html_path"):
        c.print(f"HTML report: {data['html_path']}")


@monitor.command("report")
@click.argument("model")
@click.option("--window", "window", default=None, help="e.g. 30m, 1h, 2d (default: the policy's).")
@click.option("--html", "html_path", default=None, help="Also write an HTML report with plots.")
@environment_opt
@as_option
@json_option
@click.pass_context
def report_cmd(
    ctx: click.Context,
    model: str,
    window: str | None,
    html_path: str | None,
    environment: str,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Drift, estimated and realized performance and SLOs of MODEL (NAME, NAME/3, NAME@champion)."""
    args: dict[str, Any] = {"model_id": model, "environment": environment}
    if window:
        args["window_minutes"] = parse_window(window)
    if html_path:
        args["html_path"] = html_path
    emit(call(ctx, human(ctx, as_user), "monitor_report", args), as_json, render_report)


@monitor.command("watch")
@click.argument("model")
@click.option(
    "--every",
    "every",
    type=click.FloatRange(1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds between checks.",
)
@click.option(
    "--for",
    "duration",
    default="10m",
    show_default=True,
    help="Stop after this long (e.g. 30s, 10m, 1h).",
)
@click.option("--window", "window", default=None, help="Report window (default: the policy's).")
@environment_opt
@as_option
@click.pass_context
def watch_cmd(
    ctx: click.Context,
    model: str,
    every: float,
    duration: str,
    window: str | None,
    environment: str,
    as_user: str | None,
) -> None:
    """Check MODEL repeatedly (alerts stored; the pinned policy may roll back), with a live line.

    This is the monitoring policy's acting loop: it rolls production back only when you hold
    deploy:rollback; for anyone else it reports what the policy would do."""
    actor = human(ctx, as_user)
    seconds = min(parse_window(duration) * 60, MAX_WATCH_SECONDS)
    args: dict[str, Any] = {"model_id": model, "environment": environment}
    if window:
        args["window_minutes"] = parse_window(window)
    from rich.markup import escape

    c = console()
    end = time.monotonic() + seconds
    checks = 0
    try:
        with c.status("starting…") as status:
            while True:
                out = call(ctx, actor, "check_monitoring", args)
                checks += 1
                if checks == 1 and out["rollback"].get("acts_for"):
                    acting = out["rollback"].get("acted")
                    c.print(
                        ("the policy acts: " if acting else "report only: ")
                        + escape(out["rollback"]["acts_for"])
                    )
                line = _live_line(out, checks, max(0.0, end - time.monotonic()))
                status.update(line)
                for a in out["alerts"]:
                    c.print(escape(f"[{a['severity']}] {a['kind']}: {a['message']}"))
                rb = out["rollback"]
                if rb.get("executed"):
                    c.print(f"[bold red]policy rollback[/]: {escape(rb['message'])}")
                elif rb.get("ordered"):
                    c.print(
                        f"[bold yellow]policy rollback ordered, not run[/]: {escape(rb['message'])}"
                    )
                if time.monotonic() + every > end:
                    break
                time.sleep(every)
    except KeyboardInterrupt:
        c.print("stopped (Ctrl-C)")
    c.print(
        f"{checks} check(s) done; `agent monitor alerts {model.split('@')[0].split('/')[0]}` lists what was raised"
    )


def _live_line(out: dict[str, Any], checks: int, left: float) -> str:
    parts = [f"check {checks}"]
    for vr in out["report"]["versions"]:
        slo = vr["slo"]
        p99 = "–" if slo["p99_ms"] is None else f"{slo['p99_ms']:.1f}ms"
        rate = "–" if slo["error_rate"] is None else f"{slo['error_rate']:.1%}"
        drift = vr["data_drift"]
        share = drift.get("share")
        parts.append(
            f"v{vr['version']}: {slo['requests']} req, p99 {p99}, err {rate}, drift {'–' if share is None else f'{share:.0%}'}"
        )
    parts.append(f"alerts {len(out['alerts'])}")
    parts.append(f"{left:.0f}s left")
    return " | ".join(parts)


@monitor.command("alerts")
@click.argument("model", required=False)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@as_option
@json_option
@click.pass_context
def alerts_cmd(
    ctx: click.Context, model: str | None, limit: int, as_user: str | None, as_json: bool
) -> None:
    """Stored alerts, newest first (drift, SLO breaches, policy rollbacks)."""
    args: dict[str, Any] = {"limit": limit}
    if model:
        args["name"] = model
    out = call(ctx, human(ctx, as_user), "list_monitoring_alerts", args)

    def render(data: dict[str, Any]) -> None:
        from rich.markup import escape

        c = console()
        if not data["alerts"]:
            c.print("No alerts.")
        for a in data["alerts"]:
            c.print(
                escape(
                    f"#{a['id']} {a['created_at'][:19]} {a['model_name']} v{a['version']} [{a['severity']}] {a['kind']} ({a['action']}, {a['delivery']}): {a['message']}"
                )
            )

    emit(out, as_json, render)
