"""``agent deploy status|staging|rollout|rollback|render|stop|start``."""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import (
    as_option,
    call,
    console,
    emit,
    environment_option,
    human,
    json_option,
)
from agents.cli.progress import working

environment_opt = environment_option()


@click.group()
def deploy() -> None:
    """Deployment status, rollouts, rollback, manifests and gateway control."""


@deploy.command("status")
@click.argument("name", required=False)
@environment_opt
@as_option
@json_option
@click.pass_context
def status_cmd(
    ctx: click.Context, name: str | None, environment: str, as_user: str | None, as_json: bool
) -> None:
    """Live versions, weights, rollout in progress, revision history and gateway health."""
    actor = human(ctx, as_user)
    names = (
        [name]
        if name
        else call(ctx, actor, "list_deployments", {"environment": environment})["deployments"]
    )
    out = {
        "deployments": [
            call(ctx, actor, "get_deployment", {"name": n, "environment": environment})
            for n in names
        ]
    }

    def render(data: dict[str, Any]) -> None:
        c = console()
        if not data["deployments"]:
            c.print("No deployments yet. Approve a promotion first: `agent approvals list`.")
        for d in data["deployments"]:
            gw = d["gateway"]
            state = f"running at {gw['url']}" if gw.get("running") else "not running"
            weights = ", ".join(f"v{v} {w:g}%" for v, w in d["weights"].items())
            extra = "".join(
                [
                    f"; shadow v{', v'.join(d['shadow_versions'])}" if d["shadow_versions"] else "",
                    f"; standby v{', v'.join(d['standby_versions'])}"
                    if d["standby_versions"]
                    else "",
                ]
            )
            c.print(
                f"[bold]{d['name']}[/bold] ({d['environment']}): {weights}{extra} "
                f"(revision {d['revision']}, {d['strategy']}); gateway {state}"
            )
            if d.get("rollout"):
                r = d["rollout"]
                c.print(
                    f"  rollout #{r['id']} {r['strategy']} step {r['step']}/{len(r['steps'])}: {r['now']}"
                )
            if d.get("health"):
                h = d["health"]
                c.print(
                    f"  health: {h.get('status')}, honesty compliant: {h.get('honesty_compliant')}"
                )
            for r in d["history"][:10]:
                ws = ", ".join(f"v{v} {w:g}%" for v, w in r["weights"].items())
                c.print(
                    f"  r{r['revision']} {r['action']:8} {ws}  by {r['actor']}"
                    f"{'  ' + r['approval_id'] if r['approval_id'] else ''}  {r['reason']}"
                )

    emit(out, as_json, render)


@deploy.command("staging")
@click.argument("name")
@click.argument("version")
@click.option("--reason", default="")
@as_option
@json_option
@click.pass_context
def staging_cmd(
    ctx: click.Context, name: str, version: str, reason: str, as_user: str | None, as_json: bool
) -> None:
    """Serve VERSION on the staging gateway (no approval; production goes through promotion)."""
    out = call(
        ctx,
        human(ctx, as_user),
        "deploy_to_staging",
        {"name": name, "version": version, "reason": reason},
    )
    emit(
        out,
        as_json,
        lambda d: console().print(
            f"{d['name']} v{', v'.join(d['live_versions'])} on staging (revision {d['revision']}) "
            f"at {d['gateway_url']}"
        ),
    )


@deploy.group("rollout")
def rollout() -> None:
    """Canary, blue-green and shadow rollouts, one health-checked step at a time."""


def _print_rollout(d: dict[str, Any]) -> None:
    c = console()
    r = d["rollout"]
    c.print(
        f"rollout #{r['id']} ({r['strategy']}, {r['state']}) step {r['step']}/{len(r['steps'])}: "
        f"{r['now']}; revision {d['revision']}"
    )
    c.print(
        "  routes: "
        + ", ".join(f"v{x['version']} {x['weight']:g}% {x['role']}" for x in d["routes"])
    )
    c.print(f"  next: {d['next']}")


