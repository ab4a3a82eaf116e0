"""ModelRegistry over MLflow: honesty tags, lineage, digests, aliases, tamper refusal."""

from __future__ import annotations

import pytest

from core.errors import Conflict, InvalidInput, NotFound
from core.registry import local_path


def test_registered_versions_carry_honesty_lineage_and_digest(registered):
    reg = registered["rt"].services.registry
    v1 = reg.get(registered["name"], "1")
    assert v1.missing_honesty == []
    assert v1.honesty["implementation_status"] == "IMPLEMENTED"
    assert len(v1.artifact_sha256) == 64
    assert v1.lineage["run_id"] == v1.run_id and v1.lineage["dataset_digest"]
    models = reg.list_models()
    assert models[0]["name"] == registered["name"] and models[0]["versions"] == 2


def test_aliases_and_unknowns(registered):
    reg = registered["rt"].services.registry
    reg.set_alias(registered["name"], "challenger", "2")
    assert reg.get(registered["name"], "challenger").version == "2"
    with pytest.raises(InvalidInput):
        reg.set_alias(registered["name"], "prod", "2")
    with pytest.raises(NotFound):
        reg.get(registered["name"], "champion")
    with pytest.raises(NotFound):
        reg.get("nope", "1")
    with pytest.raises(InvalidInput):
        reg.get("../etc", "1")


def test_tampered_artifact_is_refused_before_loading(registered):
    reg = registered["rt"].services.registry
    info = reg.get(registered["name"], "2")
    model_file = next(
        p for p in local_path(info.artifact_uri).iterdir() if p.name.startswith("model.")
    )
    model_file.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(Conflict, match="changed since registration"):
        reg.load_sklearn(registered["name"], "2")


def test_dispatcher_turns_bad_arguments_into_error_results(registered):
    rt = registered["rt"]
    carol = rt.services.policy.human("carol")
    res = rt.dispatcher.call(carol, "get_model", {"name": registered["name"], "version": "1; drop"})
    assert not res.ok and res.error.code == "invalid_input"
    res = rt.dispatcher.call(carol, "get_model", {"name": registered["name"], "extra": 1})
    assert not res.ok and "extra" in res.error.message
    res = rt.dispatcher.call(carol, "no_such_tool", {})
    assert not res.ok and res.error.code == "unknown_tool"
    res = rt.dispatcher.call(carol, "get_model", "x" * 70_000)
    assert not res.ok and res.error.code == "invalid_input"
    dana = rt.services.policy.human("dana")
    res = rt.dispatcher.call(
        dana,
        "evaluate_model",
        {"model_id": f"{registered['name']}/1", "evaluation_dataset": "../../../etc/passwd"},
    )
    assert not res.ok and res.error.code == "invalid_input" and "outside" in res.error.message
    assert len(rt.services.audit.entries(decision="denied")) == 4
