"""Shared CLI pieces: runtime, identity, JSON input and rendering."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from core.errors import InvalidInput

as_option = click.option(
    "--as",
    "as_user",
    metavar="NAME",
    envvar="MODELOPS_USER",
    help="Who you are (a person in roles.yaml); default $MODELOPS_USER. A claim: with a "
    "personal token ($MODELOPS_TOKEN) you are its owner, and `identity: token` refuses it.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def environment_option(default: str | None = "production", help: str | None = None):  # noqa: ANN201, A002
    """``--environment production|staging``, plus the old ``--target`` (hidden) and the old
    value ``local`` (production), each accepted for one release with a warning on stderr."""

    def warn(message: str) -> None:
        click.echo(f"warning: {message} (accepted for one release)", err=True)

    def old_flag(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:
            warn("--target is now --environment")
            ctx.meta["environment.old_flag"] = value

    def normalize(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
        old = ctx.meta.pop("environment.old_flag", None)
        if old is not None and value is not None:
            raise click.UsageError("give --environment only (--target is its old name)")
        value = value if value is not None else (old if old is not None else default)
        if value == "local":
            warn("environment 'local' is now 'production'")
            value = "production"
        return value

    choice = click.Choice(["production", "staging", "local"])

    def decorate(f):  # noqa: ANN001, ANN202
        f = click.option(
            "--environment",
            type=choice,
            default=None,
            callback=normalize,
            help=(help or "production is approval-gated; staging needs no approval.")
            + (f" [default: {default}]" if default else ""),
        )(f)
        # Declared after, so click parses it first and ``normalize`` sees it.
        return click.option(
            "--target", type=choice, hidden=True, expose_value=False, callback=old_flag
        )(f)

    return decorate


def server_client(ctx: click.Context):  # noqa: ANN201
    """Server mode (--server URL / MODELOPS_SERVER): the control-plane client, else None."""
    obj = ctx.find_root().obj
    if not obj.get("server"):
        return None
    if "remote" not in obj:
        from agents.server.client import RemoteClient

        obj["remote"] = RemoteClient.from_cli(obj["server"])
        ctx.find_root().call_on_close(obj["remote"].close)
    return obj["remote"]


def runtime(ctx: click.Context):  # noqa: ANN201
    obj = ctx.find_root().obj
    if obj.get("server"):
        return server_client(ctx)  # stands in for the few direct runtime uses (run_decided)
    if "runtime" not in obj:
        from agents.runtime import build_runtime
        from core.settings import load_settings

        obj["runtime"] = build_runtime(load_settings(home=obj.get("home")))
    return obj["runtime"]


def human(ctx: click.Context, name: str | None):  # noqa: ANN201
    """The acting person: from a personal token when there is one (MODELOPS_TOKEN or the
    token file; authenticated), else the claimed name, if the policy's identity mode allows."""
    from agents.cli.identity import resolve_cli_human

    if (remote := server_client(ctx)) is not None:
        return remote.human(name)  # the server resolves the person from the token
    rt = runtime(ctx)
    return resolve_cli_human(rt.services, name or rt.settings.user)[0]


def call(
    ctx: click.Context, actor, tool: str, args: dict[str, Any] | None = None
) -> dict[str, Any]:  # noqa: ANN001
    if (remote := server_client(ctx)) is not None:
        return remote.call_tool(tool, args or {})
    return runtime(ctx).dispatcher.call_or_raise(actor, tool, args)


