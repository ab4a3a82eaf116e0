"""``agent approvals list|show|validate|approve|reject|resume``."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from agents.cli.common import (
    as_option,
    call,
    console,
    emit,
    human,
    is_interactive,
    json_option,
    runtime,
    table,
)
from core.errors import Conflict, InvalidInput, ModelOpsError

STATUSES = ["pending", "approved", "rejected", "expired", "executed", "superseded"]


@click.group()
def approvals() -> None:
    """Review and decide production change requests (promotions and rollbacks)."""


@approvals.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@as_option
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, status: str | None, as_user: str | None, as_json: bool) -> None:
    """Approval requests, newest first."""
    out = call(ctx, human(ctx, as_user), "list_approvals", {"status": status} if status else {})

    def render(data: dict[str, Any]) -> None:
        t = table("id", "action", "model", "version", "status", "requested by", "decided by")
        for a in data["approvals"]:
            t.add_row(
                a["id"],
                "rollback" if a["action"] == "rollback_production" else "promote",
                a["model_name"],
                a["version"],
                a["status"],
                a["requested_by"],
                a["decided_by"] or "-",
            )
        console().print(t if data["approvals"] else "No approval requests.")

    emit(out, as_json, render)


def _identity(flag: bool) -> str:
    return "token" if flag else "claimed, unauthenticated"


def _direction(higher_is_better: bool | None) -> str:
    """A difference's sign means nothing without it: for rmse a negative change is a gain."""
    if higher_is_better is None:
        return ""
    return " (higher is better)" if higher_is_better else " (lower is better)"


def render_request(a: dict[str, Any]) -> None:
    from tools.authorship import review_evidence

    c = console()
    ev = a["evidence"]
    plan = a.get("plan") or {}
    if a["action"] == "rollback_production":
        rb = ev["rollback"]
        c.print(
            f"[bold]{a['id']}[/bold]: roll {a['model_name']} back to v{a['version']}  [{a['status']}]"
        )
        c.print(
            f"  now serving  {', '.join('v' + v for v in rb['from_versions'])} (revision {rb['from_revision']})"
        )
        c.print(f"  returns to   approval {rb['returns_to_approval'] or 'none'}")
        c.print(f"  reason       {rb['reason']}")
    else:
        cand = ev["candidate"]
        c.print(
            f"[bold]{a['id']}[/bold]: promote {a['model_name']} v{a['version']} to production  [{a['status']}]"
        )
        steps = plan.get("steps")
        c.print(
            f"  plan         {plan.get('strategy', 'direct')}"
            + (f" {' → '.join(f'{s:g}%' for s in steps)}" if steps else "")
        )
        c.print(
            f"  dataset      {ev['dataset']['path']} ({ev['dataset']['rows']} rows, sha256 {ev['dataset']['sha256'][:12]}…)"
        )
        # Evidence from before versions had a task was a classifier's.
        c.print(f"  task         {cand.get('task') or 'binary (not recorded)'}")
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in sorted(ev["metrics"].items()))
        c.print(f"  metrics      {metrics}")
        if ev.get("champion"):
            ch = ev["champion"]
            comp = ch.get("comparison") or {}
            primary = comp.get("primary_metric")
            c.print(
                f"  vs champion v{ch['version']}"
                + (
                    f" on {primary}{_direction(comp.get('primary_higher_is_better'))}"
                    if primary
                    else ""
                )
                + f": {comp.get('verdict', 'not compared')} ({comp.get('reason', '')})"
            )
            for k, m in sorted(comp.get("per_metric", {}).items()):
                c.print(
                    f"      {k:10} {m['difference']:+.4f}  CI [{m['ci_low']:+.4f}, {m['ci_high']:+.4f}]  "
                    f"{m['verdict']}{_direction(m.get('higher_is_better'))}"
                )
        else:
            c.print("  champion     none yet")
        for k, v in cand["honesty"].items():
            c.print(f"  {k:12} {v}")
        c.print(f"  artifact     sha256 {cand['artifact_sha256']}")
        val = ev.get("validation")
        c.print(f"  QA verdict   {val['statement'] if val else 'none on record'}")
        hv = ev.get("human_validation")
        if hv:
            c.print(f"  human QA     {hv['statement']} [{hv['identity']}]")
        reviews, self_reviews = review_evidence(ev, a["requested_by"])
        for r in reviews:
            if r.get("error"):
                c.print(f"  design       [red]{r['digest']}: {r['error']}[/red]")
            else:
                c.print(
                    f"  design       {r['recommendation']} by {r['reviewer']} "
                    f"({r['recorded_at'][:19]}): {r['summary']}",
                    markup=False,
                )
        for r in self_reviews:
            # Shown so nothing is hidden, and labelled so nobody counts it.
            c.print(
                f"  self-review (not evidence) {r['recommendation']} by {r['reviewer']} "
                f"({r['recorded_at'][:19]}): {r['summary']}",
                markup=False,
            )
        for g in ev["gates"]["checks"]:
            mark = "[green]pass[/green]" if g["passed"] else "[red]FAIL[/red]"
            warn = " [yellow](warning)[/yellow]" if g.get("warning") else ""
            c.print(f"  gate {mark}  {g['message']}{warn}")
    c.print(
        f"  requested by {a['requested_by']} via {a['requested_via']} "
        f"({_identity(a['requester_authenticated'])}); expires {a['expires_at'][:19]}"
    )
    if a.get("decided_by"):
        c.print(
            f"  decided by   {a['decided_by']} ({_identity(a['decider_authenticated'])}) at "
            f"{a['decided_at'][:19]}: {a['reason']}"
        )
    if a.get("executed_at"):
        c.print(f"  executed by  {a['executed_by']} at {a['executed_at'][:19]}")
    c.print(f"  policy       sha256 {a['policy_digest']}")
    c.print(f"  evidence     sha256 {a['evidence_hash']}")


