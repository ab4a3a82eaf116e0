"""Render a container build context and Kubernetes manifests for a deployment's routes.

Output: a Dockerfile (the gateway with every routed version baked in, each re-verified by
SHA-256 when copied and again when the gateway loads it), ``routes.json`` (the whole table,
served by the plain Deployment, whose gateway does the weighting itself), one
``routes-vN.json`` per version (what a KServe revision serves), a KServe
``InferenceService`` (canary split by ``canaryTrafficPercent``) and a Deployment + Service.
Nothing is applied: that needs a cluster, which this machine does not have.
"""

from __future__ import annotations

import importlib.metadata
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.deployment import Revision
from core.names import validate_name
from core.owned_files import Plan, apply, plan_writes
from core.serving.loader import artifact_runtime, read_verified

PORT = 8080
APP_DIR = "/srv/modelops"
_CORE = Path(__file__).resolve().parents[1]
NOT_APPLIED = (
    "Rendered only: applying needs a Kubernetes cluster (and KServe for the InferenceService), "
    "which is not available here. Build the image from this directory, push it, then "
    "`kubectl apply -f k8s/`."
)
_BASE_REQUIREMENTS = (
    "numpy",
    "onnxruntime",
    "orjson",
    "uvicorn",
    "httptools",
    "uvloop",
    "prometheus-client",
    "sqlalchemy",
    "pydantic",
    "pydantic-settings",
    "pyyaml",
    "httpx",
    "psycopg[binary]",
)
# The gateway builds scikit-learn models with skops from the verified bytes: no MLflow needed.
_SKLEARN_REQUIREMENTS = ("scikit-learn", "skops", "pandas")
# Written last into a bundle: the files it lists, each with the digest we wrote, are ours to
# overwrite or remove next time while their bytes still match (core/owned_files.py).
BUNDLE_MARKER = ".modelops-bundle.json"
RENDER_HINT = "Render into a new folder: `agent deploy render NAME --out NEW_DIR`."


@dataclass
class RenderedManifests:
    files: dict[str, str]  # relative path -> text
    artifacts: dict[str, dict[str, str]]  # version -> {uri, sha256, dest}
    note: str


def _pin(requirement: str) -> str:
    dist = requirement.split("[")[0]
    lookup = "mlflow" if dist == "mlflow-skinny" else dist
    try:
        return f"{requirement}=={importlib.metadata.version(lookup)}"
    except importlib.metadata.PackageNotFoundError:
        return requirement


def _dns_name(name: str) -> str:
    out = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    return out[:50] or "model"


