"""`agent deploy render --platform kubernetes`: Dockerfile, KServe InferenceService, Deployment
and Service parse as YAML with the fields that matter, and the bundle's gateway serves its
routes file (nothing is applied to a cluster)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from core.deployment import Revision, ServedVersion
from core.errors import Conflict
from core.registry import artifact_digest
from core.serving.k8s import render_kubernetes, write_bundle
from core.serving.process import free_port


@pytest.fixture(scope="module")
def onnx_artifacts(tmp_path_factory) -> dict[str, tuple[Path, str, list[float]]]:
    """Two tiny ONNX model directories (no MLflow needed): version -> (dir, sha256, row)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True)
    out = {}
    for version, c in (("1", 0.01), ("2", 1.0)):
        model = LogisticRegression(C=c, max_iter=5000).fit(X, y)
        proto = convert_sklearn(
            model, initial_types=[("input", FloatTensorType([None, 30]))], options={"zipmap": False}
        )
        d = tmp_path_factory.mktemp(f"v{version}")
        (d / "model.onnx").write_bytes(proto.SerializeToString())
        out[version] = (d, artifact_digest(d), X[0].tolist())
    return out


def _route(art, version: str, weight: float, role: str = "primary") -> ServedVersion:
    d, sha, _ = art[version]
    return ServedVersion(
        version=version,
        weight=weight,
        artifact_uri=d.as_uri(),
        artifact_sha256=sha,
        implementation_status="IMPLEMENTED",
        accuracy_claim="acc 0.9 on 143 rows",
        validation_status="PASSED",
        role=role,
    )


def _revision(routes: list[ServedVersion], strategy: str) -> Revision:
    return Revision(
        revision=7,
        strategy=strategy,
        action="rollout",
        routes=routes,
        approval_id=None,
        actor="t",
        reason="",
        created_at="",
    )


def test_canary_renders_kserve_canary_traffic_percent_and_a_plain_deployment(onnx_artifacts):
    rev = _revision(
        [_route(onnx_artifacts, "1", 90), _route(onnx_artifacts, "2", 10, "canary")], "canary"
    )
    out = render_kubernetes("churn-classifier", rev, namespace="ml", replicas=3)
    assert "cluster" in out.note and set(out.artifacts) == {"1", "2"}
    isvc = yaml.safe_load(out.files["k8s/inferenceservice.yaml"])
    assert (isvc["apiVersion"], isvc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert isvc["metadata"]["name"] == "churn-classifier" and isvc["metadata"]["namespace"] == "ml"
    pred = isvc["spec"]["predictor"]
    assert pred["canaryTrafficPercent"] == 10
    (c,) = pred["containers"]
    assert c["name"] == "kserve-container" and c["image"] == "modelops/churn-classifier-gateway:r7"
    assert c["args"] == ["--routes-file", "/srv/modelops/routes-v2.json"]  # the canary revision
    assert c["ports"][0]["containerPort"] == 8080
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8080}
    assert c["securityContext"]["runAsNonRoot"] is True

    dep = yaml.safe_load(out.files["k8s/deployment.yaml"])
    svc = yaml.safe_load(out.files["k8s/service.yaml"])
    assert (dep["apiVersion"], dep["kind"], dep["spec"]["replicas"]) == ("apps/v1", "Deployment", 3)
    tmpl_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= tmpl_labels.items()
    assert svc["kind"] == "Service" and svc["spec"]["selector"].items() <= tmpl_labels.items()
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--routes-file", "/srv/modelops/routes.json"]  # the gateway splits
    assert svc["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    routes = json.loads(out.files["routes.json"])
    assert [(r["version"], r["weight"], r["role"]) for r in routes["routes"]] == [
        ("1", 90.0, "primary"),
        ("2", 10.0, "canary"),
    ]
    assert all(r["artifact_uri"] == f"models/v{r['version']}" for r in routes["routes"])
    assert [r["weight"] for r in json.loads(out.files["routes-v2.json"])["routes"]] == [100.0]
    docker = out.files["Dockerfile"]
    for needle in (
        "FROM python:3.11-slim",
        "EXPOSE 8080",
        "USER 10001",
        "core.serving.gateway",
        "COPY models/",
        '"churn-classifier"',
    ):
        assert needle in docker
    reqs = out.files["requirements.txt"].splitlines()
    assert any(r.startswith("onnxruntime==") for r in reqs) and not any(
        "scikit-learn" in r for r in reqs
    )


def test_direct_revision_has_no_canary_and_shadow_runs_the_full_table(onnx_artifacts):
    direct = render_kubernetes("m", _revision([_route(onnx_artifacts, "1", 100)], "direct"))
    pred = yaml.safe_load(direct.files["k8s/inferenceservice.yaml"])["spec"]["predictor"]
    assert "canaryTrafficPercent" not in pred
    assert pred["containers"][0]["args"][-1].endswith("routes-v1.json")
    shadow = render_kubernetes(
        "m",
        _revision(
            [_route(onnx_artifacts, "1", 100), _route(onnx_artifacts, "2", 0, "shadow")], "shadow"
        ),
    )
    pred = yaml.safe_load(shadow.files["k8s/inferenceservice.yaml"])["spec"]["predictor"]
    assert "canaryTrafficPercent" not in pred and pred["containers"][0]["args"][-1].endswith(
        "/routes.json"
    )


@pytest.mark.slow
def test_the_bundle_serves_its_routes_and_refuses_a_tampered_artifact(onnx_artifacts, tmp_path):
    rev = _revision(
        [_route(onnx_artifacts, "1", 50), _route(onnx_artifacts, "2", 50, "canary")], "canary"
    )
    out_dir = tmp_path / "bundle"
    write_bundle(render_kubernetes("m", rev), out_dir)
    assert (out_dir / "models" / "v2" / "model.onnx").is_file()
    assert (out_dir / "app" / "core" / "serving" / "gateway.py").is_file()
    port = free_port("127.0.0.1")
    env = {**os.environ, "MODELOPS_HOME": str(tmp_path / "pod"), "MODELOPS_STATE_DB_URL": ""}
    env.pop("MODELOPS_STATE_DB_URL")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.serving.gateway",
            "--model",
            "m",
            "--port",
            str(port),
            "--routes-file",
            str(out_dir / "routes.json"),
        ],
        cwd=out_dir / "app",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        row = onnx_artifacts["1"][2]
        versions = [
            httpx.post(f"{url}/predict", json={"features": row}).json()["model_version"]
            for _ in range(20)
        ]
        assert versions.count("1") == versions.count("2") == 10
    finally:
        proc.terminate()
        proc.wait(20)
    # The copy step re-checks digests: a tampered source is not baked into an image.
    d, _, _ = onnx_artifacts["2"]
    (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes() + b"\0")
    with pytest.raises(Conflict, match="changed since registration"):
        write_bundle(render_kubernetes("m", rev, needs_sklearn=False), tmp_path / "again")
