"""Model artifacts: the manifest recorded at registration, verification against it, and
deserialization from the verified bytes (skops for scikit-learn, ONNX Runtime for ONNX).

The manifest maps every file of the model folder at registration (relative path) to its
SHA-256; the registered ``artifact_sha256`` is the digest over that manifest. Verification
reads exactly the manifest's files once, checks each, and hands the bytes to the loader, so a
file swapped after the check is never the one loaded. Pickle / cloudpickle models are refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from core.errors import Conflict, InvalidInput, NotFound

# Written next to the model's files at registration (never part of its own digest).
MANIFEST_FILE = "modelops-manifest.json"
# Files MLflow itself writes into a model folder after registration; never read, never digested.
# (``mlflow.pyfunc.load_model("models:/NAME/1")`` writes ``registered_model_meta``.)
MLFLOW_ADDED_FILES = frozenset({"registered_model_meta"})
# Types skops may build beyond its own safe defaults: the quickstart pipeline
# (StandardScaler + LogisticRegression) needs none; RandomForest / tree models need the tree
# structure. XGBoost's and LightGBM's scikit-learn API classifiers/regressors (registered with
# ``agent models register``) need their estimator class and their booster, which skops rebuilds
# through the booster's own ``__setstate__`` from the model's native bytes (no pickle);
# LightGBM keeps its parameters in an OrderedDict; core.tree_checks checks both boosters'
# trees (child and feature indices) after load. Found with ``skops.io.get_untrusted_types``
# on fitted models (xgboost 3.2, lightgbm 4.7); anything else is refused at registration and
# at load.
SKOPS_TRUSTED_TYPES = (
    "sklearn.tree._tree.Tree",
    # HistGradientBoosting's trees (the tracker's gradient_boosting): a structured node array
    # plus category bitsets, rebuilt by skops from arrays; core.tree_checks checks both, and
    # the estimator's binning mapper (its category lists write into the predict bitsets).
    # scikit-learn 1.9 needs no other type for it (its _BinMapper is a plain sklearn object).
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "collections.OrderedDict",
    # A dtype descriptor (no code): one-hot / imputer steps over string columns store one.
    "numpy.dtype",
)
LOG_HINT = (
    "Log scikit-learn models with skops, e.g. mlflow.sklearn.log_model(model, name='model', "
    "serialization_format='skops', skops_trusted_types=['sklearn.tree._tree.Tree']) "
    "(ModelRegistry.log_sklearn_run does this), or log an ONNX graph with "
    "mlflow.onnx.log_model; then register the new run."
)


def local_path(uri: str) -> Path:
    """The local directory of a ``file:`` artifact URI (remote stores are downloaded instead)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))


def _model_files(root: Path, *, ref: str) -> list[str]:
    """Relative paths of every entry under ``root`` except MLflow's own additions and our
    manifest. A symlink is refused: a model folder holds plain files only."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in [*dirnames, *filenames]:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise Conflict(
                    f"artifact of {ref} contains a symlink ({rel}); refusing it",
                    hint="A model folder holds plain files; re-log the model from its training run.",
                )
            if name in filenames and rel not in MLFLOW_ADDED_FILES and rel != MANIFEST_FILE:
                out.append(rel)
    return sorted(out)


def read_model_files(root: Path, *, ref: str = "model") -> dict[str, bytes]:
    """Every file of a model folder (relative path -> bytes), MLflow's additions and our
    manifest excepted: what registration digests and checks, read once."""
    if not root.is_dir():
        raise NotFound(f"model artifact not found at {root}")
    return {rel: (root / rel).read_bytes() for rel in _model_files(root, ref=ref)}


def manifest_of(files: Mapping[str, bytes]) -> dict[str, str]:
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}


def build_manifest(root: Path, *, ref: str = "model") -> dict[str, str]:
    """relative path -> SHA-256 for every file of the model folder (what registration records)."""
    return manifest_of(read_model_files(root, ref=ref))


def manifest_digest(manifest: Mapping[str, str]) -> str:
    """SHA-256 over a manifest: each relative path and its file's SHA-256, in sorted order."""
    h = hashlib.sha256()
    for rel in sorted(manifest):
        h.update(rel.encode() + b"\0")
        h.update(bytes.fromhex(manifest[rel]))
    return h.hexdigest()


def artifact_digest(path: str | Path) -> str:
    """The digest registration records for a model folder (or the SHA-256 of a single file)."""
    root = Path(path)
    if root.is_file():
        return hashlib.sha256(root.read_bytes()).hexdigest()
    return manifest_digest(build_manifest(root))