def render_kubernetes(
    model_name: str,
    revision: Revision,
    *,
    image: str | None = None,
    namespace: str = "default",
    replicas: int = 2,
    needs_sklearn: bool | None = None,
    batching: bool = True,
    batch_window_ms: float | None = None,
    max_batch: int | None = None,
    workers: int | None = None,
) -> RenderedManifests:
    """Manifests for ``revision``'s routes. ``needs_sklearn`` None: detect from the artifacts.
    ``batching``/``batch_window_ms``/``max_batch``: the gateway's micro-batching flags;
    ``workers``: its worker processes (0 or None: one per core the container's CPU limit
    gives, read from its cgroup when the pod starts)."""
    from core.serving.batching import batching_flags
    from core.serving.workers import resolve_workers

    validate_name("model", model_name)
    gateway_flags = batching_flags(batching, batch_window_ms, max_batch)
    if workers is not None:
        resolve_workers(workers)  # refuses a negative count
        gateway_flags += ["--workers", str(workers)]
    app = _dns_name(model_name)
    image = image or f"modelops/{app}-gateway:r{revision.revision}"
    routes = [r for r in revision.routes]
    artifacts = {
        r.version: {
            "uri": r.artifact_uri,
            "sha256": r.artifact_sha256,
            "dest": f"models/v{r.version}",
        }
        for r in routes
    }
    if needs_sklearn is None:
        needs_sklearn = any(
            _is_sklearn(r.artifact_uri, r.artifact_sha256, r.version) for r in routes
        )

    def routes_json(selected: list) -> str:
        return json.dumps(
            {
                "model_name": model_name,
                "revision": revision.revision,
                "strategy": revision.strategy if len(selected) > 1 else "direct",
                "routes": [
                    {**r.model_dump(), "artifact_uri": f"models/v{r.version}"} for r in selected
                ],
            },
            indent=2,
        )

    files: dict[str, str] = {"routes.json": routes_json(routes)}
    for r in routes:
        one = r.model_copy(update={"weight": 100.0, "role": "primary", "slot": None})
        files[f"routes-v{r.version}.json"] = routes_json([one])
    reqs = [_pin(r) for r in _BASE_REQUIREMENTS]
    if needs_sklearn:
        reqs += [_pin(r) for r in _SKLEARN_REQUIREMENTS]
    files["requirements.txt"] = "\n".join(reqs) + "\n"
    files["Dockerfile"] = _dockerfile(model_name)
    labels = {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": "model-gateway",
        "modelops/model": app,
        "modelops/revision": str(revision.revision),
    }
    isvc = _inference_service(model_name, app, revision, image, namespace, labels)
    deployment, service = _deployment_and_service(
        model_name, app, image, namespace, replicas, labels
    )
    for spec in (isvc["spec"]["predictor"], deployment["spec"]["template"]["spec"]):
        for container in spec["containers"]:
            container["args"] = [*container["args"], *gateway_flags]
    files["k8s/inferenceservice.yaml"] = yaml.safe_dump(isvc, sort_keys=False)
    files["k8s/deployment.yaml"] = yaml.safe_dump(deployment, sort_keys=False)
    files["k8s/service.yaml"] = yaml.safe_dump(service, sort_keys=False)
    files["README.md"] = _readme(model_name, revision, image)
    return RenderedManifests(files=files, artifacts=artifacts, note=NOT_APPLIED)


