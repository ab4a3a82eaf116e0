"""``agent workflow run NAME --input JSON``: the named workflows, seed-compatible inputs."""

from __future__ import annotations

import importlib
from typing import Any

import click

from agents.cli.common import as_option, call, emit, human, json_option, parse_json_input, runtime
from core.errors import InvalidInput

WORKFLOWS = {
    "ml-model-evaluation": "Evaluate a model version (the evaluate_model tool's input).",
    "promotion": "Request production promotion: evidence, gates, QA validation, then human approval.",
    "mlops-deployment": "Roll out (direct, canary, blue-green, shadow) or roll back a model version.",
}


@click.group()
def workflow() -> None:
    """Run a named workflow with JSON input."""


@workflow.command("list")
def list_cmd() -> None:
    """The workflows and what they do."""
    for name, what in WORKFLOWS.items():
        click.echo(f"{name:22} {what}")


@workflow.command("run")
@click.argument("name", type=click.Choice(sorted(WORKFLOWS)))
@click.option("--input", "raw", required=True, help="Workflow input as a JSON object.")
@as_option
@json_option
@click.pass_context
def run_cmd(ctx: click.Context, name: str, raw: str, as_user: str | None, as_json: bool) -> None:
    """Run workflow NAME as you (through the same dispatcher and policies as agents)."""
    data = parse_json_input(raw)
    if not isinstance(data, dict):
        raise InvalidInput("--input must be a JSON object")
    actor = human(ctx, as_user)
    if name == "ml-model-evaluation":
        from agents.cli.eval import render_evaluation

        emit(call(ctx, actor, "evaluate_model", data), as_json, render_evaluation)
    elif name == "promotion":
        from agents.cli.approvals import render_outcome

        emit(call(ctx, actor, "request_promotion", data), as_json, render_outcome)
    else:
        module = importlib.import_module("agents.deployment_workflow")
        out: dict[str, Any] = module.run_deployment_workflow(runtime(ctx).dispatcher, actor, data)
        emit(out, as_json, module.render)
