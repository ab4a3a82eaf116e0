"""A serving scaffold for one registered model version: a self-contained FastAPI app.

``build_scaffold`` turns the version's verified artifact files (``core.artifacts.read_verified``)
into the files of a folder a person reviews and builds: ``app.py`` (request/response models
from the MLflow signature; skops or ONNX only, every model file checked against its SHA-256
before loading), ``serving.json`` (everything version-specific: columns, honesty fields,
digests; the app reads it, so no registry value is ever pasted into code), ``requirements.txt``
(pinned to what the model was logged with, else to the installed versions, said in
``warnings``) and a ``Dockerfile``. The model files are copied under ``model/``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata

import yaml

from core import tree_checks
from core.artifacts import (
    SKOPS_TRUSTED_TYPES,
    artifact_flavors,
    check_safe_flavors,
    check_skops_types,
    manifest_digest,
    manifest_of,
    onnx_bytes,
    skops_bytes,
)
from core.errors import InvalidInput
from core.honesty import HONESTY_FIELDS
from core.onnx_checks import FIX_HINT, external_tensors

# MLflow column types -> the JSON types the generated request model accepts.
COLUMN_TYPES = {
    "double": "float",
    "float": "float",
    "long": "int",
    "integer": "int",
    "boolean": "bool",
}
# (string columns need a DataFrame-shaped input the generated app does not build: refused)
SERVING_PACKAGES = ("fastapi", "uvicorn", "pydantic", "prometheus-client", "numpy")
RUNTIME_PACKAGES = {
    "sklearn": ("scikit-learn", "skops", "scipy"),
    "onnxruntime": ("onnxruntime", "onnx"),  # onnx parses the graph for the external-data check
}
# The generated app refuses external-data graphs and unsound trees with the project's own
# checks (core.onnx_checks, core.tree_checks), pasted in verbatim: app.py stays one file.
_CHECK_MARK = "# <model checks>\n"
_CHECK_SOURCE = "\n\n".join(
    [
        f"FIX_HINT = {FIX_HINT!r}\n",
        inspect.getsource(external_tensors),
        # The whole tree-check module (numpy only; its helpers and constants grow with the
        # model families it knows), less the future import that must open a file.
        "".join(
            line
            for line in inspect.getsource(tree_checks).splitlines(keepends=True)
            if not line.startswith("from __future__")
        ),
    ]
)
_REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)\s*$")


@dataclass
class Scaffold:
    files: dict[str, bytes]  # relative path -> content
    runtime: str
    columns: list[dict]
    pins: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def _norm(pkg: str) -> str:
    return re.sub(r"[-_.]+", "-", pkg).lower()


def signature_columns(files: Mapping[str, bytes], *, ref: str) -> list[dict]:
    """[{"name", "type"}] from the MLmodel's column signature; InvalidInput when it has none
    (a tensor signature gives no names or types to build the request model from)."""
    mlmodel = yaml.safe_load(files.get("MLmodel") or b"") or {}
    try:
        specs = json.loads((mlmodel.get("signature") or {}).get("inputs") or "[]")
    except (TypeError, ValueError):
        specs = []
    cols = []
    for s in specs if isinstance(specs, list) else []:
        if not isinstance(s, dict) or not isinstance(s.get("name"), str):
            cols = []
            break
        kind = COLUMN_TYPES.get(str(s.get("type")))
        if kind is None:
            raise InvalidInput(
                f"{ref}: signature column {s['name']!r} has type {s.get('type')!r}; the "
                "serving scaffold handles numeric and boolean columns only"
            )
        cols.append({"name": s["name"], "type": kind})
    if not cols:
        raise InvalidInput(
            f"{ref} has no column signature (names and types) to build the request model from",
            hint="Log the model with an input example or signature (mlflow infer_signature).",
        )
    return cols


def logged_pins(files: Mapping[str, bytes]) -> tuple[dict[str, str], set[str]]:
    """(package -> version pinned, packages listed without a pin) in the model's
    requirements.txt and conda.yaml pip section (package names normalized)."""
    lines: list[str] = []
    if "requirements.txt" in files:
        lines += files["requirements.txt"].decode("utf-8", "replace").splitlines()
    if "conda.yaml" in files:
        conda = yaml.safe_load(files["conda.yaml"]) or {}
        for dep in conda.get("dependencies") or []:
            if isinstance(dep, dict):
                lines += [str(d) for d in dep.get("pip") or []]
    pins: dict[str, str] = {}
    unpinned: set[str] = set()
    for line in lines:
        text = line.split("#", 1)[0].strip()
        m = _REQ.match(text)
        if m:
            pins.setdefault(_norm(m.group(1)), m.group(2))
        elif re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", text):
            unpinned.add(_norm(text))
    return pins, unpinned - set(pins)


def python_version(files: Mapping[str, bytes]) -> str | None:
    flavors = artifact_flavors(files)
    raw = str((flavors.get("python_function") or {}).get("python_version") or "")
    m = re.match(r"^(3\.\d{1,2})(\.\d+)?$", raw)
    return m.group(1) if m else None


def _pins(files: Mapping[str, bytes], runtime: str, warnings: list[str]) -> dict[str, str]:
    logged, unpinned = logged_pins(files)
    out: dict[str, str] = {}
    listed: list[str] = []
    absent: list[str] = []
    for pkg in (*SERVING_PACKAGES, *RUNTIME_PACKAGES[runtime]):
        version = logged.get(_norm(pkg))
        if version is None:
            try:
                version = metadata.version(pkg)
            except metadata.PackageNotFoundError as exc:
                raise InvalidInput(
                    f"{pkg} is neither pinned in the model's requirements nor installed here; "
                    "cannot pin it",
                    hint=f"Install {pkg} or log the model with it pinned in its requirements.",
                ) from exc
            (listed if _norm(pkg) in unpinned else absent).append(f"{pkg}=={version}")
        out[pkg] = version
    if listed:
        warnings.append(
            "the model's logged requirements name these without a version; pinned to the "
            "versions installed here (check they match training): " + ", ".join(listed)
        )
    if absent:
        warnings.append(
            "not in the model's logged requirements (serving-only), pinned to the versions "
            "installed here: " + ", ".join(absent)
        )
    return out


def build_scaffold(
    *,
    name: str,
    version: str,
    artifact_sha256: str,
    honesty: Mapping[str, str],
    files: Mapping[str, bytes],
) -> Scaffold:
    """The scaffold's files for ``name`` v``version`` from its verified artifact ``files``."""
    ref = f"{name} v{version}"
    runtime = check_safe_flavors(artifact_flavors(files), ref=ref)
    if runtime == "sklearn":
        model_file = next(k for k, v in files.items() if v is skops_bytes(files, ref=ref))
        check_skops_types(files[model_file], ref=ref)
    else:
        model_file = next(k for k, v in files.items() if v is onnx_bytes(files, ref=ref))
    columns = signature_columns(files, ref=ref)
    if manifest_digest(manifest_of(files)) == artifact_sha256:
        digest_kind = "manifest"
    elif len(files) == 1 and hashlib.sha256(next(iter(files.values()))).hexdigest() == (
        artifact_sha256
    ):
        digest_kind = "file"
    else:
        raise InvalidInput(f"{ref}: the artifact files do not match its registered SHA-256")
    missing = [f for f in HONESTY_FIELDS if not str(honesty.get(f, "")).strip()]
    warnings: list[str] = []
    if missing:
        warnings.append(f"{ref} lacks honesty fields {', '.join(missing)}; served as 'unknown'")
    pins = _pins(files, runtime, warnings)
    py = python_version(files)
    if py is None:
        py = "3.11"
        warnings.append("the model records no Python version; the Dockerfile uses python 3.11")
    config = {
        "model_name": name,
        "model_version": str(version),
        "artifact_sha256": artifact_sha256,
        "artifact_digest": digest_kind,
        "runtime": runtime,
        "model_file": f"model/{model_file}",
        "files": {
            f"model/{rel}": hashlib.sha256(data).hexdigest() for rel, data in sorted(files.items())
        },
        "columns": columns,
        "honesty": {f: str(honesty.get(f) or "unknown") for f in HONESTY_FIELDS},
        "skops_trusted_types": list(SKOPS_TRUSTED_TYPES) if runtime == "sklearn" else [],
    }
    requirements = "".join(f"{pkg}=={v}\n" for pkg, v in pins.items())
    out = {
        "app.py": APP_TEMPLATE.replace(_CHECK_MARK, _CHECK_SOURCE).encode(),
        "serving.json": (json.dumps(config, indent=2) + "\n").encode(),
        "requirements.txt": (
            f"# Pinned for {name} v{version}; see serving.json for the model's digests.\n"
            + requirements
        ).encode(),
        "Dockerfile": DOCKERFILE.format(python=py).encode(),
        **{f"model/{rel}": data for rel, data in files.items()},
    }
    return Scaffold(out, runtime, columns, pins, warnings)


