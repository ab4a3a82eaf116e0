"""ONNX graphs with external-data tensors are refused at registration and at every load
(before ONNX Runtime, which would read the weights from a file in its working directory),
and the serving scaffold's generated app refuses them too."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from core.errors import InvalidInput

W = np.array([[1.0], [2.0], [3.0], [4.0]], dtype=np.float32)
ROW = [1.0, 1.0, 1.0, 1.0]


def graph(*, constant: bool = False):  # noqa: ANN201
    """X[N,4] @ W + B, W an initializer (or a Constant node's ``value`` attribute)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(W, name="W")
    b = numpy_helper.from_array(np.array([0.5], dtype=np.float32), name="B")
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["XW"]),
        helper.make_node("Add", ["XW", "B"], ["Y"]),
    ]
    inits = [w, b]
    if constant:  # no initializer at all: both weights are attribute tensors
        nodes[:0] = [
            helper.make_node("Constant", [], ["W"], value=w, name="weights"),
            helper.make_node("Constant", [], ["B"], value=b, name="bias"),
        ]
        inits = []
    g = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
        initializer=inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save_external(model, folder: Path, *, attributes: bool = False) -> Path:  # noqa: ANN001
    """``model.onnx`` with every tensor in ``w.bin`` next to it (attribute tensors too if
    ``attributes``), as ``onnx.save(..., save_as_external_data=True)`` writes it."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    if attributes:
        convert_model_to_external_data(
            model, location="w.bin", size_threshold=0, convert_attribute=True
        )
        onnx.save(model, path)
    else:
        onnx.save(
            model,
            path,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="w.bin",
            size_threshold=0,
        )
    assert (folder / "w.bin").is_file()
    return path


def mlflow_folder(folder: Path, onnx_data: bytes, extra: dict[str, bytes] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    mlmodel = {
        "flavors": {"onnx": {"data": "model.onnx", "onnx_version": "1.23.2"}},
        "signature": {
            "inputs": json.dumps([{"name": f"f{i}", "type": "float"} for i in range(4)]),
            "outputs": None,
        },
    }
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    (folder / "model.onnx").write_bytes(onnx_data)
    for rel, data in (extra or {}).items():
        (folder / rel).write_bytes(data)
    return folder


def served(folder: Path):  # noqa: ANN201
    from core.artifacts import artifact_digest
    from core.deployment import ServedVersion

    return ServedVersion(
        version="1",
        weight=100,
        artifact_uri=folder.as_uri(),
        artifact_sha256=artifact_digest(folder),
    )


# The check itself -------------------------------------------------------------------------
def test_external_tensors_finds_every_kind_of_tensor_in_graphs_subgraphs_and_functions():
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import set_external_data

    from core.onnx_checks import external_tensors

    def ext(name: str):  # noqa: ANN202
        t = numpy_helper.from_array(W, name=name)
        set_external_data(t, location="w.bin")
        t.data_location = TensorProto.EXTERNAL
        t.ClearField("raw_data")
        return t

    assert external_tensors(graph()) == [] and external_tensors(graph(constant=True)) == []
    cases = {}
    m = graph()
    m.graph.initializer.append(ext("init"))
    cases["init"] = m
    m = graph()
    sp = m.graph.sparse_initializer.add()
    sp.values.CopyFrom(ext("sparse"))
    cases["sparse"] = m
    m = graph()
    m.graph.node.append(helper.make_node("Constant", [], ["c"], value=ext("const")))
    cases["const"] = m
    m = graph()
    attr = helper.make_attribute("many", [ext("listed"), numpy_helper.from_array(W, "fine")])
    node = helper.make_node("Identity", ["X"], ["x2"])
    node.attribute.append(attr)
    m.graph.node.append(node)
    cases["listed"] = m

    def body(name: str):  # noqa: ANN202
        return helper.make_graph(
            [helper.make_node("Constant", [], ["o"], value=ext(name))],
            "body",
            [],
            [helper.make_tensor_value_info("o", TensorProto.FLOAT, [4, 1])],
        )

    m = graph()
    inner_if = helper.make_node(
        "If", ["cond"], ["o"], then_branch=body("deep"), else_branch=body("else")
    )
    loop_body = helper.make_graph([inner_if], "loop", [], [])
    m.graph.node.append(helper.make_node("Loop", ["n", "c"], ["z"], body=loop_body))
    cases["deep"] = m
    m = graph()
    fn = helper.make_function(
        "custom",
        "f",
        [],
        ["o"],
        [helper.make_node("Constant", [], ["o"], value=ext("infn"))],
        [helper.make_opsetid("", 17)],
    )
    m.functions.append(fn)
    cases["infn"] = m
    for name, model in cases.items():
        found = external_tensors(model)
        assert any(repr(name) in f for f in found), (name, found)
    # the If's two branches, inside the Loop body, are both found
    assert len(external_tensors(cases["deep"])) == 2


def test_check_refuses_with_the_tensor_and_the_fix_and_garbage_is_invalid_input(tmp_path):
    from core.onnx_checks import check_self_contained

    path = save_external(graph(), tmp_path / "m")
    with pytest.raises(InvalidInput) as err:
        check_self_contained(path.read_bytes(), ref="m v1")
    assert "'W'" in err.value.message and "external data" in err.value.message
    assert "save_as_external_data=False" in err.value.hint
    with pytest.raises(InvalidInput, match="not a readable ONNX model"):
        check_self_contained(b"\xff\x00not onnx", ref="m v1")
    check_self_contained(graph().SerializeToString(), ref="m v1")  # a normal graph passes


# Loads ----------------------------------------------------------------------------------
def test_onnx_predictor_refuses_external_data_from_bytes_and_from_a_path(tmp_path, monkeypatch):
    from core.optimizer.predictor import OnnxPredictor

    path = save_external(graph(), tmp_path / "m")
    # ONNX Runtime would find w.bin: next to the path, and in the cwd for bytes.
    monkeypatch.chdir(path.parent)
    for source in (path.read_bytes(), path, str(path)):
        with pytest.raises(InvalidInput, match="external data"):
            OnnxPredictor(source)
    labels, _ = OnnxPredictor(graph().SerializeToString()).predict(np.array([ROW]))
    assert labels.tolist() == pytest.approx([10.5])


def test_a_constant_attribute_tensor_alone_in_external_data_is_refused(tmp_path, monkeypatch):
    from core.optimizer.predictor import OnnxPredictor

    model = graph(constant=True)
    path = save_external(model, tmp_path / "m", attributes=True)
    import onnx

    loaded = onnx.load(path, load_external_data=False)
    assert len(loaded.graph.initializer) == 0
    assert loaded.graph.node[0].attribute[0].t.data_location == onnx.TensorProto.EXTERNAL
    monkeypatch.chdir(path.parent)
    with pytest.raises(InvalidInput, match="attribute 'value'"):
        OnnxPredictor(path.read_bytes())


def test_load_version_refuses_an_external_data_graph_even_with_the_weights_in_the_cwd(
    tmp_path, monkeypatch
):
    from core.serving.loader import load_version

    ext = save_external(graph(), tmp_path / "ext")
    weights = (ext.parent / "w.bin").read_bytes()
    bad = mlflow_folder(tmp_path / "bad", ext.read_bytes(), {"w.bin": weights})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.bin").write_bytes(weights)  # where ONNX Runtime would read it from
    with pytest.raises(InvalidInput, match="external data") as err:
        load_version(served(bad))
    assert "'W'" in err.value.message and "save_as_external_data=False" in err.value.hint
    good = mlflow_folder(tmp_path / "good", graph().SerializeToString())
    loaded = load_version(served(good))
    assert loaded.runtime == "onnxruntime" and loaded.n_features == 4
    assert loaded.predict(np.array([ROW], dtype=np.float32))[0].tolist() == pytest.approx([10.5])


def test_the_mlflow_pyfunc_loader_refuses_external_data(tmp_path, monkeypatch):
    from core.optimizer.modelops_onnx_pyfunc import OnnxLabelModel

    path = save_external(graph(), tmp_path / "m")
    monkeypatch.chdir(path.parent)
    with pytest.raises(ValueError, match="external files"):
        OnnxLabelModel(str(path))
    ok = tmp_path / "ok.onnx"
    ok.write_bytes(graph().SerializeToString())
    assert OnnxLabelModel(str(ok)).predict(np.array([ROW])).tolist() == pytest.approx([10.5])


# Registration ---------------------------------------------------------------------------
def test_bring_your_own_onnx_with_external_data_is_refused_and_a_normal_one_registers(rt, home):
    import pandas as pd

    save_external(graph(), Path.cwd() / "ext")  # ext/model.onnx + ext/w.bin
    (Path.cwd() / "w.bin").write_bytes((Path.cwd() / "ext" / "w.bin").read_bytes())
    pd.DataFrame([ROW], columns=[f"f{i}" for i in range(4)]).to_csv("sample.csv", index=False)
    dana = rt.services.policy.human("dana")

    def register(source: str):  # noqa: ANN202
        args = {"name": "linear", "source": source, "sample": "sample.csv"}
        return rt.dispatcher.call(dana, "register_own_model", args)

    res = register("ext/model.onnx")
    assert not res.ok and res.error.code == "invalid_input", res
    assert "external data" in res.error.message and "'W'" in res.error.message
    assert "save_as_external_data=False" in res.error.hint
    client = rt.services.registry.client
    assert "linear" not in [m.name for m in client.search_registered_models()]
    Path("plain.onnx").write_bytes(graph().SerializeToString())
    res = register("plain.onnx")
    assert res.ok, res.error
    assert res.output["model_format"] == "onnx"


def test_registering_an_mlflow_run_whose_onnx_graph_has_external_data_is_refused(rt, home):
    import mlflow
    import mlflow.onnx

    from core.honesty import HonestyMetadata
    from core.tracking import ensure_experiment

    registry = rt.services.registry
    exp = ensure_experiment(registry.client, "elsewhere", registry.artifact_root)
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.onnx.log_model(
            graph(),
            name="model",
            save_as_external_data=True,
            size_threshold=0,
            all_tensors_to_one_file=True,
            location="w.bin",
        )
    honesty = HonestyMetadata(
        implementation_status="IMPLEMENTED",
        accuracy_claim="a test graph",
        validation_method="none",
        honesty_warning="UNVALIDATED",
    )
    with pytest.raises(InvalidInput, match="external data"):
        registry.register_from_run("linear", run.info.run_id, honesty=honesty)


# The generated serving app ----------------------------------------------------------------
@pytest.mark.slow
def test_the_scaffolds_generated_app_refuses_an_external_data_graph(tmp_path):
    from core.artifacts import manifest_digest, read_model_files
    from core.design.scaffold import build_scaffold

    files = read_model_files(mlflow_folder(tmp_path / "src", graph().SerializeToString()))
    honesty = {
        "implementation_status": "IMPLEMENTED",
        "accuracy_claim": "x",
        "validation_method": "x",
        "honesty_warning": "UNVALIDATED",
    }
    scaffold = build_scaffold(
        name="linear",
        version="1",
        artifact_sha256=manifest_digest(
            {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
        ),
        honesty=honesty,
        files=files,
    )

    def write(folder: Path, out: dict[str, bytes]) -> Path:
        for rel, data in out.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
        return folder

    def import_app(folder: Path) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # self-contained
        return subprocess.run(
            [sys.executable, "-c", "import app"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
        )

    good = write(tmp_path / "good", scaffold.files)
    assert import_app(good).returncode == 0, import_app(good).stderr[-2000:]
    # The same app over an external-data graph whose digests all match (a rebuilt scaffold).
    ext = save_external(graph(), tmp_path / "ext")
    model = {"model/MLmodel": files["MLmodel"], "model/model.onnx": ext.read_bytes()}
    model["model/w.bin"] = (ext.parent / "w.bin").read_bytes()
    config = json.loads(scaffold.files["serving.json"])
    config["files"] = {rel: hashlib.sha256(data).hexdigest() for rel, data in model.items()}
    config["artifact_sha256"] = manifest_digest(
        {rel.removeprefix("model/"): d for rel, d in config["files"].items()}
    )
    bad_files = {k: v for k, v in scaffold.files.items() if not k.startswith("model/")}
    bad = write(tmp_path / "bad", {**bad_files, **model})
    (bad / "serving.json").write_text(json.dumps(config))
    (bad / "w.bin").write_bytes(model["model/w.bin"])  # in the app's cwd too
    res = import_app(bad)
    assert res.returncode != 0 and "external-data tensors" in res.stderr, res.stderr[-2000:]
    assert "save_as_external_data=False" in res.stderr
