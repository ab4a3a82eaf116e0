"""``agent policy show|diff|apply|repin``: the policy in force in this home, the one audited
way to change it, and the one way to restore a lost pin.

With ``pin.json`` lost in a home that had pinned a policy, every command here (``apply``
included) refuses with the repin hint: ``apply`` is authorized by the policy in force, and
none is until an admin of the last one restores it with ``repin``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from agents.cli.common import as_option, console, emit, human, is_interactive, json_option, runtime
from core.errors import InvalidInput, ModelOpsError


def _pinned(ctx: click.Context):  # noqa: ANN202
    """The pin itself (the record of the policy in force), without requiring the readable
    copies to be intact or a configured policies_dir to match: these commands exist to review
    and repair exactly those situations. Nothing here is authorized against anything else."""
    from policies.pinned import load_pinned

    services = runtime(ctx).services
    if "pinned" not in services.__dict__:
        services.pinned = load_pinned(
            services.settings.home_dir, audit=services.audit, verify_copies=False
        )
    return services.pinned


def _candidate(ctx: click.Context, path: str):  # noqa: ANN202
    from policies.pinned import THRESHOLDS, read_source

    return read_source(Path(path), fallback_thresholds=_pinned(ctx).current.texts[THRESHOLDS])


@click.group("policy")
def policy() -> None:
    """The policy in force in this home (roles, people, approvers, admins, identity mode,
    thresholds) and its digest. It changes only through `agent policy apply`, by an admin."""


@policy.command("show")
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, as_json: bool) -> None:
    """The policy in force and its digest."""
    pinned = _pinned(ctx)
    data = pinned.describe()
    configured = runtime(ctx).settings.policies_dir
    if configured is not None:
        try:
            same = _candidate(ctx, str(configured)).digest == pinned.digest
        except ModelOpsError:
            same = False
        data["configured_policies_dir"] = {"path": str(configured), "matches": same}

    def render(d: dict[str, Any]) -> None:
        out = console()
        out.print(f"policy digest  {d['digest']}")
        out.print(f"pinned         {d['pinned_at'][:19]} by {d['pinned_by'] or '(bundled)'}")
        out.print(f"location       {d['location']}")
        out.print(f"identity       {d['identity']}")
        out.print(f"admins         {', '.join(d['admins']) or '-'}")
        out.print(f"approvers      {', '.join(d['approvers']) or '-'}")
        for name, p in d["people"].items():
            out.print(f"  {name:<12} {p['role']}{'  approver' if p['approver'] else ''}")
        for name, r in d["roles"].items():
            out.print(f"role {name} ({r['grants']}, {r['trust']}): {', '.join(r['permissions'])}")
        if d["changed_copies"]:
            out.print(
                f"[red]edited by hand, refused: {', '.join(d['changed_copies'])}[/red] "
                "(an admin repairs it with `agent policy apply FILE`)"
            )
        conf = d.get("configured_policies_dir")
        if conf and not conf["matches"]:
            out.print(
                f"[red]policies_dir {conf['path']} differs and is refused[/red] "
                f"(see `agent policy diff {conf['path']}`)"
            )

    emit(data, as_json, render)


def _print_diff(changes: list[dict[str, Any]]) -> None:
    from policies.diff import render_diff

    for line in render_diff(changes):
        click.echo(line)


@policy.command("diff")
@click.argument("path", metavar="FILE", type=click.Path(exists=True))
@json_option
@click.pass_context
def diff_cmd(ctx: click.Context, path: str, as_json: bool) -> None:
    """What would change if FILE became the policy in force.

    FILE is a roles.yaml (thresholds stay as pinned) or a directory with roles.yaml and
    thresholds.yaml. It is parsed strictly, as `apply` would."""
    from policies.diff import diff_policies

    pinned = _pinned(ctx)
    new = _candidate(ctx, path)
    changes = diff_policies(pinned.current, new)
    data = {"old_digest": pinned.digest, "new_digest": new.digest, "diff": changes}

    def render(d: dict[str, Any]) -> None:
        if not d["diff"]:
            click.echo(f"No changes: {path} holds the policy in force ({d['old_digest'][:12]}).")
            return
        click.echo(f"policy {d['old_digest'][:12]} -> {d['new_digest'][:12]}")
        _print_diff(d["diff"])

    emit(data, as_json, render)


@policy.command("apply")
@click.argument("path", metavar="FILE", type=click.Path(exists=True))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (scripts).")
@as_option
@json_option
@click.pass_context
def apply_cmd(ctx: click.Context, path: str, yes: bool, as_user: str | None, as_json: bool) -> None:
    """Make FILE the policy in force (admins only; audited with the old and new digest and
    the diff). FILE is a roles.yaml or a directory with roles.yaml and thresholds.yaml."""
    from policies.diff import diff_policies
    from policies.pinned import apply_policy, require_admin
    from policies.rbac import ADMIN_PERMISSION
    from policies.tokens import check_token_mode_reachable

    services = runtime(ctx).services
    pinned = _pinned(ctx)
    actor = human(ctx, as_user)
    source = str(Path(path).resolve())
    require_admin(pinned.policy, services.audit, actor, "policy.apply", {"source": source})
    try:
        new = _candidate(ctx, path)
        if new.policy.identity == "token":
            check_token_mode_reachable(new.policy, services.tokens)
    except ModelOpsError as exc:
        services.audit.append(
            actor,
            "policy.apply",
            ADMIN_PERMISSION,
            decision="allowed",
            outcome=exc.code,
            detail={"source": source, "old_digest": pinned.digest, "error": exc.message},
        )
        raise
    changes = diff_policies(pinned.current, new)
    if not changes and not pinned.changed_copies:
        emit(
            {"applied": False, "digest": pinned.digest, "diff": []},
            as_json,
            lambda d: click.echo(f"{path} is already the policy in force ({d['digest'][:12]})."),
        )
        return
    if not as_json:
        click.echo(f"policy {pinned.digest[:12]} -> {new.digest[:12]}")
        _print_diff(changes) if changes else click.echo("(no changes; rewrites the pinned copy)")
        if actor.name not in new.policy.admins:
            click.echo(f"Note: {actor.name} is not an admin in the new policy.")
    if not yes:
        if not is_interactive():
            raise InvalidInput(
                "applying a policy needs a confirmation",
                hint="Review with `agent policy diff FILE`, then pass --yes.",
            )
        click.confirm("Apply this policy?", default=False, abort=True)
    detail = apply_policy(
        services.settings.home_dir,
        new,
        actor=actor,
        audit=services.audit,
        expected_digest=pinned.digest,
        source=source,
    )
    services.forget_policy()
    emit(
        {"applied": True, **detail},
        as_json,
        lambda d: click.echo(f"Applied: the policy in force is now {d['new_digest'][:12]}."),
    )


@policy.command("repin")
@click.option(
    "--digest",
    required=True,
    help="The digest of the last policy pinned here (the refusal names it).",
)
@as_option
@json_option
@click.pass_context
def repin_cmd(ctx: click.Context, digest: str, as_user: str | None, as_json: bool) -> None:
    """Restore a lost pin.json: the last policy this home pinned, from the state DB (admins of
    that policy only; audited). Nothing else ever replaces a lost pin."""
    from agents.cli.identity import resolve_cli_human
    from policies.policy_history import repin_policy

    rt = runtime(ctx)
    services = rt.services
    name = as_user or rt.settings.user
    detail = repin_policy(
        services.home_dir,
        digest.strip().lower(),
        audit=services.audit,
        actor_for=lambda policy: resolve_cli_human(services, name, policy)[0],
    )
    services.forget_policy()
    emit(
        {"repinned": True, **detail},
        as_json,
        lambda d: click.echo(f"Restored: the policy in force is again {d['digest'][:12]}."),
    )
