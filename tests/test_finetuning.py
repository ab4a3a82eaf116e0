# ruff: noqa: F811  (pytest fixtures imported from tests/fakes are parameters here)
"""Fine-tuning against a fake OpenAI-compatible fine-tuning API on 127.0.0.1 (the real
``openai`` client): validate + upload, create, statuses, events, checkpoints, cancel, a failed
job, registration as an external model that nothing loads or serves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import Conflict, ExternalServiceError, InvalidInput, NotFound
from core.finetuning import FineTuningJob, finetuning_client
from tests.fakes.finetune_server import FakeFineTuningServer, finetune_api  # noqa: F401

ROWS = [
    {
        "messages": [
            {"role": "user", "content": f"question {i}"},
            {"role": "assistant", "content": f"answer {i}"},
        ]
    }
    for i in range(5)
]


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_job_lifecycle_and_registration(home: Path, rt, finetune_api: FakeFineTuningServer) -> None:
    train = write(Path("train.jsonl"), ROWS)
    valid = write(Path("valid.jsonl"), ROWS[:2])
    job = FineTuningJob.create(
        train,
        model="gpt-4o-mini",
        validation_file=valid,
        suffix="churn",
        hyperparameters={"n_epochs": 2},
    )
    assert set(job.uploaded) == {"training", "validation"}
    seen_status, events = [], []
    final = job.wait(
        on_event=events.append, on_status=lambda s: seen_status.append(s.status), poll_s=0.01
    )
    assert final.status == "succeeded" and final.fine_tuned_model.startswith("ft:gpt-4o-mini")
    assert seen_status == ["queued", "running", "succeeded"] or seen_status[-1] == "succeeded"
    assert events[0].message.startswith("Validating") and "successfully" in events[-1].message
    (ckpt,) = job.checkpoints()
    assert ckpt.metrics["train_loss"] == 0.5 and ckpt.step == 10
    assert final.hyperparameters["n_epochs"] == 2

    dana = rt.services.policy.human("dana")
    out = rt.dispatcher.call_or_raise(
        dana, "register_finetuned_model", {"name": "support-llm", "job_id": job.id}
    )
    assert out["servable"] is False and "cannot load or serve" in out["serving_note"]
    assert out["claimed_metrics"]["train_loss"] == 0.5
    assert out["honesty"]["honesty_warning"] == "UNVALIDATED"
    info = rt.services.registry.get("support-llm", out["version"])
    assert info.tags["dataset_digest"] == job.dataset_reports["training"].digest
    assert info.tags["external_model_id"] == final.fine_tuned_model
    # Nothing loads, evaluates, deploys or promotes it, and each says why.
    with pytest.raises(InvalidInput, match="not servable"):
        rt.services.registry.load("support-llm", out["version"])
    staged = rt.dispatcher.call(
        dana, "deploy_to_staging", {"name": "support-llm", "version": out["version"]}
    )
    assert staged.error.code == "invalid_input" and "external LLM" in staged.error.message
    from policies.gates import check_promotion

    evidence = {
        "candidate": {
            "name": "support-llm",
            "version": "1",
            "honesty": info.honesty,
            "artifact_sha256": None,
            "servable": False,
            "serving_note": info.serving_note,
        },
        "metrics": {},
    }
    report = check_promotion(evidence, rt.services.thresholds)
    assert any(c.name == "servable" and not c.passed for c in report.checks)


def test_failed_and_cancelled_jobs(home: Path, finetune_api: FakeFineTuningServer) -> None:
    train = write(Path("train.jsonl"), ROWS)
    finetune_api.enqueue_outcome("failed")
    failed = FineTuningJob.create(train, model="gpt-4o-mini")
    st = failed.wait(poll_s=0.01)
    assert st.status == "failed" and "diverged" in st.error["message"]
    finetune_api.enqueue_outcome("hold")
    held = FineTuningJob.create(train, model="gpt-4o-mini")
    for _ in range(4):
        held.status()
    assert held.status().status == "running"
    assert held.cancel().status == "cancelled"
    assert held.status().status == "cancelled"
    with pytest.raises(InvalidInput, match="already cancelled"):
        held.cancel()
    with pytest.raises(Conflict, match="only a succeeded job"):
        from core.finetuning.register import register_finetuned
        from core.registry import ModelRegistry
        from core.settings import load_settings

        s = load_settings()
        register_finetuned(
            ModelRegistry(s.resolved_tracking_uri, s.resolved_artifact_root), held, "m"
        )
    with pytest.raises(NotFound):
        FineTuningJob("ftjob-none").status()


def test_invalid_file_is_never_uploaded(home: Path, finetune_api: FakeFineTuningServer) -> None:
    bad = write(
        Path("bad.jsonl"), [ROWS[0], "{oops", {"messages": [{"role": "user", "content": "q"}]}]
    )
    with pytest.raises(InvalidInput, match=r"line 2.*line 3"):
        FineTuningJob.create(bad, model="gpt-4o-mini")
    assert finetune_api.files == {} and finetune_api.jobs == {}


def test_without_an_endpoint_it_says_one_is_needed(home: Path, rt, monkeypatch, capsys) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ExternalServiceError, match="needs an OpenAI-compatible endpoint"):
        finetuning_client()
    write(Path("train.jsonl"), ROWS)
    dana = rt.services.policy.human("dana")
    res = rt.dispatcher.call(
        dana, "create_finetune_job", {"training_file": "train.jsonl", "model": "gpt-4o-mini"}
    )
    assert res.error.code == "external_service_error" and "OPENAI_BASE_URL" in res.error.hint
    from tests.helpers.cli import run_agent

    code, _, err = run_agent(capsys, "finetune", "status", "ftjob-1", "--as", "dana")
    assert code == 1 and "needs an OpenAI-compatible endpoint" in err and "Traceback" not in err


def test_cli_create_status_cancel(home: Path, finetune_api: FakeFineTuningServer, capsys) -> None:
    from tests.helpers.cli import run_agent

    write(Path("train.jsonl"), ROWS)
    finetune_api.enqueue_outcome("hold")
    code, out, err = run_agent(
        capsys,
        "finetune",
        "create",
        "train.jsonl",
        "--model",
        "gpt-4o-mini",
        "--json",
        "--as",
        "dana",
    )
    assert code == 0, err
    job_id = json.loads(out)["job"]["id"]
    code, out, _ = run_agent(capsys, "finetune", "status", job_id, "--as", "dana")
    assert code == 0 and job_id in out
    code, out, _ = run_agent(capsys, "finetune", "cancel", job_id, "--json", "--as", "dana")
    assert code == 0 and json.loads(out)["job"]["status"] == "cancelled"
    code, out, _ = run_agent(
        capsys, "finetune", "status", job_id, "--wait", "--poll", "0.01", "--as", "dana"
    )
    assert code == 0 and "cancelled" in out
