"""``agent quickstart``: the whole promotion path on bundled data, end to end."""

from __future__ import annotations

import json
from typing import Any

import click

from agents.cli.approvals import render_outcome, render_request
from agents.cli.common import (
    as_option,
    call,
    console,
    emit,
    human,
    is_interactive,
    json_option,
    runtime,
)

MODEL_NAME = "breast-cancer-classifier"


@click.command()
@as_option
@click.option("--model-name", default=MODEL_NAME, show_default=True)
@click.option("--no-prompt", is_flag=True, help="Never ask for an approval, even on a terminal.")
@json_option
@click.pass_context
def quickstart(
    ctx: click.Context, as_user: str | None, model_name: str, no_prompt: bool, as_json: bool
) -> None:
    """Train a baseline and a candidate on scikit-learn's breast cancer data, register both with
    honesty metadata, have QA validate, and request promotion of the better one.

    On a terminal it asks for the human approval; otherwise it leaves the request pending and
    prints the command that approves it.
    """
    actor = human(ctx, as_user)
    say = (lambda *_a, **_k: None) if as_json else console().print

    say("[1/5] Training on scikit-learn's breast cancer data, logging both runs to MLflow…")
    trained = call(ctx, actor, "train_reference_models", {"run_prefix": model_name})
    say(f"      {trained['train_rows']} train / {trained['holdout_rows']} holdout rows")
    say("[2/5] Registering versions with honesty metadata…")
    versions: list[dict[str, Any]] = []
    for run in trained["runs"]:
        out = call(
            ctx,
            actor,
            "register_model",
            {
                "name": model_name,
                "run_id": run["run_id"],
                "honesty": run["honesty"],
                "description": f"{run['kind']} trained by agent quickstart",
            },
        )
        metrics = run["holdout_metrics"]
        versions.append({"kind": run["kind"], "version": out["version"], "metrics": metrics})
        say(
            f"      v{out['version']} {run['kind']}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items())
        )
    best = max(versions, key=lambda v: (v["metrics"]["f1"], v["metrics"]["auc_roc"]))
    call(ctx, actor, "set_challenger", {"name": model_name, "version": best["version"]})
    say(f"[3/5] Challenger: v{best['version']} ({best['kind']}, best F1 on the holdout)")
    say("[4/5] Promotion workflow: evidence → gates → QA validation → approval request…")
    dataset = trained["holdout_path"]
    outcome = call(
        ctx,
        actor,
        "request_promotion",
        {"name": model_name, "version": best["version"], "dataset": dataset},
    )
    result: dict[str, Any] = {
        "model": model_name,
        "versions": versions,
        "challenger": best["version"],
        "promotion": outcome,
    }
    if outcome["status"] not in ("pending_approval", "pending_validation"):
        emit(result, as_json, lambda _d: render_outcome(outcome))
        raise SystemExit(3)
    if not as_json:
        render_outcome(outcome)
    if outcome["status"] == "pending_validation":
        say(f"[5/5] The policy asks a human QATester first:\n\n    {outcome['validate_command']}\n")
        if as_json:
            click.echo(json.dumps(result, indent=2, default=str))
        return
    if is_interactive() and not no_prompt and not as_json:
        result["promotion"] = _ask_approval(ctx, outcome["approval_id"], actor.name)
        return
    say(
        "[5/5] Waiting for a human. Review the evidence, then approve that exact evidence:\n\n"
        f"    {outcome['show_command']}\n    {outcome['approve_command']}\n"
    )
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))


def _ask_approval(ctx: click.Context, approval_id: str, requester: str) -> dict[str, Any]:
    rt = runtime(ctx)
    approvers = [a for a in rt.services.policy.approvers() if a != requester]
    say = console().print
    say(
        f"[5/5] Approval node: {', '.join(approvers)} may decide (not {requester}, who requested it)."
    )
    while True:
        name = click.prompt(
            "Approver name (empty to leave it pending)", default="", show_default=False
        )
        if not name or name in approvers:
            break
        why = "requested it" if name == requester else "is not a listed approver"
        say(f"{name} {why}; the approval node accepts only {', '.join(approvers)}.")
    if not name:
        say(
            f"Left pending. Review it with `agent approvals show {approval_id}`, then "
            f"`agent approvals approve {approval_id} --as {approvers[0]}`."
        )
        return {"status": "pending_approval", "approval_id": approval_id}
    approver = human(ctx, name)
    req = call(ctx, approver, "get_approval", {"approval_id": approval_id})["approval"]
    render_request(req)
    approve = click.confirm(f"{name}: approve this promotion?", default=False)
    reason = click.prompt("Reason", default="reviewed evidence in quickstart")
    call(
        ctx,
        approver,
        "decide_approval",
        {
            "approval_id": approval_id,
            "approve": approve,
            "evidence_hash": req["evidence_hash"],
            "reason": reason,
        },
    )
    outcome = rt.run_decided(approval_id, approver)
    render_outcome(outcome)
    exe = outcome.get("execution") or {}
    if outcome["status"] == "deployed":
        from core.training import load_breast_cancer_split

        row = load_breast_cancer_split().holdout.drop(columns="target").iloc[0].tolist()
        resp = call(ctx, approver, "predict", {"name": exe["name"], "features": row})
        say("Sample prediction response:")
        click.echo(json.dumps(resp["response"], indent=2))
    return outcome