def read_input(value: str, what: str = "--input") -> str:
    """The text of an input option: ``@FILE`` reads the file, ``-`` reads stdin, anything else
    is the value itself (a batch of rows fits a file where a command line would overflow)."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        from pathlib import Path

        path = Path(value[1:]).expanduser()
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInput(
                f"{what} @{value[1:]}: no such file",
                hint=f"Name an existing JSON file, e.g. {what} @rows.json, or - for stdin.",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{what} @{value[1:]}: cannot read it: {exc}") from None
    return value


def _refuse_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which no JSON body may carry: refused here, where
    # the position can still be told (the tool and the HTTP client could only fail later).
    raise ValueError(name)


def loads_strict(text: str, what: str = "--input") -> Any:
    """JSON without NaN/Infinity (a usage error naming the field); ``null`` is kept and
    ``null_numbers`` names it where a number is expected."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            hint="""Quote the JSON for your shell, e.g. --input '{"name": "m"}', or pass """
            "--input @FILE / --input - (stdin).",
        ) from exc
    except ValueError as exc:
        where = _constant_field(text, str(exc))
        raise InvalidInput(
            f"{what}: {where}{exc} is not a JSON number (NaN and Infinity are not JSON)",
            hint="Send a finite number, or leave the field out.",
        ) from None


def _constant_field(text: str, constant: str) -> str:
    """'field a.b[2]: ' for the first NaN/Infinity in ``text`` (parsed again with a marker
    in its place: the error path only)."""
    marker = "\uf8ffconstant"
    try:
        data = json.loads(text, parse_constant=lambda _c: marker)
    except ValueError:
        return ""
    path = next(iter(_paths_of(data, lambda v: v == marker)), None)
    return f"{path}: " if path else ""


def _paths_of(data: Any, pred: Callable[[Any], bool], path: str = "") -> list[str]:
    """The JSON paths (``a.b[2]``) of the values ``pred`` holds for, in document order."""
    if isinstance(data, dict):
        return [
            p
            for k, v in data.items()
            for p in _paths_of(v, pred, f"{path}.{k}" if path else str(k))
        ]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _paths_of(v, pred, f"{path}[{i}]")]
    return [path or "(input)"] if pred(data) else []


def null_numbers(data: Any, path: str, what: str = "--input") -> None:
    """Refuse ``null`` in ``data`` (at ``path`` of the input), which should hold numbers only
    (feature rows), naming where."""
    nulls = _paths_of(data, lambda v: v is None, path)
    if nulls:
        more = f" (and {len(nulls) - 1} more)" if len(nulls) > 1 else ""
        raise InvalidInput(
            f"{what}: {nulls[0]} is null where a number is expected{more}",
            hint="Send a number for every feature (impute missing values first).",
        )


def parse_json_input(raw: str, what: str = "--input") -> Any:
    """An option's JSON (``@FILE``, ``-`` or inline), parsed strictly (see ``loads_strict``)."""
    return loads_strict(read_input(raw, what), what)


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        render(data)


# In a pipe or a file: prose (Markdown, panels) wraps at PROSE_WIDTH so a report reads as lines,
# while tables are laid out at TABLE_WIDTH so an id is never cut or folded to fit (scripts and
# grep read whole rows). Plain one-line messages are printed as they are (soft wrap).
PROSE_WIDTH = 100
TABLE_WIDTH = 4000
PIPE_WIDTH = TABLE_WIDTH  # the old name


def console():  # noqa: ANN201
    """A terminal gets its own width; a pipe gets prose at PROSE_WIDTH and whole table rows."""
    from rich.console import Console
    from rich.table import Table

    class PipeConsole(Console):
        def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
            # Prose renderables (Markdown, Text, panels) wrap at the width; a str line and a
            # table are printed whole (soft wrap: no wrapping, no cropping).
            if soft_wrap is None and not self.is_terminal:
                soft_wrap = all(isinstance(o, str | Table) for o in objects)
            super().print(*objects, soft_wrap=soft_wrap, **kwargs)

    return PipeConsole(
        highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else PROSE_WIDTH
    )


def table(*columns: str):  # noqa: ANN201
    """A rich table whose cells fold onto more lines in a narrow terminal, never cut to '…';
    in a pipe its rows are as wide as their cells (see TABLE_WIDTH)."""
    from rich.table import Table

    class WholeRowsTable(Table):
        def __rich_console__(self, console, options):  # noqa: ANN001, ANN204
            if not console.is_terminal:
                options = options.update(width=TABLE_WIDTH, max_width=TABLE_WIDTH)
            return super().__rich_console__(console, options)

    t = WholeRowsTable()
    for name in columns:
        t.add_column(name, overflow="fold")
    return t


def is_interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
