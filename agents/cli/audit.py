"""``agent audit verify|show|trail``: the auditor's view of the audit log.

Reading needs ``deploy:read`` or ``approvals:read`` and writes nothing (not even an audit row:
the log must not grow because someone looked at it).
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

from agents.cli.common import as_option, console, emit, human, json_option, runtime, server_client
from core.errors import InvalidInput
from policies.audit_trail import build_trail

_ANCHOR = re.compile(r"^([0-9]{1,12}):([0-9a-f]{64})$")


@click.group()
def audit() -> None:
    """Verify the audit chain, list entries, and show a model version's trail."""


def _reader(ctx: click.Context, as_user: str | None):  # noqa: ANN202
    """The runtime, once the person may read the audit (deploy:read or approvals:read)."""
    rt = runtime(ctx)
    actor = human(ctx, as_user)
    if server_client(ctx) is not None:
        return rt  # server mode: the control plane checks the permission
    policy = rt.services.policy
    if not policy.authorize(actor, "deploy:read").allowed:
        policy.require(actor, "approvals:read")
    return rt


# verify ------------------------------------------------------------------------------------
@audit.command("verify")
@click.option(
    "--anchor",
    metavar="SEQ:HASH",
    help="An entry hash recorded earlier (a past head); it must still be in the chain.",
)
@as_option
@json_option
@click.pass_context
def verify_cmd(ctx: click.Context, anchor: str | None, as_user: str | None, as_json: bool) -> None:
    """Check every entry's hash and link, their order from seq 1, the head row, and the anchor
    file outside the state DB (every `seq hash` line it holds). Exit 1 if not."""
    rt = _reader(ctx, as_user)
    if server_client(ctx) is not None:
        from policies.audit_check import AuditCheck

        result = AuditCheck(**rt.audit_check(_parse_anchor(anchor)))
    else:
        result = rt.services.audit.check(anchor=_parse_anchor(anchor))

    def render(r: dict[str, Any]) -> None:
        c = console()
        if r["ok"]:
            c.print(f"Audit log intact: {r['entries']} entries; chain and head verified.")
            c.print(f"Compared: {_e(r.get('compared') or '')}")
            c.print(f"Head: seq {r['head_seq']}, hash {r['head_hash']}")
            c.print("Keep the head elsewhere and pass it later as --anchor SEQ:HASH.")
        else:
            c.print(f"[bold red]Audit log NOT intact[/]: first bad seq {r['first_bad_seq']}")
            c.print(f"Problem: {_e(r['problem'])}")
            c.print(f"Verified before it: {r['entries']} entries; head row: seq {r['head_seq']}")
            if r.get("compared"):
                c.print(f"Compared: {_e(r['compared'])}")
        if r["open_intents"]:
            seqs = ", ".join(str(s) for s in r["open_intents"][:20])
            c.print(f"Intents with no completion (in progress or interrupted): seq {seqs}")

    emit(result.model_dump(), as_json, render)
    if not result.ok:
        ctx.exit(1)


def _parse_anchor(raw: str | None) -> tuple[int, str] | None:
    if raw is None:
        return None
    m = _ANCHOR.match(raw.strip())
    if not m:
        raise InvalidInput(
            f"--anchor {raw!r} is not SEQ:HASH",
            hint="Use the head printed by `agent audit verify`, e.g. --anchor 42:3f2a…(64 hex).",
        )
    return int(m[1]), m[2]