def manifest_json(manifest: Mapping[str, str]) -> bytes:
    return json.dumps({"format": 1, "files": dict(sorted(manifest.items()))}, indent=1).encode()


def _load_manifest(root: Path, ref: str) -> dict[str, str] | None:
    path = root / MANIFEST_FILE
    if path.is_symlink():
        raise Conflict(f"artifact of {ref}: {MANIFEST_FILE} is a symlink; refusing it")
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_bytes())["files"]
        ok = isinstance(files, dict) and all(
            isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in files.items()
        )
        bytes.fromhex("".join(files.values()))
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise Conflict(f"artifact of {ref}: {MANIFEST_FILE} is not a valid manifest")
    for rel in files:
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts or rel in MLFLOW_ADDED_FILES or rel == MANIFEST_FILE:
            raise Conflict(f"artifact of {ref}: manifest entry {rel!r} is not a model file")
    return files


def _changed(ref: str, actual: str, expected: str) -> Conflict:
    return Conflict(
        f"artifact of {ref} changed since registration "
        f"(sha256 {actual[:12]}… != {expected[:12]}…); refusing to load it",
        hint="The artifact store was modified; re-register the model from its training run.",
    )


def read_verified(artifact_uri: str, expected_sha256: str | None, *, ref: str) -> dict[str, bytes]:
    """The model's files (relative path -> bytes), each read once and checked against the
    manifest whose digest is the registered ``expected_sha256``.

    Refused: a missing or changed manifest file, and any file in the folder that is neither in
    the manifest nor one MLflow adds itself (``MLFLOW_ADDED_FILES``). A folder registered
    before manifests existed is checked as a whole (every file but MLflow's own).
    """
    if not expected_sha256:
        raise Conflict(
            f"{ref} has no recorded artifact SHA-256; refusing to load it",
            hint="Register models through ModelRegistry so their digest is recorded.",
        )
    root = local_path(artifact_uri)
    if root.is_file():
        data = root.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise _changed(ref, actual, expected_sha256)
        return {root.name: data}
    if not root.is_dir():
        raise Conflict(f"artifact of {ref} is missing at {root}")
    present = _model_files(root, ref=ref)
    manifest = _load_manifest(root, ref)
    if manifest is None:
        files = {rel: (root / rel).read_bytes() for rel in present}
        actual = manifest_digest(manifest_of(files))
        if actual != expected_sha256:
            raise _changed(ref, actual, expected_sha256)
        return files
    actual = manifest_digest(manifest)
    if actual != expected_sha256:
        raise _changed(ref, actual, expected_sha256)
    extra = sorted(set(present) - set(manifest))
    if extra:
        raise Conflict(
            f"artifact of {ref} holds files that were not there at registration "
            f"({', '.join(extra[:5])}); refusing to load it",
            hint="Something wrote into the artifact store; remove those files or re-register "
            "the model from its training run.",
        )
    missing = sorted(set(manifest) - set(present))
    if missing:
        raise Conflict(
            f"artifact of {ref} lacks files it had at registration ({', '.join(missing[:5])})",
            hint="The artifact store was modified; re-register the model from its training run.",
        )
    files = {}
    for rel in sorted(manifest):
        data = (root / rel).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != manifest[rel]:
            raise _changed(f"{ref} ({rel})", digest, manifest[rel])
        files[rel] = data
    return files


# Flavors and deserialization -----------------------------------------------------------
def artifact_flavors(files: Mapping[str, bytes]) -> dict[str, Any]:
    mlmodel = files.get("MLmodel")
    if mlmodel is None:
        return {}
    return (yaml.safe_load(mlmodel) or {}).get("flavors") or {}


def input_schema(files: Mapping[str, bytes]) -> tuple[tuple[str, str], ...] | None:
    """``(name, type)`` of every input column, in order, of the signature in a model folder's
    ``MLmodel`` (types as MLflow writes them: ``string``, ``double``, ``long``, ``boolean``...);
    None for a tensor signature or none at all (the model then takes row vectors only)."""
    mlmodel = files.get("MLmodel")
    sig = ((yaml.safe_load(mlmodel) or {}).get("signature") or {}) if mlmodel else {}
    try:
        specs = json.loads(sig.get("inputs") or "[]")
    except (TypeError, ValueError):
        return None
    if not specs or not all(
        isinstance(s, dict) and isinstance(s.get("name"), str) and s.get("type") != "tensor"
        for s in specs
    ):
        return None
    return tuple((s["name"], str(s.get("type") or "")) for s in specs)


