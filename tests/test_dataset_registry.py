"""Bare dataset names (the seeds' ``customer_data_2024``) resolve through the dataset registry
(``agent data register NAME FILE``), or are refused with the command that registers one; a
registered file that changed since is refused by name."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers.cli import run_agent


@pytest.mark.slow  # trains and registers two models
def test_a_bare_name_resolves_once_registered_and_a_changed_file_is_refused(
    registered, capsys
) -> None:
    rt = registered["rt"]
    name, v1 = registered["name"], registered["versions"][0]
    dana, carol = rt.services.policy.human("dana"), rt.services.policy.human("carol")
    args = {"model_id": f"{name}/{v1}", "evaluation_dataset": "customer_data_2024"}

    res = rt.dispatcher.call(dana, "evaluate_model", args)
    assert res.error.code == "not_found", res
    assert "agent data register customer_data_2024 FILE" in res.error.hint

    shutil.copy(registered["holdout"], "customer_data_2024.csv")
    # An Architect reads datasets but does not name them.
    denied = rt.dispatcher.call(
        carol, "register_dataset", {"name": "customer_data_2024", "path": "customer_data_2024.csv"}
    )
    assert denied.error.code == "permission_denied"
    code, out, err = run_agent(
        capsys, "data", "register", "customer_data_2024", "customer_data_2024.csv", "--as", "dana"
    )
    assert code == 0, err
    assert "customer_data_2024 ->" in out
    code, out, _ = run_agent(capsys, "data", "list", "--as", "carol", "--json")
    assert [d["name"] for d in json.loads(out)["datasets"]] == ["customer_data_2024"]

    ev = rt.dispatcher.call_or_raise(dana, "evaluate_model", args)
    assert ev["n"] > 100 and ev["dataset"]["path"].endswith("customer_data_2024.csv"), ev

    # A second registration of the name needs --replace.
    again = rt.dispatcher.call(
        dana, "register_dataset", {"name": "customer_data_2024", "path": "customer_data_2024.csv"}
    )
    assert again.error.code == "conflict" and "--replace" in again.error.hint

    with open("customer_data_2024.csv", "a") as fh:  # the file changes behind the name
        fh.write("\n")
    changed = rt.dispatcher.call(dana, "evaluate_model", args)
    assert changed.error.code == "conflict" and "changed since it was registered" in (
        changed.error.message
    )


@pytest.mark.parametrize(
    ("name", "path", "code"),
    [
        ("../escape", "data.csv", "invalid_input"),
        ("has.dot", "data.csv", "invalid_input"),
        ("ok_name", "/etc/passwd", "invalid_input"),
        ("ok_name", "missing.csv", "not_found"),
    ],
)
def test_hostile_names_and_paths_are_refused_and_nothing_is_recorded(
    rt, name: str, path: str, code: str
) -> None:
    from pathlib import Path

    Path("data.csv").write_text("a,target\n1,0\n2,1\n")
    dana = rt.services.policy.human("dana")
    res = rt.dispatcher.call(dana, "register_dataset", {"name": name, "path": path})
    assert res.error is not None and res.error.code == code, res
    listed = rt.dispatcher.call_or_raise(dana, "list_datasets", {})
    assert listed["datasets"] == []
