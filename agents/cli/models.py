"""``agent models list|show``."""

from __future__ import annotations

from typing import Any

import click

from agents.cli.common import as_option, call, console, emit, human, json_option, table


@click.group()
def models() -> None:
    """List, show and register models."""


@models.command("list")
@as_option
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, as_user: str | None, as_json: bool) -> None:
    """Registered models with latest version and aliases."""
    out = call(ctx, human(ctx, as_user), "list_models")

    def render(data: dict[str, Any]) -> None:
        t = table("model", "versions", "latest", "aliases")
        for m in data["models"]:
            aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(m["aliases"].items()))
            t.add_row(m["name"], str(m["versions"]), str(m["latest_version"]), aliases)
        console().print(t if data["models"] else "No registered models. Try `agent quickstart`.")

    emit(out, as_json, render)


@models.command("show")
@click.argument("name")
@click.option("--version", "-v", help="Version number or alias (champion, challenger).")
@as_option
@json_option
@click.pass_context
def show_cmd(
    ctx: click.Context, name: str, version: str | None, as_user: str | None, as_json: bool
) -> None:
    """A model's versions with honesty metadata, lineage and validation."""
    args = {"name": name, **({"version": version} if version else {})}
    out = call(ctx, human(ctx, as_user), "get_model", args)

    def render(data: dict[str, Any]) -> None:
        c = console()
        for v in data["versions"]:
            tags = v["tags"]
            c.print(
                f"[bold]{v['name']} v{v['version']}[/bold]  aliases: {', '.join(v['aliases']) or '-'}"
            )
            for k in (
                "implementation_status",
                "accuracy_claim",
                "validation_method",
                "honesty_warning",
            ):
                c.print(f"  {k:22} {v['honesty'].get(k, '[red]MISSING[/red]')}")
            c.print(
                f"  {'validation':22} {tags.get('validation_status', 'not validated')} {tags.get('validated_by', '')}"
            )
            if v.get("version_label"):
                c.print(f"  {'version label':22} {v['version_label']}")
            if tags.get("model_format"):
                c.print(
                    f"  {'model':22} {tags.get('framework', '?')}, stored as {tags['model_format']}"
                )
            if v.get("claimed_metrics"):
                c.print(f"  {'claimed metrics':22} {_claims(v['claimed_metrics'])}")
            c.print(f"  {'artifact sha256':22} {v['artifact_sha256']}")
            for k, val in v["lineage"].items():
                c.print(f"  {k:22} {val}")
            if tags.get("approval_id"):
                c.print(
                    f"  {'promoted':22} {tags['approval_id']} approved by {tags.get('approved_by')}"
                )

    emit(out, as_json, render)


def _claims(metrics: dict[str, float]) -> str:
    text = ", ".join(f"{k}={v:g}" for k, v in sorted(metrics.items()))
    return f"{text} (claimed, not measured)"


@models.command("register")
@click.argument("name")
@click.option("--from-run", "run_id", metavar="RUN_ID", help="An MLflow run that logged the model.")
@click.option(
    "--from-path",
    "path",
    metavar="PATH",
    help="A .skops or .onnx file or an MLflow model directory (under the working directory "
    "or MODELOPS_HOME). Pickle/joblib files are refused.",
)
@click.option("--version-label", metavar="SEMVER", help='Your semantic version, e.g. "2.1.0".')
@click.option(
    "--framework", type=click.Choice(["sklearn", "xgboost", "lightgbm", "onnx"]), default=None
)
@click.option("--honesty-json", metavar="JSON", help="Honesty metadata (default: HEURISTIC).")
@click.option("--metrics-json", metavar="JSON", help="Metrics you claim (stored as claimed).")
@click.option("--training-data", metavar="PATH", help="CSV/parquet of the training rows.")
@click.option("--sample", metavar="PATH", help="CSV of input rows: the input schema.")
@click.option("--label-column", metavar="NAME", help="The training data's label column.")
@click.option("--description", default="", help="A note stored with the version.")
@as_option
@json_option
@click.pass_context
def register_cmd(
    ctx: click.Context,
    name: str,
    run_id: str | None,
    path: str | None,
    version_label: str | None,
    framework: str | None,
    honesty_json: str | None,
    metrics_json: str | None,
    training_data: str | None,
    sample: str | None,
    label_column: str | None,
    description: str,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Register a model trained elsewhere as a new version of NAME."""
    from agents.cli.common import parse_json_input
    from core.errors import InvalidInput

    if (run_id is None) == (path is None):
        raise InvalidInput(
            "give exactly one of --from-run RUN_ID or --from-path PATH",
            hint="e.g. agent models register churn --from-path model.skops --sample rows.csv",
        )
    args: dict[str, Any] = {"name": name, "source": f"runs:/{run_id}" if run_id else path}
    optional = {
        "version_label": version_label,
        "framework": framework,
        "training_data": training_data,
        "sample": sample,
        "label_column": label_column,
        "description": description or None,
    }
    args.update({k: v for k, v in optional.items() if v is not None})
    if honesty_json is not None:
        args["honesty"] = parse_json_input(honesty_json, "--honesty-json")
    if metrics_json is not None:
        args["metrics"] = parse_json_input(metrics_json, "--metrics-json")
    out = call(ctx, human(ctx, as_user), "register_own_model", args)
    emit(out, as_json, render_registration)


def render_registration(data: dict[str, Any]) -> None:
    c = console()
    label = f" ({data['version_label']})" if data.get("version_label") else ""
    c.print(
        f"[bold]Registered {data['name']} v{data['version']}{label}[/bold]: "
        f"{data['framework']} model stored as {data['model_format']}"
    )
    cols = data.get("input_columns")
    c.print(f"  {'input columns':22} {', '.join(cols) if cols else 'row vectors only'}")
    for k, val in data["honesty"].items():
        c.print(f"  {k:22} {val}")
    if data.get("claimed_metrics"):
        c.print(f"  {'claimed metrics':22} {_claims(data['claimed_metrics'])}")
    c.print(f"  {'artifact sha256':22} {data['artifact_sha256']}")
    if data.get("training_dataset"):
        c.print(f"  {'training data':22} {data['training_dataset']} (label {data['label_column']})")
    if data.get("reference_profile"):
        c.print(f"  {'monitoring reference':22} {data['reference_profile']}")
    if data.get("dropped_tags"):
        c.print(f"  {'dropped run tags':22} {', '.join(data['dropped_tags'])}")
    for note in data.get("notes") or []:
        c.print(f"  note: {note}")
