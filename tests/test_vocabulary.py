"""One meaning per word: ``environment`` (production|staging), ``label_column``, ``goal`` and
``platform`` replace the four meanings ``target`` had. Old names are accepted for one release
with a warning, and rows written under the old environment name are read as production."""

from __future__ import annotations

import json
import warnings

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, insert, select

from core.deployment import (
    PRODUCTION,
    DeploymentRow,
    EnvironmentDeprecation,
    check_environment,
    normalize_environment,
)
from core.errors import InvalidInput
from core.state import ensure_tables
from tools.base import FieldRenamed
from tools.deployment_tools import DeploymentInput, RenderInput
from tools.evaluation_tools import EvaluateModelInput
from tools.optimizer_tools import OptimizeModelInput


def test_local_is_production_with_a_warning_and_unknown_names_are_refused() -> None:
    with pytest.warns(EnvironmentDeprecation, match="'local' is deprecated; use 'production'"):
        assert normalize_environment("local") == PRODUCTION
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert normalize_environment("staging") == "staging"
    with pytest.raises(InvalidInput, match="unknown deployment environment 'mars'"):
        check_environment("mars")


def test_tool_inputs_take_new_names_and_old_ones_with_a_warning() -> None:
    assert DeploymentInput(name="m").environment == "production"
    with pytest.warns(FieldRenamed, match="'target' is now 'environment'"):
        old = DeploymentInput.model_validate({"name": "m", "target": "local"})
    assert old.environment == "production"
    with pytest.warns(FieldRenamed, match="'target' is now 'label_column'"):
        ev = EvaluateModelInput.model_validate(
            {"model_id": "m/1", "evaluation_dataset": "d.csv", "target": "y"}
        )
    assert ev.label_column == "y"
    with pytest.warns(FieldRenamed):
        opt = OptimizeModelInput.model_validate(
            {"name": "m", "target": "size", "target_column": "y"}
        )
    assert (opt.goal, opt.label_column) == ("size", "y")
    with pytest.warns(FieldRenamed, match="'target' is now 'platform'"):
        assert RenderInput.model_validate({"name": "m", "target": "kubernetes"}).platform
    # Both names at once is ambiguous: refused, not guessed.
    with pytest.raises(ValueError, match="give 'environment' only"):
        DeploymentInput.model_validate({"name": "m", "target": "staging", "environment": "staging"})
    with pytest.raises(ValueError):
        DeploymentInput.model_validate({"name": "m", "environment": "mars"})


def test_rows_written_as_local_are_read_as_production(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    DeploymentRow.__table__.create(engine)
    with engine.begin() as conn:  # a database from before the rename
        conn.execute(insert(DeploymentRow.__table__).values(model_name="m", target="local"))
    ensure_tables(engine, DeploymentRow)
    with engine.connect() as conn:
        assert conn.scalar(select(DeploymentRow.__table__.c.target)) == "production"
    ensure_tables(engine, DeploymentRow)  # once only: a second call changes nothing
    with engine.connect() as conn:
        assert conn.scalar(select(DeploymentRow.__table__.c.target)) == "production"


def test_cli_accepts_the_old_flag_and_value_with_a_warning(tmp_path, monkeypatch) -> None:
    from agents.cli.main import cli

    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    new = runner.invoke(
        cli, ["deploy", "status", "--environment", "staging", "--json", "--as", "dana"]
    )
    assert new.exit_code == 0, new.output
    assert json.loads(new.stdout) == [] or isinstance(json.loads(new.stdout), list | dict)
    assert "warning" not in new.stderr
    old = runner.invoke(cli, ["deploy", "status", "--target", "local", "--json", "--as", "dana"])
    assert old.exit_code == 0, old.output
    assert "--target is now --environment" in old.stderr
    assert "'local' is now 'production'" in old.stderr
    both = runner.invoke(
        cli, ["deploy", "status", "--target", "staging", "--environment", "staging", "--as", "dana"]
    )
    assert both.exit_code == 2 and "--environment only" in both.output
