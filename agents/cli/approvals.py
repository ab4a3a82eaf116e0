"""``agent approvals list|show|approve|reject|resume``."""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import as_option, call, console, emit, human, json_option, runtime


@click.group()
def approvals() -> None:
    """Review and decide production promotion requests."""


@approvals.command("list")
@click.option("--status", type=click.Choice(["pending", "approved", "rejected", "expired"]))
@as_option
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, status: str | None, as_user: str | None, as_json: bool) -> None:
    """Approval requests, newest first."""
    out = call(ctx, human(ctx, as_user), "list_approvals", {"status": status} if status else {})

    def render(data: dict[str, Any]) -> None:
        from rich.table import Table

        t = Table("id", "model", "version", "status", "requested by", "decided by", "expires")
        for a in data["approvals"]:
            t.add_row(
                a["id"],
                a["model_name"],
                a["version"],
                a["status"],
                a["requested_by"],
                a["decided_by"] or "-",
                a["expires_at"][:19],
            )
        console().print(t if data["approvals"] else "No approval requests.")

    emit(out, as_json, render)


def render_request(a: dict[str, Any]) -> None:
    c = console()
    ev = a["evidence"]
    cand = ev["candidate"]
    c.print(
        f"[bold]{a['id']}[/bold]: promote {a['model_name']} v{a['version']} to production  [{a['status']}]"
    )
    c.print(
        f"  requested by {a['requested_by']} via {a['requested_via']}; expires {a['expires_at'][:19]}"
    )
    if a.get("decided_by"):
        c.print(f"  decided by {a['decided_by']} at {a['decided_at'][:19]}: {a['reason']}")
    c.print(
        f"  dataset      {ev['dataset']['path']} ({ev['dataset']['rows']} rows, sha256 {ev['dataset']['sha256'][:12]}…)"
    )
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(ev["metrics"].items()))
    c.print(f"  metrics      {metrics}")
    if ev.get("champion"):
        ch = ev["champion"]
        comp = ch.get("comparison") or {}
        c.print(
            f"  vs champion v{ch['version']}: {comp.get('verdict', 'not compared')} ({comp.get('reason', '')})"
        )
        for k, m in sorted(comp.get("per_metric", {}).items()):
            c.print(
                f"      {k:10} {m['difference']:+.4f}  CI [{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]  {m['verdict']}"
            )
    else:
        c.print("  champion     none yet")
    for k, v in cand["honesty"].items():
        c.print(f"  {k:12} {v}")
    val = ev["validation"]
    c.print(
        f"  QA verdict   {val['validation_status']} by {val['validated_by']} ({val['validation_summary']})"
    )
    for g in ev["gates"]["checks"]:
        mark = "[green]pass[/green]" if g["passed"] else "[red]FAIL[/red]"
        c.print(f"  gate {mark}  {g['message']}")
    c.print(f"  evidence sha256 {a['evidence_hash']}")


@approvals.command("show")
@click.argument("approval_id")
@as_option
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, approval_id: str, as_user: str | None, as_json: bool) -> None:
    """One request with the full evidence an approver reviews."""
    out = call(ctx, human(ctx, as_user), "get_approval", {"approval_id": approval_id})
    emit(out["approval"], as_json, render_request)


def _decide(
    ctx: click.Context,
    approval_id: str,
    as_user: str | None,
    approve: bool,
    reason: str,
    evidence_hash: str | None,
    as_json: bool,
) -> None:
    actor = human(ctx, as_user)
    req = call(ctx, actor, "get_approval", {"approval_id": approval_id})["approval"]
    if not as_json:
        render_request(req)
    # The hash of the evidence this person was shown (or pinned with --evidence-hash).
    seen = evidence_hash or req["evidence_hash"]
    call(
        ctx,
        actor,
        "decide_approval",
        {"approval_id": approval_id, "approve": approve, "evidence_hash": seen, "reason": reason},
    )
    if not as_json:
        console().print(f"{'Approved' if approve else 'Rejected'} {approval_id} as {actor.name}.")
    _resume(ctx, approval_id, as_json)


def _resume(ctx: click.Context, approval_id: str, as_json: bool) -> None:
    if not as_json:
        console().print("Continuing the promotion workflow…")
    out = runtime(ctx).promotion.resume(approval_id)
    emit(out, as_json, render_outcome)


def render_outcome(out: dict[str, Any]) -> None:
    c = console()
    for line in out.get("log", []):
        c.print(f"  · {line}")
    c.print(f"[bold]{out['status']}[/bold]: {out.get('message', '')}")
    exe = out.get("execution") or {}
    if exe.get("gateway_url"):
        url = exe["gateway_url"]
        c.print(f"Gateway: {url}  (health: {url}/health, metrics: {url}/metrics)")
        c.print(f"Try:  agent predict {exe['name']} --input '{{\"features\": [...30 numbers...]}}'")
        c.print(
            f"  or  curl -s {url}/predict -H 'content-type: application/json' -d '{{\"features\": [...]}}'"
        )


@approvals.command("approve")
@click.argument("approval_id")
@as_option
@click.option("--reason", default="", help="Why (kept in the audit log).")
@click.option("--evidence-hash", help="Refuse unless the evidence still has this SHA-256.")
@json_option
@click.pass_context
def approve_cmd(
    ctx: click.Context,
    approval_id: str,
    as_user: str | None,
    reason: str,
    evidence_hash: str | None,
    as_json: bool,
) -> None:
    """Approve a pending promotion (listed approvers; never the requester) and run it."""
    _decide(ctx, approval_id, as_user, True, reason, evidence_hash, as_json)


@approvals.command("reject")
@click.argument("approval_id")
@as_option
@click.option("--reason", default="", help="Why (kept in the audit log).")
@json_option
@click.pass_context
def reject_cmd(
    ctx: click.Context, approval_id: str, as_user: str | None, reason: str, as_json: bool
) -> None:
    """Reject a pending promotion."""
    _decide(ctx, approval_id, as_user, False, reason, None, as_json)


@approvals.command("resume")
@click.argument("approval_id")
@as_option
@json_option
@click.pass_context
def resume_cmd(ctx: click.Context, approval_id: str, as_user: str | None, as_json: bool) -> None:
    """Finish a decided promotion whose run was interrupted (safe to repeat: deploys once)."""
    call(ctx, human(ctx, as_user), "get_approval", {"approval_id": approval_id})
    _resume(ctx, approval_id, as_json)