DOCKERFILE = """\
FROM python:{python}-slim
WORKDIR /srv
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY app.py serving.json ./
COPY model/ model/
RUN useradd --system --no-create-home serving
USER serving
EXPOSE 8000
# Listens on all interfaces inside the container; publish it only where you mean to.
CMD ["uvicorn", "app:app", "--host", "0.0.0.0", "--port", "8000"]
"""

APP_TEMPLATE = '''\
"""Serving API for one registered model version (generated; review before use).

Everything version-specific is in serving.json. The model is loaded only as skops or ONNX,
after every file under model/ is checked against the SHA-256 recorded at scaffold time.
Run: uvicorn app:app --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    create_model,
    model_validator,
)

HERE = Path(__file__).resolve().parent
CONFIG = json.loads((HERE / "serving.json").read_text(encoding="utf-8"))
COLUMNS = CONFIG["columns"]
N = len(COLUMNS)
MAX_ROWS = 10_000
Number = Annotated[float, Field(allow_inf_nan=False, strict=False)]
TYPES: dict[str, Any] = {"float": Number, "int": StrictInt, "bool": StrictBool}


def _verified_files() -> dict[str, bytes]:
    out = {}
    for rel, expected in CONFIG["files"].items():
        path = HERE / rel
        if path.is_symlink() or not path.resolve().is_relative_to(HERE):
            raise RuntimeError(f"{rel} is a symlink or outside the app folder; refusing it")
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise RuntimeError(f"{rel} changed (sha256 {actual[:12]} != {expected[:12]}); refusing")
        out[rel] = data
    # ... and together they are the registered artifact (core.artifacts.manifest_digest).
    if CONFIG["artifact_digest"] == "file" and len(out) == 1:
        digest = hashlib.sha256(next(iter(out.values()))).hexdigest()
    else:
        h = hashlib.sha256()
        for rel in sorted(r.removeprefix("model/") for r in out):
            h.update(rel.encode() + b"\\0")
            h.update(bytes.fromhex(CONFIG["files"]["model/" + rel]))
        digest = h.hexdigest()
    if digest != CONFIG["artifact_sha256"]:
        raise RuntimeError("model/ is not the registered artifact (digest mismatch); refusing")
    return out


# <model checks>


def _load(files: dict[str, bytes]) -> Any:
    data = files[CONFIG["model_file"]]
    if CONFIG["runtime"] == "sklearn":
        import skops.io

        model = skops.io.loads(data, trusted=CONFIG["skops_trusted_types"])
        problem = tree_problem(model)  # skops rebuilds trees from the file's arrays unchecked
        if problem:
            raise RuntimeError(f"the model's {problem}: {TREE_FIX_HINT}")
        return model
    if CONFIG["runtime"] == "onnxruntime":
        import onnx
        import onnxruntime

        # ONNX Runtime would read an external-data tensor from a file in the working
        # directory: not the bytes checked above. Refused before it sees the graph.
        found = external_tensors(onnx.load_model_from_string(data))
        if found:
            raise RuntimeError(f"external-data tensors {'; '.join(found[:3])}: {FIX_HINT}")
        return onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    raise RuntimeError(f"unsupported runtime {CONFIG['runtime']!r} (skops or ONNX only)")


MODEL = _load(_verified_files())

# One field per signature column: field f0.. aliased to the column's real name.
Record = create_model(
    "Record",
    __config__=ConfigDict(extra="forbid"),
    **{f"f{i}": (TYPES[c["type"]], Field(alias=c["name"])) for i, c in enumerate(COLUMNS)},
)
Row = Annotated[list[Number], Field(min_length=N, max_length=N)]


class PredictRequest(BaseModel):
    """Named columns ({"inputs": {...}} or {"inputs": [{...}, ...]}) or row vectors in the
    signature's column order ({"features": [...]} or {"features": [[...], ...]})."""

    model_config = ConfigDict(extra="forbid")
    inputs: Record | Annotated[list[Record], Field(min_length=1, max_length=MAX_ROWS)] | None = None
    features: Row | Annotated[list[Row], Field(min_length=1, max_length=MAX_ROWS)] | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> PredictRequest:
        if (self.inputs is None) == (self.features is None):
            raise ValueError('send exactly one of "inputs" (named columns) or "features"')
        return self

    def rows(self) -> tuple[list[list[Any]], bool]:
        if self.features is not None:
            single = not isinstance(self.features[0], list)
            return ([self.features] if single else self.features), single
        single = not isinstance(self.inputs, list)
        records = [self.inputs] if single else self.inputs
        return [[getattr(r, f"f{i}") for i in range(N)] for r in records], single


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    prediction: Any
    probabilities: list[float] | list[list[float]] | None = None
    implementation_status: Literal["IMPLEMENTED", "HEURISTIC", "PLANNED", "unknown"]
    accuracy_claim: str
    validation_method: str
    honesty_warning: str


REGISTRY = CollectorRegistry()
PREDICTIONS = Counter("predictions", "Rows predicted", ["model_version"], registry=REGISTRY)
REQUESTS = Counter("requests", "Predict requests", ["status"], registry=REGISTRY)
LATENCY = Histogram("predict_latency_seconds", "Predict latency", registry=REGISTRY)

app = FastAPI(title=f"{CONFIG['model_name']} v{CONFIG['model_version']}")


@app.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming where and what, without echoing the input (it may hold NaN or PII)."""
    REQUESTS.labels("422").inc()
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": errors[:20], "columns": [c["name"] for c in COLUMNS]}, 422)


def _predict(x: np.ndarray) -> tuple[list, list | None]:
    if CONFIG["runtime"] == "sklearn":
        labels = MODEL.predict(x).tolist()
        proba = MODEL.predict_proba(x).tolist() if hasattr(MODEL, "predict_proba") else None
        return labels, proba
    name = MODEL.get_inputs()[0].name
    outs = MODEL.run(None, {name: x.astype(np.float32)})
    labels = np.asarray(outs[0]).reshape(-1).tolist()
    proba = None
    if len(outs) > 1:
        p = outs[1]
        if isinstance(p, list) and p and isinstance(p[0], dict):  # skl2onnx ZipMap
            p = [[float(d[k]) for k in sorted(d)] for d in p]
        proba = np.asarray(p, dtype=float).tolist()
    return labels, proba


@app.post("/predict", response_model=PredictResponse)
def predict(request: PredictRequest) -> PredictResponse:
    start = time.perf_counter()
    rows, single = request.rows()
    labels, proba = _predict(np.array(rows, dtype=np.float64))
    LATENCY.observe(time.perf_counter() - start)
    PREDICTIONS.labels(CONFIG["model_version"]).inc(len(rows))
    REQUESTS.labels("200").inc()
    return PredictResponse(
        model_name=CONFIG["model_name"],
        model_version=CONFIG["model_version"],
        prediction=labels[0] if single else labels,
        probabilities=(proba[0] if single else proba) if proba is not None else None,
        **CONFIG["honesty"],
    )


@app.get("/health")
def health() -> dict:
    return {
        "status": "ok",
        "model_name": CONFIG["model_name"],
        "model_version": CONFIG["model_version"],
        "artifact_sha256": CONFIG["artifact_sha256"],
        "runtime": CONFIG["runtime"],
        **CONFIG["honesty"],
    }


@app.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
'''
