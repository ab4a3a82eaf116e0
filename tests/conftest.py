"""Shared fixtures: a temp MODELOPS_HOME per test, a wired runtime, trained models,
PostgreSQL when reachable (tests marked ``pg``), and the scripted OpenAI-compatible server."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.models import register_models
from tests.fakes.openai_server import scripted_llm  # noqa: F401  (fixture)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Gateways run one worker per core by default. Tests read exact counts right after their
# requests, which one process gives at once (other workers' counts are up to a poll tick old);
# the worker tests ask for two, and test_serving_workers checks the default itself.
os.environ.setdefault("MODELOPS_GATEWAY_WORKERS", "1")
PG_ADMIN_URL = os.environ.get("MODELOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, migrated once: creating one runs every migration (~3 s)."""
    from core.tracking import configure_mlflow

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    configure_mlflow(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_db_template: Path) -> Path:
    """Isolated state: MODELOPS_HOME under tmp, cwd = tmp, no identity or LLM from the env."""
    for var in (
        "MODELOPS_USER",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
        "MODELOPS_STATE_DB_URL",
        "MODELOPS_TRACKING_URI",
        "MODELOPS_CONFIG",
        "MODELOPS_GRAPHS_DB",
        "MODELOPS_TOKEN",
        "MODELOPS_POLICIES_DIR",
        "MODELOPS_SERVER",
    ):
        monkeypatch.delenv(var, raising=False)
    # No personal token file from the developer's own config.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    h = tmp_path / "home"
    h.mkdir()
    shutil.copy(mlflow_db_template, h / "mlflow.db")
    monkeypatch.setenv("MODELOPS_HOME", str(h))
    monkeypatch.chdir(tmp_path)
    return h


@pytest.fixture
def rt(home: Path):
    """A runtime (services + dispatcher + promotion workflow) on the temp home."""
    from agents.runtime import build_runtime
    from core.settings import load_settings

    runtime = build_runtime(load_settings())
    # The home pins its policy on first use (an audit row, policies/pinned.py): do it now, so
    # tests that count audit rows from here on see only the rows their own calls write.
    runtime.services.pinned  # noqa: B018
    yield runtime
    deployments = runtime.services.deployments
    for name in deployments.list_deployments():
        deployments.stop_gateway(name)


@pytest.fixture(scope="session")
def bc_data():
    from core.training import load_breast_cancer_split

    return load_breast_cancer_split()


@pytest.fixture(scope="session")
def trained(bc_data):
    from core.training import train_quickstart_models

    return train_quickstart_models(bc_data)


@pytest.fixture
def registered(rt, bc_data, trained) -> dict:
    """Both quickstart models logged and registered (v1 logistic regression, v2 random forest)
    through the register_model tool as dana, plus the holdout CSV under MODELOPS_HOME."""
    return register_models(rt, bc_data, trained)


def _pg_database() -> Iterator[str]:
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[pg]')")
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}".splitlines()[0]
        if os.environ.get("MODELOPS_REQUIRE_PG") == "1":
            pytest.fail(reason)  # CI provides PostgreSQL: a pg test must not silently skip there
        pytest.skip(reason)
    name = f"modelops_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        from sqlalchemy import create_engine  # noqa: F401 - engines are cached per URL; drop them first

        from core.state import get_engine

        for url in [f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)]:
            try:
                get_engine(url).dispose()
            except Exception as exc:  # report, but still drop the database
                print(f"engine dispose failed: {exc}")
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (skips with the reason when unreachable)."""
    yield from _pg_database()


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def state_db_url(request, tmp_path: Path) -> Iterator[str]:
    """The state DB URL on SQLite and, for tests marked pg, on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        yield from _pg_database()


@pytest.fixture(scope="session", autouse=True)
def _no_gateway_outlives_the_suite(tmp_path_factory: pytest.TempPathFactory):
    """Gateways are detached processes by design; a failing test must not leave one running.
    At the end, stop every gateway whose MODELOPS_HOME lies under this run's temp root."""
    yield
    import signal

    root = str(tmp_path_factory.getbasetemp())
    leaked = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if b"core.serving.gateway" not in cmdline:
                continue
            env = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        home = next(
            (e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"MODELOPS_HOME=")), ""
        )
        if home.startswith(root):
            leaked.append(int(proc.name))
            os.kill(int(proc.name), signal.SIGTERM)
    if leaked:
        print(f"\nstopped {len(leaked)} gateway process(es) left running by tests: {leaked}")