def input_columns(files: Mapping[str, bytes]) -> tuple[str, ...] | None:
    """The input column names, in order, of the signature (``input_schema``)."""
    schema = input_schema(files)
    return tuple(name for name, _ in schema) if schema else None


def artifact_runtime(files: Mapping[str, bytes]) -> str | None:
    """``onnxruntime`` for an ONNX model, ``sklearn`` for a scikit-learn one, else None."""
    flavors = artifact_flavors(files)
    if "onnx" in flavors or (not flavors and any(n.endswith(".onnx") for n in files)):
        return "onnxruntime"
    return "sklearn" if "sklearn" in flavors else None


def check_safe_flavors(flavors: Mapping[str, Any], *, ref: str) -> str:
    """The runtime (``onnxruntime`` | ``sklearn``) of a model whose format we load without
    pickle; InvalidInput for pickle / cloudpickle models and pyfunc-only models."""
    if "onnx" in flavors:
        return "onnxruntime"
    sk = flavors.get("sklearn")
    if isinstance(sk, Mapping):
        fmt = sk.get("serialization_format")
        if fmt != "skops":
            raise InvalidInput(
                f"{ref} is a scikit-learn model serialized with {fmt!r}; only skops or ONNX "
                "models are registered and loaded (pickle runs code on load)",
                hint=LOG_HINT,
            )
        return "sklearn"
    kinds = ", ".join(sorted(flavors)) or "none"
    raise InvalidInput(
        f"{ref} has no scikit-learn (skops) or ONNX flavor (flavors: {kinds}); "
        "a python_function model is loaded with cloudpickle, which runs code on load",
        hint=LOG_HINT,
    )


def check_skops_types(data: bytes, *, ref: str) -> None:
    """Refuse a skops file that needs types beyond ``SKOPS_TRUSTED_TYPES``."""
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises assorted errors for a file that is not skops
        raise InvalidInput(f"{ref}: the model file is not a readable skops file ({exc})") from exc
    extra = sorted(set(untrusted) - set(SKOPS_TRUSTED_TYPES))
    if extra:
        raise InvalidInput(
            f"{ref}: the skops file needs types outside the trusted list: {', '.join(extra[:10])}",
            hint="Only scikit-learn's own types and core.artifacts.SKOPS_TRUSTED_TYPES are "
            "loaded; export the model to ONNX or use a supported estimator.",
        )


def skops_bytes(files: Mapping[str, bytes], *, ref: str) -> bytes:
    sk = artifact_flavors(files).get("sklearn") or {}
    check_safe_flavors({"sklearn": sk}, ref=ref)
    name = sk.get("pickled_model") or "model.skops"
    if name not in files:
        raise Conflict(f"{ref}: the scikit-learn flavor's file {name!r} is not in the artifact")
    return files[name]


def onnx_bytes(files: Mapping[str, bytes], *, ref: str) -> bytes:
    """The artifact's ONNX graph, refused (InvalidInput) when any tensor is external data:
    registration and every load come through here, before ONNX Runtime sees the bytes."""
    from core.onnx_checks import check_self_contained

    name = (artifact_flavors(files).get("onnx") or {}).get("data") or next(
        (n for n in sorted(files) if n.endswith(".onnx")), None
    )
    if name is None or name not in files:
        raise Conflict(f"{ref}: the ONNX graph is not in the artifact")
    check_self_contained(files[name], ref=ref)
    return files[name]


def skops_estimator(data: bytes, *, ref: str) -> Any:
    """The one skops loader: the object in a skops file, built with ``SKOPS_TRUSTED_TYPES``
    only, then every decision tree inside it checked (``core.tree_checks``): skops rebuilds
    trees from the file's arrays unchecked, and a bad index reads out of bounds at predict."""
    import skops.io

    from core.tree_checks import check_trees

    try:
        model = skops.io.loads(data, trusted=list(SKOPS_TRUSTED_TYPES))
    except skops.io.exceptions.UntrustedTypesFoundException as exc:
        raise InvalidInput(
            f"{ref}: the skops file needs types outside the trusted list ({exc})",
            hint="Only scikit-learn's own types and core.artifacts.SKOPS_TRUSTED_TYPES are loaded.",
        ) from exc
    except Exception as exc:  # skops raises assorted errors for a damaged file
        raise InvalidInput(f"{ref}: skops could not read the model ({exc})") from exc
    check_trees(model, ref=ref)
    return model


def sklearn_from_bytes(files: Mapping[str, bytes], *, ref: str) -> Any:
    """The estimator, built by skops from the verified bytes (``skops_estimator``)."""
    return skops_estimator(skops_bytes(files, ref=ref), ref=ref)
