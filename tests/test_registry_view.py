"""The read-only SQLite view of MLflow's registry (core/registry_view.py) answers exactly what
the MLflow client answers, never writes, and steps aside when it cannot be sure."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import InvalidInput, NotFound
from core.registry_view import (
    KNOWN_SCHEMA_REVISIONS,
    RegistryView,
    open_registry_view,
    sqlite_path,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def both(registered):
    """The MLflow-backed registry and the view over the same store, after writes of every kind
    the view reads: aliases, extra tags, a deleted version, a model without versions."""
    rt = registered["rt"]
    reg = rt.services.registry
    name = registered["name"]
    reg.set_alias(name, "challenger", "2")
    reg.client.set_registered_model_alias(name, "champion", "1")
    reg.set_tags(name, "1", {"validation_status": "PASSED", "note": "ünïcode ✓"})
    reg.client.create_registered_model("empty-model", description="registered, no versions yet")
    # A third version of the same run's model, then deleted: MLflow hides it from every read.
    v1 = reg.get(name, "1")
    extra = reg.client.create_model_version(
        name, source=v1.source, run_id=v1.run_id, model_id=v1.source.removeprefix("models:/")
    )
    reg.client.delete_model_version(name, extra.version)
    view = open_registry_view(rt.settings.resolved_tracking_uri)
    assert isinstance(view, RegistryView)
    return reg, view, name


def test_view_lists_what_mlflow_lists(both):
    reg, view, name = both
    assert view.list_models() == reg.list_models()
    listed = {m["name"]: m for m in view.list_models()}
    assert listed[name]["versions"] == 2 and listed[name]["latest_version"] == 2
    assert listed[name]["aliases"] == {"champion": 1, "challenger": 2}
    assert listed["empty-model"]["versions"] == 0
    assert listed["empty-model"]["latest_version"] is None


def test_view_shows_versions_as_mlflow_does(both):
    reg, view, name = both
    assert view.list_versions(name) == reg.list_versions(name)
    assert [v.version for v in view.list_versions(name)] == ["1", "2"]
    for ref in ("1", "2", "champion", "challenger", 2):
        assert view.get(name, ref) == reg.get(name, ref), ref
    v1 = view.get(name, "1")
    assert v1.aliases == ["champion"] and v1.tags["note"] == "ünïcode ✓"
    assert v1.artifact_uri == reg.get(name, "1").artifact_uri != v1.source
    assert view.list_versions("empty-model") == reg.list_versions("empty-model") == []
    for alias in ("champion", "challenger", "nothing"):
        assert view.alias_version(name, alias) == reg.alias_version(name, alias)


def test_view_refuses_what_mlflow_refuses_with_the_same_errors(both):
    reg, view, name = both
    cases = [("no-such-model", "1"), (name, "3"), (name, "99"), ("empty-model", "champion")]
    for model, version in cases:
        with pytest.raises(NotFound) as from_mlflow:
            reg.get(model, version)
        with pytest.raises(NotFound) as from_view:
            view.get(model, version)
        assert from_view.value.message == from_mlflow.value.message
        assert from_view.value.hint == from_mlflow.value.hint
    for bad in [("../etc", "1"), (name, "latest")]:
        with pytest.raises(InvalidInput):
            reg.get(*bad)
        with pytest.raises(InvalidInput):
            view.get(*bad)
    with pytest.raises(NotFound, match="no registered model"):
        view.list_versions("no-such-model")


def test_view_connection_is_read_only(both):
    _, view, _ = both
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    with pytest.raises(OperationalError, match="readonly"), view.engine.begin() as conn:
        conn.execute(text("DELETE FROM registered_model_aliases"))


def test_no_view_when_mlflow_must_answer(home, monkeypatch):
    db = home / "mlflow.db"
    assert sqlite_path(f"sqlite:///{db}") == db
    assert open_registry_view(f"sqlite:///{db}") is not None
    assert open_registry_view("postgresql://u@127.0.0.1/mlflow") is None
    assert open_registry_view("http://127.0.0.1:5000") is None
    assert open_registry_view("sqlite://") is None
    assert open_registry_view(f"sqlite:///{home / 'missing.db'}") is None
    (home / "not-mlflow.db").write_bytes(b"")
    assert open_registry_view(f"sqlite:///{home / 'not-mlflow.db'}") is None
    other = home / "other-revision.db"
    shutil.copy(db, other)
    with sqlite3.connect(other) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfeed0000'")
    assert open_registry_view(f"sqlite:///{other}") is None
    monkeypatch.setenv("MLFLOW_ENABLE_WORKSPACES", "true")
    assert open_registry_view(f"sqlite:///{db}") is None


def test_known_revisions_include_the_installed_mlflow_schema_head():
    """Fails after an mlflow upgrade that changes the schema: re-check the view's tables
    against the new migrations, then add the new head to KNOWN_SCHEMA_REVISIONS."""
    import mlflow.store
    from alembic.script import ScriptDirectory

    migrations = Path(mlflow.store.__file__).parent / "db_migrations"
    heads = ScriptDirectory(str(migrations)).get_heads()
    assert len(heads) == 1 and heads[0] in KNOWN_SCHEMA_REVISIONS


def test_read_tools_use_the_view_and_writes_still_go_through_mlflow(registered):
    rt = registered["rt"]
    assert isinstance(rt.services.registry_reader, RegistryView)
    carol = rt.services.policy.human("carol")
    listed = rt.dispatcher.call_or_raise(carol, "list_models")
    assert listed["models"] == rt.services.registry.list_models()
    shown = rt.dispatcher.call_or_raise(carol, "get_model", {"name": registered["name"]})
    assert shown["versions"] == [
        v.model_dump(mode="json") for v in rt.services.registry.list_versions(registered["name"])
    ]
    dana = rt.services.policy.human("dana")
    rt.dispatcher.call_or_raise(
        dana, "set_challenger", {"name": registered["name"], "version": "2"}
    )
    assert rt.services.registry_reader.alias_version(registered["name"], "challenger") == "2"
    entries = rt.services.audit.entries(action="get_model")
    assert entries and entries[0]["actor"] == "carol" and entries[0]["outcome"] == "ok"


def test_models_list_and_show_do_not_import_mlflow(registered):
    code = (
        "import sys\n"
        "from agents.cli.main import main\n"
        "for args in (['models', 'list', '--json'], ['models', 'show', sys.argv[1], '--json']):\n"
        "    try:\n"
        "        main([*args, '--as', 'carol'])\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('tools.'))\n"
        "print('MLFLOW=' + str('mlflow' in sys.modules), 'TOOLS=' + ','.join(loaded))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, registered["name"]],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "MLFLOW=False" in res.stdout
    tools = set(res.stdout.split("TOOLS=")[1].strip().split(","))
    assert "tools.registry_tools" in tools
    assert not tools & {"tools.deployment_tools", "tools.evaluation_tools", "tools.promotion_tools"}
