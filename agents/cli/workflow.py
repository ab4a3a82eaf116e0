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
    "ml-model-registry": "Register your own model (skops/ONNX file, MLflow directory or run) "
    "with its version label, claimed metrics and training data.",
    "ml-experiment-tracker": "Train a model on your table and track the run in MLflow (params, "
    "metrics, datasets, predictions, environment, honesty).",
    "ml-feature-engineering": "Profile a table, generate and select features, reject leaking "
    "ones, store the rest in the feature store with a version.",
    "ml-model-monitoring": "Monitor a served model: data and prediction drift, estimated "
    "(HEURISTIC) and realized performance, SLOs; alerts; the pinned policy may roll back.",
    "ml-ab-testing": "A/B test two versions on an approved production split: power plan, "
    "sticky assignment, SRM, z/Welch, CUPED, sequential CIs, decision.",
}


@click.group()
def workflow() -> None:
    """Run a named workflow with JSON input."""


@workflow.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """The workflows and what they do."""
    from agents.cli.workflow_inputs import PLANNED, input_schema, schema_summary

    out = {
        "workflows": [
            {
                "name": n,
                "description": what,
                "status": "PLANNED" if n in PLANNED else "available",
                "input_schema": input_schema(n),
                **({"example_input": PLANNED[n]["example"]} if n in PLANNED else {}),
            }
            for n, what in WORKFLOWS.items()
        ]
    }

    def render(data: dict[str, Any]) -> None:
        for w in data["workflows"]:
            click.echo(f"{w['name']:22} {w['description']}")
            if w["input_schema"]:
                click.echo(f"{'':22} input: {schema_summary(w['input_schema'])}")

    emit(out, as_json, render)


@workflow.command("run")
@click.argument("name", type=click.Choice(sorted(WORKFLOWS)))
@click.option(
    "--input", "raw", required=True, help="Workflow input as a JSON object; @FILE or - (stdin)."
)
@as_option
@json_option
@click.pass_context
def run_cmd(ctx: click.Context, name: str, raw: str, as_user: str | None, as_json: bool) -> None:
    """Run workflow NAME as you (through the same dispatcher and policies as agents)."""
    data = parse_json_input(raw)
    if not isinstance(data, dict):
        raise InvalidInput("--input must be a JSON object")
    from agents.cli.workflow_inputs import PLANNED, planned_error

    if name in PLANNED:
        raise planned_error(name)
    actor = human(ctx, as_user)
    if name in ("ml-experiment-tracker", "ml-feature-engineering"):
        from agents.cli.progress import working
        from agents.cli.workflow_render import render_workflow

        tool = "track_experiment" if name == "ml-experiment-tracker" else "engineer_features"
        with working(f"running {name}", as_json):
            out = call(ctx, actor, tool, data)
        emit(out, as_json, lambda o: render_workflow(name, o))
        return
    if name in ("ml-model-monitoring", "ml-ab-testing"):
        from agents import monitoring_workflow as mw

        run = mw.run_monitoring if name == "ml-model-monitoring" else mw.run_ab_test
        emit(run(runtime(ctx).dispatcher, actor, data), as_json, mw.render)
        return
    if name == "ml-model-evaluation":
        from agents.cli.eval import render_evaluation

        emit(call(ctx, actor, "evaluate_model", data), as_json, render_evaluation)
    elif name == "ml-model-registry":
        from agents.cli.models import render_registration
        from tools.byom_tools import from_seed_input

        out = call(ctx, actor, "register_own_model", from_seed_input(data))
        emit(out, as_json, render_registration)
    elif name == "promotion":
        from agents.cli.approvals import render_outcome

        emit(call(ctx, actor, "request_promotion", data), as_json, render_outcome)
    else:
        module = importlib.import_module("agents.deployment_workflow")
        out: dict[str, Any] = module.run_deployment_workflow(runtime(ctx).dispatcher, actor, data)
        emit(out, as_json, module.render)