# show --------------------------------------------------------------------------------------
@audit.command("show")
@click.option("--model", help="Entries about this model (detail or tool arguments).")
@click.option("--version", "model_version", help="Entries about this version.")
@click.option("--actor", help="Entries by this actor or on this person's behalf.")
@click.option("--action", help="Entries of this action (tool name, approvals.approve, …).")
@click.option("--after", "after_seq", type=click.IntRange(min=0), help="Only entries after seq.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@as_option
@json_option
@click.pass_context
def show_cmd(
    ctx: click.Context,
    model: str | None,
    model_version: str | None,
    actor: str | None,
    action: str | None,
    after_seq: int | None,
    limit: int,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Audit entries, newest first."""
    rt = _reader(ctx, as_user)
    rows = rt.services.audit.entries(
        model=model,
        version=model_version,
        actor=actor,
        action=action,
        after_seq=after_seq,
        limit=limit,
    )

    def render(data: dict[str, Any]) -> None:
        if not data["entries"]:
            console().print("No audit entries match.")
            return
        t = _table(
            "seq",
            "time (UTC)",
            "who",
            "identity",
            "action",
            "decision",
            "outcome",
            "about",
            "reason",
        )
        for e in data["entries"]:
            _add_row(
                t,
                str(e["seq"]),
                str(e["ts"])[:19],
                _who(e),
                _identity(e.get("authenticated")),
                e["action"],
                e["decision"],
                e["outcome"],
                _about(e["detail"]),
                _short(e.get("reason") or ""),
            )
        _wide_console().print(t)

    emit({"entries": rows}, as_json, render)


# trail -------------------------------------------------------------------------------------
@audit.command("trail")
@click.argument("model")
@click.argument("version")
@click.option("--all", "include_reads", is_flag=True, help="Also list reads (get_model, …).")
@as_option
@json_option
@click.pass_context
def trail_cmd(
    ctx: click.Context,
    model: str,
    version: str,
    include_reads: bool,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Who registered, evaluated, validated, approved and deployed MODEL VERSION, in order."""
    rt = _reader(ctx, as_user)
    if server_client(ctx) is not None:
        emit(rt.audit_trail(model, version, include_reads), as_json, render_trail)
        return
    catalog = rt.dispatcher.catalog

    def is_read(entry: dict[str, Any]) -> bool:
        tool = catalog.get(entry["action"])
        return tool is not None and tool.side_effect == "read"

    services = rt.services
    data = build_trail(
        services.audit,
        services.approvals,
        model,
        version,
        skip=None if include_reads else is_read,
    )
    emit(data, as_json, render_trail)


def render_trail(data: dict[str, Any]) -> None:
    c = _wide_console()
    chain = data["chain"]
    c.print(f"[bold]Trail of {_e(data['model'])} v{_e(data['version'])}[/bold]")
    if chain["ok"]:
        c.print(
            f"Audit chain intact: {chain['entries']} entries, head seq {chain['head_seq']} "
            f"hash {chain['head_hash']}"
        )
    else:
        c.print(
            f"[bold red]Audit chain NOT intact[/] at seq {chain['first_bad_seq']}: "
            f"{_e(chain['problem'])}. Do not rely on this trail."
        )
    c.print()
    c.print(f"[bold]Approval requests[/bold] ({len(data['approvals'])})")
    for a in data["approvals"]:
        c.print(_e(f"  {a['id']}  {a['kind'] or a['action'] or ''}  [{a['status']}]"))
        who = f"{a['requested_by']} ({_identity(a['requester_authenticated'])})"
        c.print(_e(f"    requested  by {who} via {a['requested_via']} at {a['created_at']}"))
        if a["decided_by"]:
            c.print(
                _e(
                    f"    decided    by {a['decided_by']} ({_identity(a['decider_authenticated'])}) "
                    f"at {a['decided_at']}" + (f": {a['reason']}" if a["reason"] else "")
                )
            )
        ev = a["evidence"]
        c.print(f"    evidence   hash {a['evidence_hash']}")
        if ev["dataset_sha256"]:
            c.print(_e(f"               dataset {ev['dataset']} sha256 {ev['dataset_sha256']}"))
        if ev["validation_status"]:
            c.print(_e(f"               QA {ev['validation_status']} by {ev['validated_by']}"))
        c.print(_e(f"    policy     digest {a['policy_digest'] or 'not recorded'}"))
        if a["plan"]:
            c.print(_e(f"    plan       {json.dumps(a['plan'], sort_keys=True)}"))
        if a["executed_at"] or a["executed_by"]:
            c.print(_e(f"    executed   by {a['executed_by']} at {a['executed_at']}"))
    c.print()
    c.print(f"[bold]Audit entries[/bold] ({len(data['events'])}, oldest first)")
    if not data["events"]:
        c.print("  none")
        return
    t = _table(
        "seq", "time (UTC)", "who", "identity", "action", "outcome", "scope", "approval", "note"
    )
    for e in data["events"]:
        outcome = e["outcome"] if e["decision"] == "allowed" else f"denied: {e['outcome']}"
        note = e["reason"] or (f"completes {e['intent_seq']}" if e["intent_seq"] else "")
        _add_row(
            t,
            str(e["seq"]),
            str(e["ts"])[:19],
            _who(e),
            _identity(e["authenticated"]),
            e["action"],
            outcome,
            e["scope"],
            e["approval_id"] or "",
            _short(note),
        )
    c.print(t)


# rendering helpers ----------------------------------------------------------------------
def _table(*columns: str):  # noqa: ANN202
    from rich.table import Table

    t = Table()
    for name in columns:
        # Ids fold onto a second line in a narrow terminal; never cut to an ellipsis.
        t.add_column(name, overflow="fold", no_wrap=name in ("seq", "time (UTC)"))
    return t


def _add_row(table: Any, *cells: str) -> None:
    from rich.text import Text

    # Text, not markup: names, reasons and details are data a caller wrote.
    table.add_row(*(Text(c) for c in cells))


def _e(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _wide_console():  # noqa: ANN202
    """A terminal gets its own width; a pipe gets lines as long as the table needs."""
    import sys

    if sys.stdout.isatty():
        return console()
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=4000)


def _about(detail: Any) -> str:
    from policies.audit_refs import detail_refs

    refs, approval_ids = detail_refs(detail)
    parts = [
        name if ver is None else f"{name} {'v' if ver.isdigit() else '@'}{ver}"
        for name, ver in refs
    ]
    return ", ".join(dict.fromkeys([*parts, *sorted(approval_ids)]))


def _who(e: dict[str, Any]) -> str:
    kind = e.get("actor_kind")
    name = e["actor"] if kind in (None, "human") else f"{kind} {e['actor']}"
    return f"{name} for {e['on_behalf_of']}" if e.get("on_behalf_of") else name


def _identity(authenticated: bool | None) -> str:
    return "-" if authenticated is None else ("token" if authenticated else "claimed")


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
