"""Log an ONNX graph as an MLflow model whose pyfunc takes the same input as the version it
came from (or the columns a registrant declared), without pickle.

The artifact keeps MLflow's ``onnx`` flavor (what ModelOps loads: ``core.artifacts``) and gets
a ``python_function`` flavor whose ``loader_module`` is ``modelops_onnx_pyfunc``, a standalone
file logged as the model's code. So ``mlflow.pyfunc.load_model("models:/NAME@champion")``
keeps answering a DataFrame with labels when the champion moves from a scikit-learn version
to its ONNX export. Call inside an active MLflow run.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

WRAPPER_MODULE = "modelops_onnx_pyfunc"
WRAPPER_FILE = Path(__file__).resolve().parent / "optimizer" / f"{WRAPPER_MODULE}.py"
# Standalone too: the wrapper refuses a graph with external data through it.
CHECKS_FILE = Path(__file__).resolve().parent / "onnx_checks.py"
ONNX_PIP_REQUIREMENTS = ["onnxruntime", "onnx", "numpy", "pandas"]


def _save_model(path: str, mlflow_model: Any, onnx_model: Any, **kwargs: Any) -> None:
    """``mlflow.onnx.save_model``, then the pyfunc flavor pointed at our loader module."""
    import mlflow.onnx
    from mlflow.models.model import MLMODEL_FILE_NAME

    mlflow.onnx.save_model(
        onnx_model,
        path,
        mlflow_model=mlflow_model,
        code_paths=[str(WRAPPER_FILE), str(CHECKS_FILE)],
        **kwargs,
    )
    conf = mlflow_model.flavors["python_function"]
    conf["loader_module"] = WRAPPER_MODULE
    mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))


_FLAVOR = SimpleNamespace(__name__="onnx", save_model=_save_model)


def log_onnx_model(proto: Any, *, signature: Any, name: str = "model") -> Any:
    """Log ``proto`` (an ``onnx.ModelProto``) with ``signature`` in the active run."""
    from mlflow.models import Model

    return Model.log(
        artifact_path=None,
        name=name,
        flavor=_FLAVOR,
        onnx_model=proto,
        signature=signature,
        pip_requirements=ONNX_PIP_REQUIREMENTS,
        onnx_execution_providers=["CPUExecutionProvider"],
        save_as_external_data=False,
    )


def signature_of(files: dict[str, bytes]) -> Any:
    """The ``ModelSignature`` in a model folder's ``MLmodel`` (verified bytes), or None."""
    import yaml
    from mlflow.models import ModelSignature

    raw = files.get("MLmodel")
    sig = (yaml.safe_load(raw) or {}).get("signature") if raw else None
    return ModelSignature.from_dict(sig) if sig and sig.get("inputs") else None
