"""Artifacts, names and paths: the registration manifest (MLflow's own files ignored, anything
else refused), skops/ONNX only and from the verified bytes, reserved run tags dropped, one name
rule for paths, output folders confined to the user's roots, and a gateway stop that signals
only its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.artifacts import MANIFEST_FILE, MLFLOW_ADDED_FILES, read_verified
from core.errors import Conflict, InvalidInput
from core.names import ModelName, is_reserved_tag, split_reserved_tags, validate_name
from core.registry import local_path


def _model_dir(reg, name: str, version: str) -> Path:
    return local_path(reg.get(name, version).artifact_uri)


def _log_run(reg, bc_data, log_model) -> str:  # noqa: ANN001
    """A run in the default experiment whose model ``log_model(model, X)`` logs."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from core.tracking import DEFAULT_EXPERIMENT, ensure_experiment

    X = bc_data.train[bc_data.feature_names]
    model = LogisticRegression(max_iter=200).fit(X, bc_data.train["target"])
    exp_id = ensure_experiment(reg.client, DEFAULT_EXPERIMENT, reg.artifact_root)
    with mlflow.start_run(experiment_id=exp_id) as run:
        log_model(model, X)
    return run.info.run_id


# 1. The manifest ---------------------------------------------------------------------------
def test_mlflow_loading_a_version_keeps_it_verifiable_and_a_changed_byte_is_refused(
    registered,
):
    import mlflow.pyfunc

    reg = registered["rt"].services.registry
    name = registered["name"]
    reg.set_alias(name, "challenger", "2")
    root = _model_dir(reg, name, "2")
    manifest = json.loads((root / MANIFEST_FILE).read_text())["files"]
    assert "model.skops" in manifest and MANIFEST_FILE not in manifest

    mlflow.pyfunc.load_model(f"models:/{name}/2")
    mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    # MLflow may write its own files (mlflow 3.18 no longer writes registered_model_meta):
    # whatever it added is one of MLFLOW_ADDED_FILES, never something the manifest reads.
    assert {p.name for p in root.iterdir()} - set(manifest) - {MANIFEST_FILE} <= MLFLOW_ADDED_FILES
    model = reg.load_sklearn(name, "2")  # still verifies, and only the manifest's files are read
    assert model.predict([registered["row"]]).shape == (1,)

    skops_file = root / "model.skops"
    data = bytearray(skops_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    skops_file.write_bytes(bytes(data))
    with pytest.raises(Conflict, match="changed since registration"):
        reg.load_sklearn(name, "2")


def test_an_extra_or_missing_file_in_the_model_folder_is_refused(registered):
    import pickle

    from core.deployment import ServedVersion
    from core.serving.loader import load_version

    reg = registered["rt"].services.registry
    info = reg.get(registered["name"], "1")
    root = local_path(info.artifact_uri)
    planted = root / "model.pkl"
    planted.write_bytes(pickle.dumps({"not": "a model"}))
    served = ServedVersion(
        version="1",
        weight=100,
        artifact_uri=info.artifact_uri,
        artifact_sha256=info.artifact_sha256,
    )
    for load in (lambda: reg.load_sklearn(info.name, "1"), lambda: load_version(served)):
        with pytest.raises(Conflict, match=r"not there at registration \(model.pkl\)"):
            load()
    planted.unlink()
    assert load_version(served).runtime == "sklearn"

    (root / "python_env.yaml").unlink()
    with pytest.raises(Conflict, match="lacks files it had at registration"):
        read_verified(info.artifact_uri, info.artifact_sha256, ref=info.ref)


def test_a_symlink_in_the_model_folder_is_refused(registered, tmp_path):
    reg = registered["rt"].services.registry
    info = reg.get(registered["name"], "1")
    (local_path(info.artifact_uri) / "extra").symlink_to(tmp_path)
    with pytest.raises(Conflict, match="symlink"):
        reg.load_sklearn(info.name, "1")


# 2. Only skops / ONNX, from the verified bytes ------------------------------------------------
def test_a_pickle_format_model_is_refused_at_registration(rt, bc_data):
    import mlflow.sklearn

    reg = rt.services.registry
    run_id = _log_run(
        reg,
        bc_data,
        lambda m, X: mlflow.sklearn.log_model(
            m,
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],
        ),
    )
    with pytest.raises(InvalidInput, match="serialized with 'cloudpickle'") as exc:
        reg.register_from_run("pickled", run_id, honesty=None)
    assert "serialization_format='skops'" in exc.value.hint and "mlflow.onnx" in exc.value.hint
    dana = rt.services.policy.human("dana")
    honesty = {
        "implementation_status": "IMPLEMENTED",
        "accuracy_claim": "n/a",
        "validation_method": "n/a",
        "honesty_warning": "UNVALIDATED",
    }
    res = rt.dispatcher.call(
        dana, "register_model", {"name": "pickled", "run_id": run_id, "honesty": honesty}
    )
    assert not res.ok and res.error.code == "invalid_input" and "skops" in res.error.hint
    assert rt.services.registry.list_models() == []


