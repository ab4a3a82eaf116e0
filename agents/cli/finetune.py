"""``agent finetune create|status|cancel|register``: jobs at an OpenAI-compatible API."""

from __future__ import annotations

import time
from typing import Any

import click

from agents.cli.common import as_option, call, emit, human, json_option
from agents.cli.progress import working


@click.group()
def finetune() -> None:
    """Fine-tune an LLM at an OpenAI-compatible API (OPENAI_BASE_URL / OPENAI_API_KEY)."""


def _render_job(out: dict[str, Any]) -> None:
    j = out["job"]
    click.echo(f"{j['id']}: {j['status']} (base {j['model']})")
    if j.get("fine_tuned_model"):
        click.echo(f"  model: {j['fine_tuned_model']}")
    if j.get("error"):
        click.echo(f"  error: {j['error'].get('message', j['error'])}")
    for role, fid in out.get("uploaded_files", {}).items():
        ds = out.get("datasets", {}).get(role, {})
        click.echo(
            f"  {role} file {fid}: {ds.get('rows', '?')} rows, sha256:{str(ds.get('digest', ''))[:12]}"
        )
    for c in out.get("checkpoints", []):
        shown = ", ".join(f"{k} {v:.4g}" for k, v in c["metrics"].items() if k != "step")
        click.echo(f"  checkpoint step {c['step']}: {shown}")


@finetune.command("create")
@click.argument("training_file")
@click.option("--model", required=True, help="Base model, e.g. gpt-4o-mini-2024-07-18.")
@click.option("--validation-file", default=None)
@click.option("--epochs", "n_epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--lr-multiplier", "learning_rate_multiplier", type=float, default=None)
@click.option("--suffix", default=None)
@click.option("--seed", type=int, default=None)
@as_option
@json_option
@click.pass_context
def create_cmd(
    ctx,
    training_file,
    model,
    validation_file,
    n_epochs,
    batch_size,
    learning_rate_multiplier,
    suffix,
    seed,
    as_user,
    as_json,
) -> None:  # noqa: ANN001, E501
    """Validate and upload TRAINING_FILE, then create the job."""
    args: dict[str, Any] = {"training_file": training_file, "model": model}
    for key, value in {
        "validation_file": validation_file,
        "n_epochs": n_epochs,
        "batch_size": batch_size,
        "learning_rate_multiplier": learning_rate_multiplier,
        "suffix": suffix,
        "seed": seed,
    }.items():
        if value is not None:
            args[key] = value
    with working("validating and uploading", as_json):
        out = call(ctx, human(ctx, as_user), "create_finetune_job", args)
    emit(out, as_json, _render_job)
    if not as_json:
        click.echo(f"Follow it: agent finetune status {out['job']['id']} --wait")


@finetune.command("status")
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Poll until the job ends, printing its events.")
@click.option("--poll", "poll_s", type=float, default=10.0, show_default=True)
@click.option("--timeout", "timeout_s", type=float, default=3600.0, show_default=True)
@as_option
@json_option
@click.pass_context
def status_cmd(ctx, job_id, wait, poll_s, timeout_s, as_user, as_json) -> None:  # noqa: ANN001
    """A job's status, events and checkpoints; --wait streams events until it ends."""
    actor = human(ctx, as_user)
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        out = call(ctx, actor, "get_finetune_job", {"job_id": job_id})
        if not as_json:
            for ev in out["events"]:
                if ev["id"] not in seen:
                    seen.add(ev["id"])
                    click.echo(f"[{ev['level']}] {ev['message']}", err=wait)
        if not wait or out["job"]["status"] in ("succeeded", "failed", "cancelled"):
            break
        if time.monotonic() >= deadline:
            click.echo(
                f"still {out['job']['status']} after {timeout_s:g} s; it keeps running", err=True
            )
            break
        time.sleep(poll_s)
    emit(out, as_json, _render_job)


@finetune.command("cancel")
@click.argument("job_id")
@as_option
@json_option
@click.pass_context
def cancel_cmd(ctx, job_id, as_user, as_json) -> None:  # noqa: ANN001
    """Cancel a job that has not finished."""
    out = call(ctx, human(ctx, as_user), "cancel_finetune_job", {"job_id": job_id})
    emit(out, as_json, _render_job)


@finetune.command("register")
@click.argument("job_id")
@click.option("--name", required=True, help="Registered model name.")
@click.option("--description", default="")
@as_option
@json_option
@click.pass_context
def register_cmd(ctx, job_id, name, description, as_user, as_json) -> None:  # noqa: ANN001
    """Register a succeeded job's model as an external (not servable) LLM version."""
    with working("registering", as_json):
        out = call(
            ctx,
            human(ctx, as_user),
            "register_finetuned_model",
            {"job_id": job_id, "name": name, "description": description},
        )

    def render(o: dict[str, Any]) -> None:
        click.echo(f"registered {o['name']} v{o['version']}: {o['external_model_id']}")
        click.echo(f"  not servable here: {o['serving_note']}")
        click.echo(
            f"  honesty: {o['honesty'].get('accuracy_claim')} ({o['honesty'].get('honesty_warning')})"
        )

    emit(out, as_json, render)