@rollout.command("start")
@click.argument("name")
@click.option("--version", "version", required=True, help="Candidate version.")
@click.option("--strategy", type=click.Choice(["canary", "blue-green", "shadow"]), default="canary")
@click.option("--percent", type=float, help="Canary: first step's share of traffic (default 10).")
@click.option("--steps", help="Canary: comma-separated shares, ending at 100 (e.g. 10,50,100).")
@click.option("--approval", "approval_id", help="Approved promotion of VERSION (production).")
@click.option("--reason", default="")
@environment_opt
@as_option
@json_option
@click.pass_context
def rollout_start(
    ctx: click.Context,
    name: str,
    version: str,
    strategy: str,
    percent: float | None,
    steps: str | None,
    approval_id: str | None,
    reason: str,
    environment: str,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Start rolling VERSION out; production needs --approval of an approved promotion."""
    args: dict[str, Any] = {
        "name": name,
        "version": version,
        "strategy": strategy,
        "environment": environment,
        "reason": reason,
    }
    if percent is not None:
        args["traffic_percentage"] = percent
    if steps:
        args["steps"] = [float(s) for s in steps.split(",") if s.strip()]
    if approval_id:
        args["approval_id"] = approval_id
    with working("starting the rollout (gateway up, first step serving)", as_json):
        out = call(ctx, human(ctx, as_user), "start_rollout", args)
    emit(out, as_json, _print_rollout)


@rollout.command("advance")
@click.argument("name")
@click.option("--min-requests", type=int, default=0, show_default=True)
@click.option("--max-error-rate", type=float, default=0.01, show_default=True)
@click.option("--wait", "wait_seconds", type=float, default=10.0, show_default=True)
@click.option("--reason", default="")
@environment_opt
@as_option
@json_option
@click.pass_context
def rollout_advance(
    ctx: click.Context,
    name: str,
    min_requests: int,
    max_error_rate: float,
    wait_seconds: float,
    reason: str,
    environment: str,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Health-check the current step on the gateway, then take the next step."""
    args = {
        "name": name,
        "environment": environment,
        "min_requests": min_requests,
        "max_error_rate": max_error_rate,
        "wait_seconds": wait_seconds,
        "reason": reason,
    }
    with working("checking the step's health, then advancing", as_json):
        out = call(ctx, human(ctx, as_user), "advance_rollout", args)
    emit(out, as_json, _print_rollout)


@rollout.command("abort")
@click.argument("name")
@click.option("--reason", default="")
@environment_opt
@as_option
@json_option
@click.pass_context
def rollout_abort(
    ctx: click.Context, name: str, reason: str, environment: str, as_user: str | None, as_json: bool
) -> None:
    """Put back the routes the rollout started from, in one revision."""
    args = {"name": name, "environment": environment, "reason": reason}
    emit(call(ctx, human(ctx, as_user), "abort_rollout", args), as_json, _print_rollout)


@deploy.command("rollback")
@click.argument("name")
@click.option("--to", "to_version", help="Earlier deployed version (default: the previous one).")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@environment_opt
@as_option
@json_option
@click.pass_context
def rollback_cmd(
    ctx: click.Context,
    name: str,
    to_version: str | None,
    reason: str,
    environment: str,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Route all traffic back to an earlier deployed version; the gateway switches without restart."""
    args = {
        "name": name,
        "reason": reason,
        "environment": environment,
        **({"to_version": to_version} if to_version else {}),
    }
    with working("rolling back (the gateway switches to the earlier revision)", as_json):
        out = call(ctx, human(ctx, as_user), "rollback_deployment", args)
    emit(
        out,
        as_json,
        lambda d: console().print(
            f"{d['name']}: rolled back; revision {d['revision']} serves v{', v'.join(d['live_versions'])}."
        ),
    )


@deploy.command("render")
@click.argument("name")
@click.option(
    "--platform",
    "--target",  # its old name
    "platform",
    type=click.Choice(["kubernetes"]),
    default="kubernetes",
    show_default=True,
    help="What to render for.",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Build context directory.")
@click.option(
    "--force", is_flag=True, help="Re-render into a non-empty folder an earlier render wrote."
)
@click.option("--version", help="Render a rollout of this version (default: the live routes).")
@click.option(
    "--strategy",
    type=click.Choice(["direct", "canary", "blue-green", "shadow"]),
    default="direct",
)
@click.option("--percent", type=float, help="Canary share (KServe canaryTrafficPercent).")
@click.option("--approval", "approval_id", help="Approved promotion of --version.")
@click.option(
    "--from",
    "source",
    type=click.Choice(["production", "staging", "local"]),
    default="production",
    show_default=True,
    help="Whose live routes to start from.",
)
@click.option("--image", help="Image name for the manifests.")
@click.option("--namespace", default="default", show_default=True)
@as_option
@json_option
@click.pass_context
def render_cmd(
    ctx: click.Context,
    name: str,
    platform: str,
    out_dir: str | None,
    force: bool,
    version: str | None,
    strategy: str,
    percent: float | None,
    approval_id: str | None,
    source: str,
    image: str | None,
    namespace: str,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Write a Dockerfile, a KServe InferenceService and a Deployment + Service (not applied)."""
    args: dict[str, Any] = {
        "name": name,
        "platform": platform,
        "namespace": namespace,
        "source": source,
        "write": True,
        "force": force,
    }
    for key, value in (
        ("version", version),
        ("traffic_percentage", percent),
        ("approval_id", approval_id),
        ("image", image),
        ("output_dir", out_dir),
    ):
        if value is not None:
            args[key] = value
    if version:
        args["strategy"] = strategy
    out = call(ctx, human(ctx, as_user), "render_deployment", args)
    result = {
        "output_dir": out["output_dir"],
        "files": sorted(out["files"]),
        "routes": out["routes"],
        "applied": False,
        "note": out["note"],
        "kept": out.get("kept", []),
        "ignored": out.get("ignored", []),
        "removed": out.get("removed", []),
    }

    def show(d: dict[str, Any]) -> None:
        c = console()
        c.print(f"Wrote {len(d['files'])} files and the model artifacts to {d['output_dir']}:")
        for f in d["files"]:
            c.print(f"  {f}")
        if d["removed"]:
            c.print(f"Removed {len(d['removed'])} unchanged files of the previous render.")
        if out.get("kept_note"):  # what was left alone: never ours, or changed since
            c.print(out["kept_note"], markup=False)
        c.print(d["note"])

    emit(result, as_json, show)


@deploy.command("stop")
@click.argument("name")
@environment_option(help="Whose gateway: production or staging (as `agent deploy start`).")
@click.option(
    "--all", "every", is_flag=True, help="Stop all of NAME's gateways (every environment)."
)
@as_option
@json_option
@click.pass_context
def stop_cmd(
    ctx: click.Context,
    name: str,
    environment: str,
    every: bool,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Stop the model's gateway process on one environment, or --all (the deployment record
    stays)."""
    from click.core import ParameterSource

    if every and ctx.get_parameter_source("environment") != ParameterSource.DEFAULT:
        raise click.UsageError("give --environment or --all, not both")
    args = {"name": name, "environment": "all" if every else environment}
    out = call(ctx, human(ctx, as_user), "stop_gateway", args)
    emit(
        {"name": out["name"], "stopped": out["stopped"]},
        as_json,
        lambda d: console().print(
            f"{d['name']}: gateway {'stopped' if d['stopped'] else 'was not running'}."
        ),
    )


@deploy.command("start")
@click.argument("name")
@environment_option(help="Whose gateway: production (needs deploy:production) or staging.")
@as_option
@json_option
@click.pass_context
def start_cmd(
    ctx: click.Context, name: str, environment: str, as_user: str | None, as_json: bool
) -> None:
    """Start NAME's stopped gateway on its last revision (routes do not change; people only)."""
    out = call(
        ctx, human(ctx, as_user), "start_gateway", {"name": name, "environment": environment}
    )

    def show(d: dict[str, Any]) -> None:
        versions = ", ".join(f"v{v}" for v in d["live_versions"])
        state = "started" if d["started"] else "was already running"
        serving = (
            f"serving revision {d['serving_revision']}"
            if d["serving_revision"] == d["revision"]
            else f"serving revision {d['serving_revision']}, not yet revision {d['revision']}"
        )
        console().print(
            f"{d['name']} ({d['environment']}): gateway {state} at {d['url']}, {serving} ({versions})."
        )

    emit(out, as_json, show)
