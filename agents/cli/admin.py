"""``agent admin token create|list|revoke`` (admins only, audited) and ``agent whoami``."""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import as_option, console, emit, human, json_option, runtime, table


@click.group("admin")
def admin() -> None:
    """Admin actions (people listed under `admins:` in the policy in force).

    \b
    agent admin token create PERSON [--expires-days 90]   print a new personal token, once
    agent admin token list [PERSON]                        ids, owners, expiry (no secrets)
    agent admin token revoke TOKEN_ID                      refuse the token from now on

    A person uses their token by setting MODELOPS_TOKEN, or by saving it in
    ~/.config/modelops/token (mode 0600). With a token the CLI acts as its owner; under
    `identity: token` (roles.yaml) it refuses --as and MODELOPS_USER without one.
    """


@admin.group("token")
def token() -> None:
    """Personal tokens: shown once, stored hashed, with expiry and revocation."""


def _services(ctx: click.Context):  # noqa: ANN202
    return runtime(ctx).services


@token.command("create")
@click.argument("person")
@click.option("--expires-days", type=int, default=90, show_default=True)
@as_option
@json_option
@click.pass_context
def create_cmd(
    ctx: click.Context, person: str, expires_days: int, as_user: str | None, as_json: bool
) -> None:
    """Create a personal token for PERSON and print it once (only its SHA-256 is kept)."""
    from policies.tokens import create_token

    s = _services(ctx)
    actor = human(ctx, as_user)
    secret, info = create_token(
        s.tokens, s.policy, s.audit, actor, person, expires_days=expires_days
    )

    def render(d: dict[str, Any]) -> None:
        click.echo(f"Personal token {d['id']} for {d['owner']}, expires {d['expires_at'][:10]}:")
        click.echo(d["token"])
        click.echo(
            "Shown once: it is not stored and cannot be shown again. The owner sets "
            "MODELOPS_TOKEN to it, or saves it in ~/.config/modelops/token with mode 0600.",
            err=True,
        )

    emit({**info.as_dict(), "token": secret}, as_json, render)


@token.command("list")
@click.argument("person", required=False)
@as_option
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, person: str | None, as_user: str | None, as_json: bool) -> None:
    """Tokens (all, or PERSON's): id, owner, status, expiry. Never the secrets."""
    from policies.tokens import list_tokens

    s = _services(ctx)
    rows = [
        t.as_dict() for t in list_tokens(s.tokens, s.policy, s.audit, human(ctx, as_user), person)
    ]

    def render(data: list[dict[str, Any]]) -> None:
        if not data:
            console().print("No tokens.")
            return
        t = table("id", "owner", "starts with", "status", "created", "expires", "revoked")
        for r in data:
            t.add_row(
                r["id"],
                r["owner"],
                r["hint"] + "…",
                r["status"],
                r["created_at"][:19],
                r["expires_at"][:19],
                (r["revoked_at"] or "-")[:19],
            )
        console().print(t)

    emit(rows, as_json, render)


@token.command("revoke")
@click.argument("token_id")
@as_option
@json_option
@click.pass_context
def revoke_cmd(ctx: click.Context, token_id: str, as_user: str | None, as_json: bool) -> None:
    """Revoke a token by its id (see `agent admin token list`)."""
    from policies.tokens import revoke_token

    s = _services(ctx)
    info = revoke_token(s.tokens, s.policy, s.audit, human(ctx, as_user), token_id)
    emit(
        info.as_dict(),
        as_json,
        lambda d: click.echo(f"Revoked {d['id']} ({d['owner']}) at {d['revoked_at'][:19]}."),
    )


@click.command("whoami")
@as_option
@json_option
@click.pass_context
def whoami(ctx: click.Context, as_user: str | None, as_json: bool) -> None:
    """Who you are to the policy in force: person, role, how that is known (token or claim),
    the policy's identity mode and digest, and your effective permissions."""
    from agents.cli.identity import resolve_cli_human

    rt = runtime(ctx)
    policy = rt.services.policy
    actor, info = resolve_cli_human(rt.services, as_user or rt.settings.user)
    data = {
        "person": actor.name,
        "role": actor.role,
        "identity": actor.identity,
        "authenticated": actor.authenticated,
        "token_id": info.id if info else None,
        "token_expires_at": info.expires_at if info else None,
        "policy_identity": policy.identity,
        "policy_digest": rt.services.policy_digest,
        "admin": policy.is_admin(actor.name),
        "approver": actor.name in policy.approvers(),
        "permissions": sorted(policy.permissions(actor)),
    }

    def render(d: dict[str, Any]) -> None:
        how = f"token {d['token_id']}" if d["authenticated"] else "claimed (--as / MODELOPS_USER)"
        click.echo(f"{d['person']} ({d['role']}), identity {how}")
        click.echo(f"policy {d['policy_digest'][:12]}, identity mode {d['policy_identity']}")
        flags = [f for f in ("admin", "approver") if d[f]]
        if flags:
            click.echo("also: " + ", ".join(flags))
        click.echo("permissions: " + ", ".join(d["permissions"]))

    emit(data, as_json, render)