def write_bundle(rendered: RenderedManifests, out_dir: Path) -> Plan:
    """Write the files, the ``core`` package and each routed artifact (digest-checked) to
    ``out_dir``, which is then a complete ``docker build`` context.

    ``core.owned_files`` holds the rule: a file is overwritten, or removed as left over from
    the bundle rendered there before, only if ``BUNDLE_MARKER`` records it with the digest its
    bytes still have; anything else in the way refuses the whole render before a byte is
    written, and everything else in the folder is kept and listed in the returned plan.
    Choosing the folder (inside the working directory or MODELOPS_HOME) is
    ``Services.resolve_output_dir``'s job.
    """
    plan: dict[str, bytes] = {rel: text.encode() for rel, text in rendered.files.items()}
    for path in sorted(_CORE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            plan[f"app/core/{path.relative_to(_CORE).as_posix()}"] = path.read_bytes()
    for version, art in rendered.artifacts.items():
        files = read_verified(art["uri"], art["sha256"], ref=f"v{version}")
        for rel, data in files.items():
            plan[f"{art['dest']}/{rel}"] = data
    writes = plan_writes(out_dir, plan, prune=True, marker=BUNDLE_MARKER)
    return apply(writes, hint=RENDER_HINT)


def _is_sklearn(uri: str, sha256: str, version: str) -> bool:
    return artifact_runtime(read_verified(uri, sha256, ref=f"v{version}")) != "onnxruntime"


def _dockerfile(model_name: str) -> str:
    return f"""# ModelOps gateway for {model_name}: build from this directory.
#   docker build -t IMAGE . && docker push IMAGE
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MODELOPS_HOME=/var/lib/modelops \\
    MLFLOW_DISABLE_TELEMETRY=true
WORKDIR {APP_DIR}
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY app/ {APP_DIR}/app/
# Model artifacts as registered; the gateway checks each one's SHA-256 before loading it.
COPY models/ {APP_DIR}/models/
COPY routes*.json {APP_DIR}/
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin modelops \\
    && mkdir -p /var/lib/modelops && chown 10001 /var/lib/modelops
USER 10001
WORKDIR {APP_DIR}/app
EXPOSE {PORT}
ENTRYPOINT ["python", "-m", "core.serving.gateway", "--model", {json.dumps(model_name)}, "--host", "0.0.0.0", "--port", "{PORT}"]
CMD ["--routes-file", "{APP_DIR}/routes.json"]
"""


def _container(image: str, routes_file: str, name: str) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/health", "port": PORT}, "periodSeconds": 5}
    return {
        "name": name,
        "image": image,
        "args": ["--routes-file", f"{APP_DIR}/{routes_file}"],
        "ports": [
            {
                "name": "http1" if name == "kserve-container" else "http",
                "containerPort": PORT,
                "protocol": "TCP",
            }
        ],
        "env": [
            {"name": "MODELOPS_HOME", "value": "/var/lib/modelops"},
            {
                # Prediction logs go to this database when the secret exists (PostgreSQL in
                # production); otherwise to SQLite on the pod's scratch volume.
                "name": "MODELOPS_STATE_DB_URL",
                "valueFrom": {
                    "secretKeyRef": {"name": "modelops-state-db", "key": "url", "optional": True}
                },
            },
        ],
        "readinessProbe": {**probe, "initialDelaySeconds": 2},
        "livenessProbe": {**probe, "initialDelaySeconds": 10, "failureThreshold": 6},
        "resources": {
            "requests": {"cpu": "500m", "memory": "512Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
        },
        "volumeMounts": [
            {"name": "state", "mountPath": "/var/lib/modelops"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


_VOLUMES = [{"name": "state", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
_SCRAPE = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(PORT),
    "prometheus.io/path": "/metrics",
}


def _inference_service(
    model_name: str, app: str, revision: Revision, image: str, namespace: str, labels: dict
) -> dict[str, Any]:
    live = [r for r in revision.routes if r.weight > 0]
    canary = next((r for r in live if r.role == "canary"), None)
    shadowed = bool(revision.shadow_versions)
    predictor: dict[str, Any] = {"minReplicas": 1, "maxReplicas": 4}
    if canary is not None:
        # KServe canary: this spec is the new revision; canaryTrafficPercent of the traffic
        # goes to it and the rest to the previously rolled-out revision (the baseline).
        predictor["canaryTrafficPercent"] = int(round(canary.weight))
        routes_file = f"routes-v{canary.version}.json"
        serves = f"v{canary.version} as the canary ({canary.weight:g}%)"
    elif shadowed or len(live) > 1:
        # KServe has no shadow split of its own: the gateway mirrors inside the pod.
        routes_file = "routes.json"
        serves = "the full routing table (the gateway splits and mirrors)"
    else:
        routes_file = f"routes-v{live[0].version}.json"
        serves = f"v{live[0].version}"
    predictor["containers"] = [_container(image, routes_file, "kserve-container")]
    predictor["volumes"] = _VOLUMES
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": app,
            "namespace": namespace,
            "labels": labels,
            "annotations": {
                **_SCRAPE,
                "modelops/model-name": model_name,
                "modelops/serves": serves,
            },
        },
        "spec": {"predictor": predictor},
    }


def _deployment_and_service(
    model_name: str, app: str, image: str, namespace: str, replicas: int, labels: dict
) -> tuple[dict[str, Any], dict[str, Any]]:
    selector = {"app.kubernetes.io/name": app, "app.kubernetes.io/component": "model-gateway"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{app}-gateway", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {**_SCRAPE, "modelops/model-name": model_name},
                },
                "spec": {
                    "containers": [_container(image, "routes.json", "gateway")],
                    "volumes": _VOLUMES,
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{app}-gateway", "namespace": namespace, "labels": labels},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return deployment, service


def _readme(model_name: str, revision: Revision, image: str) -> str:
    weights = ", ".join(f"v{v} {w:g}%" for v, w in revision.weights().items())
    shadow = (
        f"; shadow: {', '.join('v' + v for v in revision.shadow_versions)}"
        if revision.shadow_versions
        else ""
    )
    return f"""# {model_name}: gateway bundle for routing revision {revision.revision}

Routes: {weights}{shadow} (strategy {revision.strategy}).

    docker build -t {image} .
    docker push {image}
    kubectl apply -f k8s/deployment.yaml -f k8s/service.yaml      # plain Kubernetes
    kubectl apply -f k8s/inferenceservice.yaml                      # or KServe

{NOT_APPLIED}
"""
