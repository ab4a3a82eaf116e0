"""``agent deploy status|rollback|stop``."""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import as_option, call, console, emit, human, json_option, runtime


@click.group()
def deploy() -> None:
    """Deployment status, rollback and gateway control."""


@deploy.command("status")
@click.argument("name", required=False)
@as_option
@json_option
@click.pass_context
def status_cmd(ctx: click.Context, name: str | None, as_user: str | None, as_json: bool) -> None:
    """Live versions, revision history and gateway health (all deployments without NAME)."""
    actor = human(ctx, as_user)
    names = [name] if name else runtime(ctx).services.deployments.list_deployments()
    out = {"deployments": [call(ctx, actor, "get_deployment", {"name": n}) for n in names]}

    def render(data: dict[str, Any]) -> None:
        c = console()
        if not data["deployments"]:
            c.print("No deployments yet. Approve a promotion first: `agent approvals list`.")
        for d in data["deployments"]:
            gw = d["gateway"]
            state = f"running at {gw['url']}" if gw.get("running") else "not running"
            c.print(
                f"[bold]{d['name']}[/bold]: live v{', v'.join(d['live_versions'])} "
                f"(revision {d['revision']}, {d['strategy']}); gateway {state}"
            )
            if d.get("health"):
                h = d["health"]
                c.print(
                    f"  health: {h.get('status')}, honesty compliant: {h.get('honesty_compliant')}"
                )
            for r in d["history"][:10]:
                c.print(
                    f"  r{r['revision']} {r['action']:8} v{', v'.join(r['versions'])}  by {r['actor']}"
                    f"{'  ' + r['approval_id'] if r['approval_id'] else ''}  {r['reason']}"
                )

    emit(out, as_json, render)


@deploy.command("rollback")
@click.argument("name")
@click.option("--to", "to_version", help="Earlier deployed version (default: the previous one).")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@as_option
@json_option
@click.pass_context
def rollback_cmd(
    ctx: click.Context,
    name: str,
    to_version: str | None,
    reason: str,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Route all traffic back to an earlier deployed version; the gateway switches without restart."""
    args = {"name": name, "reason": reason, **({"to_version": to_version} if to_version else {})}
    out = call(ctx, human(ctx, as_user), "rollback_deployment", args)
    emit(
        out,
        as_json,
        lambda d: console().print(
            f"{d['name']}: rolled back; revision {d['revision']} serves v{', v'.join(d['live_versions'])}."
        ),
    )


@deploy.command("stop")
@click.argument("name")
@as_option
@click.pass_context
def stop_cmd(ctx: click.Context, name: str, as_user: str | None) -> None:
    """Stop the model's gateway process (the deployment record stays)."""
    actor = human(ctx, as_user)
    call(ctx, actor, "get_deployment", {"name": name})
    runtime(ctx).services.policy.require(actor, "deploy:rollback")
    stopped = runtime(ctx).services.deployments.stop_gateway(name)
    console().print(f"{name}: gateway {'stopped' if stopped else 'was not running'}.")