@approvals.command("show")
@click.argument("approval_id")
@as_option
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, approval_id: str, as_user: str | None, as_json: bool) -> None:
    """One request with the full evidence an approver reviews, and its evidence hash."""
    out = call(ctx, human(ctx, as_user), "get_approval", {"approval_id": approval_id})
    emit(out["approval"], as_json, render_request)


@approvals.command("validate")
@click.argument("approval_id")
@as_option
@json_option
@click.pass_context
def validate_cmd(ctx: click.Context, approval_id: str, as_user: str | None, as_json: bool) -> None:
    """As a human QATester (not the requester): re-evaluate a pending promotion and attach the verdict."""
    out = call(ctx, human(ctx, as_user), "validate_approval", {"approval_id": approval_id})

    def render(d: dict[str, Any]) -> None:
        c = console()
        c.print(f"{d['verdict']}: {d['statement']}")
        c.print(f"The evidence of {approval_id} now has sha256 {d['evidence_hash']}.")
        c.print(f"Review it with `agent approvals show {approval_id}` before deciding.")

    emit(out, as_json, render)


def _decide(
    ctx: click.Context,
    approval_id: str,
    as_user: str | None,
    approve: bool,
    reason: str,
    evidence_hash: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    actor = human(ctx, as_user)
    req = call(ctx, actor, "get_approval", {"approval_id": approval_id})["approval"]
    verb = "approve" if approve else "reject"
    if evidence_hash is None:
        if not is_interactive() or as_json:
            raise InvalidInput(
                f"to {verb} without a terminal, pass the evidence hash you reviewed",
                hint=f"Review it with `agent approvals show {approval_id}`, then add "
                "`--evidence-hash HASH` (the value printed on its last line).",
            )
        render_request(req)
        if not yes and not click.confirm(
            f"{verb.capitalize()} {approval_id} on exactly this evidence?", default=False
        ):
            raise click.exceptions.Abort()
        evidence_hash = req["evidence_hash"]
    decided = call(
        ctx,
        actor,
        "decide_approval",
        {
            "approval_id": approval_id,
            "approve": approve,
            "evidence_hash": evidence_hash,
            "reason": reason,
        },
    )
    head = decided.get("audit_head")
    if as_json:
        _json_line({"event": "decision", "approval": decided["approval"], "audit_head": head})
    else:
        console().print(f"{'Approved' if approve else 'Rejected'} {approval_id} as {actor.name}.")
        if head:
            console().print(audit_head_line(head))
    out = _follow(ctx, approval_id, actor, as_json)
    if as_json:
        _json_line({"event": "done", **out, "audit_head": head})
    else:
        render_outcome(out)


def _json_line(event: dict[str, Any]) -> None:
    """One JSON object per line, flushed: a pipe sees each step as it happens."""
    click.echo(json.dumps(event, default=str))
    sys.stdout.flush()


def step_line(step: str, detail: dict[str, Any]) -> str:
    extra = ", ".join(f"{k} {v}" for k, v in detail.items() if v not in (None, "", [], {}))
    return f"  · {step}" + (f" ({extra})" if extra else "")


def _follow(ctx: click.Context, approval_id: str, actor: Any, as_json: bool) -> dict[str, Any]:
    """Run (embedded) or follow (server mode) what comes after the decision, showing each
    execution step as it happens; a failure is a JSON line too before the error exits."""
    started = time.monotonic()

    def on_step(step: str, detail: dict[str, Any]) -> None:
        if as_json:
            _json_line({"event": "step", "step": step, "detail": detail,
                        "elapsed_s": round(time.monotonic() - started, 3)})  # fmt: skip
        else:
            console().print(step_line(step, detail), markup=False)

    from agents.execution import run_job
    from agents.runtime import Runtime

    rt = runtime(ctx)
    # Each step is its own line (no spinner: a live display would garble them).
    try:
        if isinstance(rt, Runtime):
            rt.services.execution_jobs.queue(approval_id, actor.name)
            out = run_job(rt, approval_id, actor, listener=on_step)
            if out is None:  # another process took the job first
                job = rt.services.execution_jobs.get(approval_id) or {}
                raise Conflict(
                    f"the execution of {approval_id} is {job.get('state', 'unknown')} "
                    f"elsewhere ({job.get('owner') or 'unknown owner'})",
                    hint=f"Follow it: `agent approvals show {approval_id}`.",
                )
        else:
            out = rt.run_decided(approval_id, actor, listener=on_step)
    except ModelOpsError as exc:
        if as_json:
            _json_line({"event": "failed", "error": exc.to_dict()})
        raise
    return out


def audit_head_line(head: dict[str, Any]) -> str:
    """For the decider's records: the audit head right after their decision."""
    return (
        f"audit head: seq {head['seq']} hash {head['hash'][:12]}… (keep it to check the log "
        f"later with `agent audit verify --anchor {head['seq']}:{head['hash']}`)"
    )


def render_outcome(out: dict[str, Any]) -> None:
    c = console()
    for line in out.get("log", []):
        c.print(f"  · {line}")
    c.print(f"[bold]{out['status']}[/bold]: {out.get('message', '')}")
    exe = out.get("execution") or {}
    if exe.get("gateway_url"):
        url = exe["gateway_url"]
        c.print(f"Gateway: {url}  (health: {url}/health, metrics: {url}/metrics)")
        c.print(
            f"Try:  agent predict {exe['name']} --as NAME "
            "--input '{\"features\": [...one number per feature...]}'  (or named rows: "
            '\'{"inputs": [{"COLUMN": VALUE, ...}]}\'; `agent models show` lists the columns)'
        )


decision_options = [
    as_option,
    click.option("--reason", default="", help="Why (kept in the audit log)."),
    click.option(
        "--evidence-hash",
        help="SHA-256 of the evidence you reviewed (from `approvals show`); required without a terminal.",
    ),
    click.option("--yes", is_flag=True, help="On a terminal: skip the confirmation prompt."),
    json_option,
]


def _with_options(f):  # noqa: ANN001, ANN202
    for opt in reversed(decision_options):
        f = opt(f)
    return f


@approvals.command("approve")
@click.argument("approval_id")
@_with_options
@click.pass_context
def approve_cmd(
    ctx: click.Context,
    approval_id: str,
    as_user: str | None,
    reason: str,
    evidence_hash: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Approve a pending request (listed approvers; never the requester) and run it.

    The decision line comes at once, then each execution step as it happens; with --json,
    one JSON object per line: a "decision" event, "step" events, then "done" (or "failed")."""
    _decide(ctx, approval_id, as_user, True, reason, evidence_hash, yes, as_json)


@approvals.command("reject")
@click.argument("approval_id")
@_with_options
@click.pass_context
def reject_cmd(
    ctx: click.Context,
    approval_id: str,
    as_user: str | None,
    reason: str,
    evidence_hash: str | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Reject a pending request."""
    _decide(ctx, approval_id, as_user, False, reason, evidence_hash, yes, as_json)


@approvals.command("resume")
@click.argument("approval_id")
@as_option
@json_option
@click.pass_context
def resume_cmd(ctx: click.Context, approval_id: str, as_user: str | None, as_json: bool) -> None:
    """Finish a decided promotion whose run was interrupted (needs deploy:production; deploys once)."""
    actor = human(ctx, as_user)
    out = runtime(ctx).promotion.resume(approval_id, actor)
    emit(out, as_json, render_outcome)