def test_a_pyfunc_only_model_is_refused_at_registration(rt, bc_data):
    import mlflow.pyfunc

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input):  # noqa: ANN001, ANN201
            return model_input

    reg = rt.services.registry
    run_id = _log_run(
        reg,
        bc_data,
        lambda m, X: mlflow.pyfunc.log_model(
            name="model", python_model=Echo(), pip_requirements=["mlflow"]
        ),
    )
    with pytest.raises(InvalidInput, match="cloudpickle"):
        reg.register_from_run("pyfunc-only", run_id, honesty=None)


def test_the_model_file_is_read_once_and_loaded_from_those_bytes(registered, monkeypatch):
    """A file swapped after the check is never what gets loaded: the loader deserializes the
    bytes it checked, and reads the file exactly once."""
    from core.deployment import ServedVersion
    from core.serving.loader import load_version

    reg = registered["rt"].services.registry
    info = reg.get(registered["name"], "2")
    real_read = Path.read_bytes
    reads: list[str] = []

    def swapping_read(self: Path) -> bytes:
        if self.name == "model.skops":
            reads.append(str(self))
            if len(reads) > 1:  # any second read sees the attacker's file
                return b"swapped after the check"
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", swapping_read)
    model = reg.load_sklearn(info.name, info.version)
    assert len(reads) == 1 and model.predict([registered["row"]]).shape == (1,)
    reads.clear()
    served = ServedVersion(
        version=info.version,
        weight=100,
        artifact_uri=info.artifact_uri,
        artifact_sha256=info.artifact_sha256,
    )
    assert load_version(served).runtime == "sklearn" and len(reads) == 1

    # Swapped before the (single) read: the check sees it and nothing is deserialized.
    import skops.io

    def never(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("deserialized an unverified file")

    monkeypatch.setattr(skops.io, "loads", never)
    monkeypatch.setattr(Path, "read_bytes", real_read)
    skops_file = local_path(info.artifact_uri) / "model.skops"
    skops_file.write_bytes(b"swapped before the check")
    with pytest.raises(Conflict, match="changed since registration"):
        reg.load_sklearn(info.name, info.version)


# 3. Reserved run tags ------------------------------------------------------------------------
def test_reserved_run_tags_are_dropped_at_registration(rt, bc_data, trained):
    reg = rt.services.registry
    forged = {
        "validation_status": "PASSED",
        "approved_by": "alice",
        "honesty_warning": "VALIDATED",
        "Champion_Since": "2026-01-01",
        "artifact_sha256": "0" * 64,
        "team": "fraud",
    }
    run_id = reg.log_sklearn_run(
        trained[0].model,
        X_sample=bc_data.train[bc_data.feature_names].head(3),
        honesty=None,
        run_name="forged",
        extra_tags=forged,
    )
    info = reg.register_from_run("forged", run_id, honesty=None)
    assert info.tags["team"] == "fraud"
    for key in ("validation_status", "approved_by", "honesty_warning", "Champion_Since"):
        assert key not in info.tags
    assert info.artifact_sha256 != "0" * 64 and len(info.artifact_sha256) == 64
    assert info.dropped_tags == sorted(set(forged) - {"team"})
    assert "honesty_warning" in info.missing_honesty

    # Through the tool, the honesty argument is what the version carries; the rest is reported.
    dana = rt.services.policy.human("dana")
    honesty = trained[0].honesty.model_dump(mode="json") | {"honesty_warning": "UNVALIDATED"}
    out = rt.dispatcher.call_or_raise(
        dana, "register_model", {"name": "forged", "run_id": run_id, "honesty": honesty}
    )
    v2 = reg.get("forged", out["version"])
    assert v2.honesty["honesty_warning"] == "UNVALIDATED" and "approved_by" not in v2.tags
    assert out["dropped_tags"] == [
        "Champion_Since",
        "approved_by",
        "artifact_sha256",
        "validation_status",
    ]


def test_the_reserved_rule():
    for key in (
        "validation_status",
        "validated_by",
        "approved_by",
        "approval_id",
        "deployed_revision",
        "champion",
        "promoted_at",
        "evidence_hash",
        "artifact_sha256",
        "implementation_status",
        "accuracy_claim",
        "validation_method",
        "honesty_warning",
        "VALIDATION_STATUS",
    ):
        assert is_reserved_tag(key), key
    for key in ("team", "git_commit", "dataset_digest", "optimized_from", "run_id"):
        assert not is_reserved_tag(key), key
    assert split_reserved_tags({"a": "1", "approved_by": "x"}) == ({"a": "1"}, ["approved_by"])


# 4. One name rule ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad", ["../x", "..", ".hidden", "a/b", "a\\b", "a@b", "a b", "a\n", "-x", "", "x" * 129]
)
def test_one_name_rule_refuses_path_like_names(bad):
    from pydantic import TypeAdapter, ValidationError

    with pytest.raises(InvalidInput, match="invalid model name"):
        validate_name("model", bad)
    with pytest.raises(ValidationError):
        TypeAdapter(ModelName).validate_python(bad)


