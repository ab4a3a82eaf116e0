"""The seed workflows' inputs as written: semantic version labels where a version is asked for,
``NAME-vN`` / ``NAME-prod`` ids refused with their exact ``NAME/N`` / ``NAME@champion`` form,
the tracker's ``description`` and ``tags`` kept on the run, ``deployment_target: kubernetes``
rendered (not applied); and the seed's Python API spellings."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ExternalServiceError, InvalidInput, NotFound
from core.names import parse_model_ref, seed_style_ref


# The grammar (core.names) -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("churn-classifier/1", ("churn-classifier", "1", None, None)),
        ("churn-classifier@champion", ("churn-classifier", None, "champion", None)),
        ("churn-classifier@2.1.0", ("churn-classifier", None, None, "2.1.0")),
        ("churn-classifier/2.1.0", ("churn-classifier", None, None, "2.1.0")),
        ("churn-classifier@v2.1.0-rc.1", ("churn-classifier", None, None, "2.1.0-rc.1")),
    ],
)
def test_model_references_parse(text: str, expected: tuple) -> None:
    ref = parse_model_ref(text)
    assert (ref.name, ref.version, ref.alias, ref.label) == expected


@pytest.mark.parametrize(
    ("seed", "fixed"),
    [
        ("churn-classifier-v1", "churn-classifier/1"),
        ("churn-classifier-v12", "churn-classifier/12"),
        ("churn-classifier-prod", "churn-classifier@champion"),
        ("churn-classifier-production", "churn-classifier@champion"),
    ],
)
def test_seed_style_ids_are_refused_with_the_exact_form(seed: str, fixed: str) -> None:
    assert seed_style_ref(seed) == fixed
    with pytest.raises(InvalidInput) as exc:
        parse_model_ref(seed)
    assert f"write {fixed!r}" in exc.value.message
    assert "agent models show churn-classifier" in exc.value.hint


def test_a_version_number_after_at_names_the_slash_form() -> None:
    with pytest.raises(InvalidInput, match="write 'm/3'"):
        parse_model_ref("m@3")


def test_a_bare_name_is_a_reference_only_where_one_is_allowed() -> None:
    assert parse_model_ref("m", bare=True).selector is None
    with pytest.raises(InvalidInput, match="names no version"):
        parse_model_ref("m")
    # Not a label and not a number: refused, never passed on as a version.
    with pytest.raises(InvalidInput, match="invalid version"):
        parse_model_ref("m/latest")


# Through the tools and workflows ------------------------------------------------------------
def test_evaluation_seed_id_is_refused_with_its_form(rt) -> None:
    qa = rt.services.policy.human("alice")
    res = rt.dispatcher.call(
        qa,
        "evaluate_model",
        {"model_id": "churn-classifier-v1", "evaluation_dataset": "holdout.csv"},
    )
    assert not res.ok and res.error.code == "invalid_input"
    assert "'churn-classifier/1'" in res.error.message


def test_monitoring_seed_prod_id_is_refused_with_the_champion_form(rt) -> None:
    from agents.monitoring_workflow import run_monitoring

    alice = rt.services.policy.human("alice")
    with pytest.raises(InvalidInput) as exc:
        run_monitoring(rt.dispatcher, alice, {"model_id": "churn-classifier-prod"})
    assert "'churn-classifier@champion'" in exc.value.message


def _label(rt, name: str, version: str, label: str) -> None:
    # What our registration writes (register_own_model --version-label); set directly here.
    rt.services.registry.client.set_model_version_tag(name, version, "version_label", label)


@pytest.mark.slow
def test_version_labels_resolve_everywhere_and_ambiguity_is_refused(registered) -> None:
    rt, name = registered["rt"], registered["name"]
    v1, v2 = registered["versions"]
    _label(rt, name, v1, "2.1.0")
    reg = rt.services.registry
    assert reg.get(name, "2.1.0").version == v1
    assert reg.get(name, "v2.1.0").version == v1
    assert rt.services.registry_reader.get(name, "2.1.0").version == v1
    dana = rt.services.policy.human("dana")
    out = rt.dispatcher.call_or_raise(dana, "get_model", {"name": name, "version": "2.1.0"})
    assert out["versions"][0]["version"] == v1
    with pytest.raises(NotFound, match="no version labelled 9.9.9"):
        reg.get(name, "9.9.9")
    _label(rt, name, v2, "2.1.0")  # two versions, one label: never picked between
    with pytest.raises(InvalidInput, match="ambiguous"):
        reg.get(name, "2.1.0")
    with pytest.raises(InvalidInput, match="ambiguous"):
        rt.services.registry_reader.get(name, "2.1.0")


@pytest.mark.slow
def test_kubernetes_target_with_a_version_label_renders_the_manifests(registered) -> None:
    from agents.deployment_workflow import run_deployment_workflow

    rt, name = registered["rt"], registered["name"]
    v1 = registered["versions"][0]
    _label(rt, name, v1, "2.1.0")
    alice = rt.services.policy.human("alice")
    out = run_deployment_workflow(
        rt.dispatcher,
        alice,
        {"model_name": name, "version": "2.1.0", "deployment_target": "kubernetes"},
    )
    assert out["status"] == "rendered" and out["applied"] is False and out["changed"] is False
    # No approved promotion: the same version, rendered as a staging deployment; it says so.
    assert out["source_environment"] == "staging"
    assert "needs a Kubernetes cluster" in out["message"]
    assert any("agent workflow run mlops-deployment" in s for s in out["steps"])
    assert [r["version"] for r in out["routes"]] == [v1]
    assert (Path(out["output_dir"]) / "k8s" / "inferenceservice.yaml").is_file()
    # Nothing moved: production serves nothing.
    assert rt.services.deployments.current(name, "production") is None


def test_deployment_version_that_is_neither_number_nor_label_is_refused(rt) -> None:
    from agents.deployment_workflow import run_deployment_workflow

    alice = rt.services.policy.human("alice")
    with pytest.raises(InvalidInput, match="version"):
        run_deployment_workflow(rt.dispatcher, alice, {"model_name": "m", "version": "latest-prod"})


def test_tracker_input_keeps_description_and_tags_and_refuses_reserved_ones(rt, home) -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.iloc[:200, [0, 1, 2, 3, -1]]
    frame.to_csv("bc.csv", index=False)
    dana = rt.services.policy.human("dana")
    seed = {
        "experiment_name": "churn",
        "dataset": "bc.csv",
        "model_type": "logistic_regression",
        "description": "baseline for the churn model",
        "tags": {"team": "growth", "ticket": "ML-42"},
    }
    out = rt.dispatcher.call_or_raise(dana, "track_experiment", seed)
    tags = rt.services.registry.client.get_run(out["run_id"]).data.tags
    assert tags["team"] == "growth" and tags["ticket"] == "ML-42"
    assert tags["mlflow.note.content"] == "baseline for the churn model"
    for bad in ({"validation_status": "PASSED"}, {"mlflow.user": "someone"}):
        res = rt.dispatcher.call(dana, "track_experiment", {**seed, "tags": bad})
        assert not res.ok and res.error.code == "invalid_input", bad


# The seed's Python API ----------------------------------------------------------------------
def test_finetuning_job_spec_builds_offline_and_submit_needs_an_endpoint(home) -> None:
    from core import FineTuningJob

    job = FineTuningJob(model="gpt-4o-mini-2024-07-18", training_file="train.jsonl")
    assert job.id is None and job.spec["model"] == "gpt-4o-mini-2024-07-18"
    with pytest.raises(InvalidInput, match="not submitted"):
        job.status()
    with pytest.raises(ExternalServiceError, match="needs an OpenAI-compatible endpoint"):
        job.submit()
    assert job.id is None  # nothing was created
    with pytest.raises(InvalidInput, match="unknown hyperparameters"):
        FineTuningJob(model="m", hyperparameters={"epochs": 3})


def test_tracker_start_on_the_class_uses_the_home(home) -> None:
    from core import ExperimentTracker, ModelRegistry

    with ExperimentTracker.start("seed-run", tags={"k": "v"}) as run:
        run.log_metrics({"accuracy": 0.5})
    client = ModelRegistry().client
    got = client.get_run(run.run_id)
    assert got.info.status == "FINISHED" and got.data.tags["k"] == "v"
    assert str(home) in ModelRegistry().tracking_uri
    with pytest.raises(RuntimeError), ExperimentTracker.start("seed-fail") as failing:
        raise RuntimeError("boom")
    assert client.get_run(failing.run_id).info.status == "FAILED"
