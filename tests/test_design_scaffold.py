"""scaffold_serving_api: the generated FastAPI app starts on 127.0.0.1 and predicts exactly
what the registry model predicts; pins, Dockerfile, 422s, tamper check; confined output."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from core.artifacts import read_verified, sklearn_from_bytes


def _carol(rt):
    return rt.services.policy.human("carol")


def _scaffold(rt, who="carol", **args):
    return rt.dispatcher.call(rt.services.policy.human(who), "scaffold_serving_api", args)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(folder: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode())
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the generated app did not start within 60 s")


def _model_requirements(info) -> dict[str, str]:
    files = read_verified(info.artifact_uri, info.artifact_sha256, ref="t")
    lines = files["requirements.txt"].decode().splitlines()
    return dict(line.split("==", 1) for line in lines if "==" in line)


def test_pins_come_from_the_models_logged_requirements_first():
    from core.design.scaffold import _pins

    files = {
        "requirements.txt": b"mlflow==3.0.0\nscikit-learn==1.5.2  # trained with\nnumpy\n",
        "conda.yaml": b"dependencies:\n- python=3.11\n- pip:\n  - skops==0.10.0\n",
    }
    warnings: list[str] = []
    pins = _pins(files, "sklearn", warnings)
    assert pins["scikit-learn"] == "1.5.2" and pins["skops"] == "0.10.0"
    assert "mlflow" not in pins
    listed, absent = warnings
    assert "without a version" in listed and "numpy==" in listed
    assert "fastapi==" in absent and "scikit-learn" not in " ".join(warnings)


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_generated_app_serves_the_registry_models_predictions(registered):
    rt, name, (_v1, v2) = registered["rt"], registered["name"], registered["versions"]
    res = _scaffold(rt, model_id=f"{name}/{v2}")
    assert res.ok, res.error
    out = res.output
    folder = Path(out["path"])
    assert folder.is_relative_to(rt.services.settings.home_dir / "drafts" / "serving")
    assert folder.name == f"{name}-v{v2}" and out["runtime"] == "sklearn"
    for rel in ("app.py", "serving.json", "requirements.txt", "Dockerfile", "model/MLmodel"):
        assert (folder / rel).is_file(), rel
    app_text = (folder / "app.py").read_text()
    assert "pickle" not in app_text.replace("no pickle", "")
    # Pins: the model's own logged versions where it has them; the rest said in warnings.
    info = rt.services.registry_reader.get(name, v2)
    logged = _model_requirements(info)
    reqs = dict(
        line.split("==", 1)
        for line in (folder / "requirements.txt").read_text().splitlines()
        if "==" in line
    )
    assert {"fastapi", "uvicorn", "prometheus-client", "scikit-learn", "skops"} <= set(reqs)
    assert "mlflow" not in reqs and reqs == out["pins"]
    said = " ".join(out["warnings"])
    for pkg, version in reqs.items():  # the fixture logs scikit-learn & co. without a pin
        assert logged.get(pkg) == version or f"{pkg}=={version}" in said, pkg
    assert "without a version" in said and "scikit-learn==" in said
    docker = (folder / "Dockerfile").read_text()
    assert (
        docker.startswith(f"FROM python:{sys.version_info.major}.{sys.version_info.minor}-slim\n")
        and "pip install --no-cache-dir -r requirements.txt" in docker
    )
    assert "USER serving" in docker and 'CMD ["uvicorn", "app:app"' in docker

    # The registry model's own predictions on holdout rows.
    holdout = pd.read_csv(registered["holdout"]).drop(columns=["target"]).head(5)
    columns = out["columns"]
    assert columns == list(holdout.columns)
    files = read_verified(info.artifact_uri, info.artifact_sha256, ref="t")
    model = sklearn_from_bytes(files, ref="t")
    expected = model.predict(holdout[columns].to_numpy()).tolist()
    expected_proba = model.predict_proba(holdout[columns].to_numpy()).tolist()
    import mlflow.pyfunc  # and MLflow's own load of the registered version agrees

    assert mlflow.pyfunc.load_model(f"models:/{name}/{v2}").predict(holdout).tolist() == expected

    proc, base = _start(folder)
    try:
        health = httpx.get(f"{base}/health").json()
        assert health["model_version"] == str(v2)
        assert health["artifact_sha256"] == info.artifact_sha256
        for field in ("implementation_status", "accuracy_claim", "validation_method"):
            assert health[field] == info.honesty[field]
        records = holdout.to_dict(orient="records")
        named = httpx.post(f"{base}/predict", json={"inputs": records}).json()
        assert named["prediction"] == expected
        assert np.allclose(named["probabilities"], expected_proba, rtol=0, atol=1e-12)
        assert named["honesty_warning"] == info.honesty["honesty_warning"]
        assert named["implementation_status"] == info.honesty["implementation_status"]
        one = httpx.post(f"{base}/predict", json={"inputs": records[0]}).json()
        assert one["prediction"] == expected[0]
        rows = holdout.to_numpy().tolist()
        vec = httpx.post(f"{base}/predict", json={"features": rows}).json()
        assert vec["prediction"] == expected
        single = httpx.post(f"{base}/predict", json={"features": rows[0]}).json()
        assert single["prediction"] == expected[0] and single["model_name"] == name
        # Wrong schema: 422, never a guess.
        missing = {k: v for k, v in records[0].items() if k != columns[0]}
        extra = {**records[0], "surprise": 1.0}
        text = {**records[0], columns[1]: "big"}
        for body in (
            {"inputs": missing},
            {"inputs": extra},
            {"inputs": text},
            {"features": rows[0][:-1]},
            {"features": [rows[0], rows[1][:-1]]},
            {"features": rows[0], "inputs": records[0]},
            {},
            {"inputs": []},
        ):
            r = httpx.post(f"{base}/predict", json=body)
            assert r.status_code == 422, (body, r.text)
        bad_nan = httpx.post(
            f"{base}/predict",
            content=b'{"features": [' + b"NaN," * (len(columns) - 1) + b"1]}",
            headers={"content-type": "application/json"},
        )
        assert bad_nan.status_code == 422 and "finite" in bad_nan.text
        assert r.json()["columns"] == columns  # the 422 names the columns the model takes
        metrics = httpx.get(f"{base}/metrics").text
        assert f'predictions_total{{model_version="{v2}"}} 12.0' in metrics
        assert "predict_latency_seconds_count 4.0" in metrics
        assert 'requests_total{status="422"} 9.0' in metrics
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    # A model file changed after scaffolding: the app refuses to start.
    skops_file = next(folder.joinpath("model").glob("*.skops"))
    skops_file.write_bytes(skops_file.read_bytes() + b"\0")
    boot = subprocess.run(
        [sys.executable, "-c", "import app"], cwd=folder, capture_output=True, text=True
    )
    assert boot.returncode != 0 and "changed (sha256" in boot.stderr
    # Consistent hashes in serving.json are not enough: they must make the registered digest.
    config = json.loads((folder / "serving.json").read_text())
    rel = f"model/{skops_file.name}"
    config["files"][rel] = hashlib.sha256(skops_file.read_bytes()).hexdigest()
    (folder / "serving.json").write_text(json.dumps(config))
    boot = subprocess.run(
        [sys.executable, "-c", "import app"], cwd=folder, capture_output=True, text=True
    )
    assert boot.returncode != 0 and "digest mismatch" in boot.stderr


def test_unknown_models_and_hostile_output_folders_write_nothing(registered, tmp_path):
    rt, name, (v1, _v2) = registered["rt"], registered["name"], registered["versions"]
    serving = rt.services.settings.home_dir / "drafts" / "serving"

    def refused(code: str, **args) -> str:
        res = _scaffold(rt, **args)
        assert not res.ok and res.error.code == code, (args, res)
        return res.error.message

    assert "no-such" in refused("not_found", model_id="no-such-model@champion")
    refused("not_found", model_id=f"{name}@champion")  # no champion yet: never "the newest"
    refused("not_found", model_id=f"{name}/999")
    refused("invalid_input", model_id="../etc")
    assert not serving.exists()
    assert _scaffold(rt, "bob", model_id=f"{name}/{v1}").error.code == "permission_denied"

    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    refused("invalid_input", model_id=f"{name}/{v1}", out_dir="../../escape")
    refused("invalid_input", model_id=f"{name}/{v1}", out_dir=str(outside / "api"))
    outside.mkdir()
    Path("linked").symlink_to(outside, target_is_directory=True)
    refused("invalid_input", model_id=f"{name}/{v1}", out_dir="linked/api")
    assert not any(outside.iterdir()) and not serving.exists()

    # Into a named folder; again without force is refused and changes nothing.
    first = _scaffold(rt, model_id=f"{name}/{v1}", out_dir="serving-api")
    assert first.ok, first.error
    app = Path("serving-api/app.py")
    app.write_text("# edited by a person\n")
    refused("invalid_input", model_id=f"{name}/{v1}", out_dir="serving-api")
    assert app.read_text() == "# edited by a person\n"
    # A symlink planted inside the folder is refused even with force; its target untouched.
    target = outside / "victim.txt"
    target.write_text("keep")
    Path("serving-api/Dockerfile").unlink()
    Path("serving-api/Dockerfile").symlink_to(target)
    msg = refused("invalid_input", model_id=f"{name}/{v1}", out_dir="serving-api", force=True)
    assert "Dockerfile (a symlink)" in msg and target.read_text() == "keep"
    assert app.read_text() == "# edited by a person\n"
    Path("serving-api/Dockerfile").unlink()
    # The edited app.py is ours no longer: even with force it is refused, never overwritten.
    msg = refused("invalid_input", model_id=f"{name}/{v1}", out_dir="serving-api", force=True)
    assert "app.py (changed since we wrote it)" in msg
    assert app.read_text() == "# edited by a person\n"
    assert not Path("serving-api/Dockerfile").exists()  # refused as a whole: nothing written
    app.unlink()
    forced = _scaffold(rt, model_id=f"{name}/{v1}", out_dir="serving-api", force=True)
    assert forced.ok, forced.error
    assert "FastAPI" in app.read_text() and Path("serving-api/Dockerfile").is_file()
    # Unchanged since that scaffold: force overwrites it.
    again = _scaffold(rt, model_id=f"{name}/{v1}", out_dir="serving-api", force=True)
    assert again.ok and again.output["kept"] == [], again
    # NAME@champion is the alias's version; a default-folder scaffold never overwrites one.
    rt.services.registry.set_alias(name, "champion", v1)
    a = _scaffold(rt, model_id=f"{name}@champion").output
    b = _scaffold(rt, model_id=f"{name}@champion").output
    assert a["version"] == str(v1) and Path(a["path"]).name == f"{name}-v{v1}"
    assert Path(b["path"]).name == f"{name}-v{v1}-2"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_onnx_version_scaffold_serves_onnxruntime_predictions(registered):
    rt, name, (_v1, v2) = registered["rt"], registered["name"], registered["versions"]
    dana = rt.services.policy.human("dana")
    opt = rt.dispatcher.call_or_raise(
        dana,
        "optimize_model",
        {"model_id": f"{name}/{v2}", "dataset": registered["holdout"], "benchmark_seconds": 0.1},
    )
    assert opt["registered"], opt
    onnx_version = opt["version"]
    res = _scaffold(rt, model_id=f"{name}/{onnx_version}")
    assert res.ok, res.error
    out = res.output
    folder = Path(out["path"])
    assert out["runtime"] == "onnxruntime" and "onnxruntime" in out["pins"]
    assert "skops" not in out["pins"] and any(f.endswith(".onnx") for f in out["files"])
    import mlflow.pyfunc

    holdout = pd.read_csv(registered["holdout"]).drop(columns=["target"]).head(20)
    expected = mlflow.pyfunc.load_model(f"models:/{name}/{onnx_version}").predict(
        holdout[out["columns"]]
    )
    proc, base = _start(folder)
    try:
        got = httpx.post(
            f"{base}/predict", json={"inputs": holdout.to_dict(orient="records")}
        ).json()
        assert got["model_version"] == str(onnx_version)
        labels = np.asarray(expected.iloc[:, 0] if hasattr(expected, "iloc") else expected)
        assert got["prediction"] == labels.reshape(-1).tolist()
        assert len(got["probabilities"]) == 20 and len(got["probabilities"][0]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_tampered_store_artifact_is_refused_before_anything_is_written(registered):
    from core.artifacts import local_path

    rt, name, (v1, _v2) = registered["rt"], registered["name"], registered["versions"]
    info = rt.services.registry_reader.get(name, v1)
    skops_file = next(local_path(info.artifact_uri).glob("*.skops"))
    skops_file.write_bytes(skops_file.read_bytes() + b"\0")
    res = _scaffold(rt, model_id=f"{name}/{v1}")
    assert not res.ok and res.error.code == "conflict" and "changed" in res.error.message
    assert not (rt.services.settings.home_dir / "drafts" / "serving").exists()


def test_pickle_models_and_unsupported_signatures_are_refused():
    from core.design.scaffold import build_scaffold, signature_columns
    from core.errors import InvalidInput

    cols = '[{"type": "double", "name": "a"}, {"type": "string", "name": "b"}]'
    mlmodel = (
        "flavors:\n  sklearn:\n    serialization_format: cloudpickle\n    pickled_model: m.pkl\n"
        f"signature:\n  inputs: '{cols}'\n"
    ).encode()
    args = {"name": "m", "version": "1", "artifact_sha256": "0" * 64, "honesty": {}}
    with pytest.raises(InvalidInput, match="pickle"):
        build_scaffold(**args, files={"MLmodel": mlmodel, "m.pkl": b"x"})
    with pytest.raises(InvalidInput, match="numeric and boolean columns only"):
        signature_columns({"MLmodel": mlmodel}, ref="m v1")
    tensor = b'signature:\n  inputs: \'[{"type": "tensor", "tensor-spec": {}}]\'\n'
    with pytest.raises(InvalidInput, match="no column signature"):
        signature_columns({"MLmodel": tensor}, ref="m v1")