def test_one_name_rule_accepts_the_names_in_use():
    for good in ("breast-cancer-classifier", "bc.v2", "m_1", "A" * 128, "staging", "local"):
        assert validate_name("model", good) == good


def test_predict_with_a_path_name_is_refused_and_creates_nothing(rt, home, tmp_path):
    from core.serving import process

    dana = rt.services.policy.human("dana")
    # A valid name with no deployment: not found (and the state DB, policy pin etc. exist now).
    res = rt.dispatcher.call(dana, "predict", {"name": "nothing-here", "features": [1.0]})
    assert not res.ok and res.error.code == "not_found"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for name in ("../x", "../../x", "x/../../y"):
        res = rt.dispatcher.call(dana, "predict", {"name": name, "features": [1.0]})
        assert not res.ok and res.error.code == "invalid_input", res
        with pytest.raises(InvalidInput):
            process.read_gateway(home, name, "production")
        with pytest.raises(InvalidInput):
            rt.services.deployments.gateway_info(name, "staging")
    with pytest.raises(InvalidInput):
        process.gateway_dir(home, "m", "../t")
    res = rt.dispatcher.call(dana, "predict", {"name": "nothing-here", "features": [1.0]})
    assert not res.ok and res.error.code == "not_found"
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before
    assert not (home / "gateways").exists()
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


# 5. Confined output folders ------------------------------------------------------------------
def test_output_folder_must_stay_inside_the_working_directory_or_home(
    rt, home, tmp_path, tmp_path_factory
):
    services = rt.services
    outside = tmp_path_factory.mktemp("elsewhere")
    (tmp_path / "escape").symlink_to(outside)
    for raw in ("../x", str(outside / "bundle"), "escape", "escape/bundle", "/etc/modelops"):
        with pytest.raises(InvalidInput, match="outside the allowed directories") as exc:
            services.resolve_output_dir(raw, default="deploy/x")
        assert "--out" in exc.value.hint
    for raw in (".", str(home), str(home / "artifacts" / "x"), str(home / "gateways")):
        with pytest.raises(InvalidInput, match="manage"):
            services.resolve_output_dir(raw, default="deploy/x")
    assert services.resolve_output_dir(None, default="deploy/m-r1") == tmp_path / "deploy/m-r1"
    assert services.resolve_output_dir(str(home / "out"), default="x") == home / "out"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    with pytest.raises(InvalidInput, match="not empty") as exc:
        services.resolve_output_dir("full", default="x")
    assert "--force" in exc.value.hint
    assert services.resolve_output_dir("full", default="x", force=True) == tmp_path / "full"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InvalidInput, match="not a folder"):
        services.resolve_output_dir("afile", default="x")
    assert not (tmp_path / "deploy").exists() and not any(outside.iterdir())


