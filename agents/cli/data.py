"""``agent data validate|sanitize|split|register|list``: fine-tuning and tabular datasets."""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import as_option, call, emit, human, json_option
from agents.cli.progress import working


@click.group()
def data() -> None:
    """Validate, sanitize, split and name dataset files (JSONL, CSV, Parquet)."""


def _render_report(out: dict[str, Any]) -> None:
    r = out["report"]
    state = (
        "valid"
        if out["ok"]
        else f"{r['invalid_rows']} invalid row(s), {r['total_errors']} error(s)"
    )
    click.echo(f"{r['name']}: {r['rows']} {r['format']} rows, {state}")
    for e in r["errors"]:
        click.echo(f"  line {e['line']}: {e['field']}: {e['message']}")
    if r["errors_truncated"]:
        click.echo(f"  ... {r['total_errors'] - len(r['errors'])} more (raise --max-errors)")
    lengths = r["lengths"]
    click.echo(
        f"lengths ({r['length_unit']}): min {lengths['min']:g}, mean {lengths['mean']:g}, "
        f"max {lengths['max']:g}, total {lengths['total']:g} - {r['length_method']['note']}"
    )
    if r["over_max_length"]:
        click.echo(f"longer than the limit: lines {', '.join(map(str, r['over_max_length']))}")
    click.echo(f"digest sha256:{r['digest']}")


@data.command("validate")
@click.argument("path")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "chat", "prompt_completion", "tabular"]),
    default="auto",
    show_default=True,
)
@click.option("--max-errors", type=int, default=50, show_default=True)
@click.option("--max-length", type=int, default=None, help="Flag rows longer than this.")
@as_option
@json_option
@click.pass_context
def validate_cmd(ctx, path, fmt, max_errors, max_length, as_user, as_json) -> None:  # noqa: ANN001
    """Check every row of PATH; exit 2 when any row is invalid."""
    args = {"dataset": path, "format": fmt, "max_errors": max_errors}
    if max_length:
        args["max_length"] = max_length
    with working("validating", as_json):
        out = call(ctx, human(ctx, as_user), "validate_dataset", args)
    emit(out, as_json, _render_report)
    if not out["ok"]:
        ctx.exit(2)


def _render_sanitize(out: dict[str, Any]) -> None:
    s = out["summary"]
    click.echo(f"wrote {out['output']}: {s['input_rows']} rows in, {s['output_rows']} out")
    for why, n in s["dropped"].items():
        if n:
            click.echo(f"  dropped {n} ({why})")
    for d in s["dropped_lines"][:20]:
        click.echo(f"    line {d['line']}: {d['reason']}: {d['detail']}")
    for kind, n in s["redactions"].items():
        if n:
            click.echo(f"  redacted {n} {kind}(s)")
    for key, n in s["stripped_keys"].items():
        click.echo(f"  removed key {key!r} from {n} rows")
    click.echo(f"  lengths counted in {s['length_unit']}: {s['length_method']['note']}")


@data.command("sanitize")
@click.argument("path")
@click.option("--out", "output", required=True, help="New file to write (.jsonl/.csv/.parquet).")
@click.option("--min-length", type=int, default=None)
@click.option("--max-length", type=int, default=None)
@click.option("--strip-key", "strip_keys", multiple=True, help="Remove this key from every row.")
@click.option("--keep-duplicates", is_flag=True, help="Do not drop exact duplicates.")
@click.option(
    "--near-duplicates",
    type=float,
    default=0.9,
    show_default=True,
    help="Jaccard threshold; 0 turns it off.",
)
@click.option("--no-redact", is_flag=True, help="Do not redact e-mails, phones, API keys.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@as_option
@json_option
@click.pass_context
def sanitize_cmd(
    ctx,
    path,
    output,
    min_length,
    max_length,
    strip_keys,
    keep_duplicates,
    near_duplicates,
    no_redact,
    force,
    as_user,
    as_json,
) -> None:  # noqa: ANN001, E501
    """Write a sanitized copy of PATH and say what changed and why."""
    args: dict[str, Any] = {
        "dataset": path,
        "output": output,
        "strip_keys": list(strip_keys),
        "drop_exact_duplicates": not keep_duplicates,
        "near_duplicate_threshold": near_duplicates or None,
        "redact": [] if no_redact else ["email", "phone", "secret"],
        "force": force,
    }
    if min_length is not None:
        args["min_length"] = min_length
    if max_length is not None:
        args["max_length"] = max_length
    with working("sanitizing", as_json):
        out = call(ctx, human(ctx, as_user), "sanitize_dataset", args)
    emit(out, as_json, _render_sanitize)


@data.command("split")
@click.argument("path")
@click.option("--out", "out_dir", default=None, help="New or empty folder (default PATH-splits).")
@click.option("--fractions", default="0.8,0.1,0.1", show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--stratify", default=None, help="Keep this column's class shares.")
@as_option
@json_option
@click.pass_context
def split_cmd(ctx, path, out_dir, fractions, seed, stratify, as_user, as_json) -> None:  # noqa: ANN001
    """Split PATH into train/validation/test files with a fixed seed."""
    from core.errors import InvalidInput

    try:
        parts = [float(x) for x in fractions.split(",")]
    except ValueError as exc:
        raise InvalidInput(f"--fractions {fractions!r} is not a list of numbers") from exc
    args: dict[str, Any] = {"dataset": path, "fractions": parts, "seed": seed}
    if out_dir:
        args["out_dir"] = out_dir
    if stratify:
        args["stratify"] = stratify
    with working("splitting", as_json):
        out = call(ctx, human(ctx, as_user), "split_dataset", args)

    def render(o: dict[str, Any]) -> None:
        click.echo(f"{o['out_dir']} (seed {o['seed']}):")
        for name, p in o["parts"].items():
            click.echo(f"  {name:10} {p['rows']:>7} rows  {p['path']}  sha256:{p['digest'][:12]}")

    emit(out, as_json, render)


@data.command("register")
@click.argument("name")
@click.argument("path")
@click.option("--replace", is_flag=True, help="Point an existing name at this file.")
@as_option
@json_option
@click.pass_context
def register_cmd(ctx, name, path, replace, as_user, as_json) -> None:  # noqa: ANN001
    """Name the dataset file PATH (recorded with its SHA-256): tools then take NAME for it."""
    out = call(
        ctx,
        human(ctx, as_user),
        "register_dataset",
        {"name": name, "path": path, "replace": replace},
    )

    def render(d: dict[str, Any]) -> None:
        click.echo(f"{d['name']} -> {d['path']} (sha256 {d['sha256'][:12]}…, {d['size']} bytes)")
        click.echo(f'use it as a dataset, e.g. --input \'{{"evaluation_dataset": "{d["name"]}"}}\'')

    emit(out, as_json, render)


@data.command("list")
@as_option
@json_option
@click.pass_context
def list_cmd(ctx, as_user, as_json) -> None:  # noqa: ANN001
    """The named datasets."""
    out = call(ctx, human(ctx, as_user), "list_datasets", {})

    def render(d: dict[str, Any]) -> None:
        if not d["datasets"]:
            click.echo("No named datasets: `agent data register NAME FILE` names one.")
        for e in d["datasets"]:
            click.echo(
                f"{e['name']}  {e['path']}  sha256 {e['sha256'][:12]}…  by {e['registered_by']}"
            )

    emit(out, as_json, render)