def test_render_writes_inside_the_chosen_folder_and_never_overwrites_others_files(
    registered, tmp_path, tmp_path_factory
):
    from core.deployment import ServedVersion

    rt = registered["rt"]
    name = registered["name"]
    info = rt.services.registry.get(name, "1")
    rt.services.deployments.deploy(
        name,
        ServedVersion(
            version="1",
            weight=100,
            artifact_uri=info.artifact_uri,
            artifact_sha256=info.artifact_sha256,
        ),
        actor="test",
        environment="staging",
    )
    dana = rt.services.policy.human("dana")
    args = {"name": name, "source": "staging"}
    outside = tmp_path_factory.mktemp("outside")
    (tmp_path / "link").symlink_to(outside)
    for raw in ("../bundle", str(outside), "link/bundle"):
        res = rt.dispatcher.call(dana, "render_deployment", {**args, "output_dir": raw})
        assert not res.ok and res.error.code == "invalid_input", res
    assert not any(outside.iterdir())

    out = rt.dispatcher.call_or_raise(dana, "render_deployment", {**args, "write": True})
    bundle = Path(out["output_dir"])
    assert bundle == tmp_path / "deploy" / f"{name}-r1"
    copied = {
        p.relative_to(bundle / "models/v1").as_posix() for p in (bundle / "models/v1").iterdir()
    }
    assert copied == set(
        json.loads((local_path(info.artifact_uri) / MANIFEST_FILE).read_text())["files"]
    )
    (bundle / "notes.txt").write_text("mine")
    res = rt.dispatcher.call(dana, "render_deployment", {**args, "write": True})
    assert not res.ok and "not empty" in res.error.message
    rt.dispatcher.call_or_raise(dana, "render_deployment", {**args, "write": True, "force": True})
    assert (bundle / "notes.txt").read_text() == "mine"

    # A file we did not write, in the way of one we would: refused, left as it is.
    (bundle / ".modelops-bundle.json").unlink()
    res = rt.dispatcher.call(dana, "render_deployment", {**args, "write": True, "force": True})
    assert not res.ok and "not written by" in res.error.message
    # A symlink inside the bundle pointing out: nothing is written through it.
    fresh = tmp_path / "fresh"
    rt.dispatcher.call_or_raise(dana, "render_deployment", {**args, "output_dir": "fresh"})
    import shutil

    shutil.rmtree(fresh / "k8s")
    (fresh / "k8s").symlink_to(outside)
    res = rt.dispatcher.call(
        dana, "render_deployment", {**args, "output_dir": "fresh", "force": True}
    )
    assert not res.ok and "symlink" in res.error.message
    assert not any(outside.iterdir())


# 6. Gateway stop checks the pid -------------------------------------------------------------
def _record(home: Path, pid: int, create_time: float | None) -> Path:
    d = home / "gateways" / "m"
    d.mkdir(parents=True, exist_ok=True)
    meta = d / "gateway.json"
    meta.write_text(json.dumps({"pid": pid, "create_time": create_time, "url": "http://x"}))
    return meta


def test_gateway_stop_never_signals_a_process_that_is_not_that_gateway(home):
    import psutil

    from core.serving import process

    sleeper = subprocess.Popen(["sleep", "30"])
    # Same cmdline shape as a gateway; only the recorded start time tells it apart.
    lookalike = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", "-m", "core.serving.gateway"]
        + ["--model", "m", "--target", "local"]
    )
    try:
        meta = _record(home, sleeper.pid, psutil.Process(sleeper.pid).create_time())
        assert process.read_gateway(home, "m", "production")["running"] is False
        assert process.stop_gateway(home, "m", "production") is False
        assert not meta.exists()
        time.sleep(0.1)
        assert sleeper.poll() is None  # still alive: never signalled

        started = psutil.Process(lookalike.pid).create_time()
        for recorded in (started + 100.0, None):
            meta = _record(home, lookalike.pid, recorded)
            assert process.stop_gateway(home, "m", "production") is False and not meta.exists()
            assert lookalike.poll() is None
        # With its real start time it is ours: that is the only case that signals.
        _record(home, lookalike.pid, started)
        assert process.read_gateway(home, "m", "production")["running"] is True
        assert process.stop_gateway(home, "m", "production") is True
        assert lookalike.wait(10) is not None
    finally:
        for p in (sleeper, lookalike):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert os.environ.get("MODELOPS_HOME") == str(home)
