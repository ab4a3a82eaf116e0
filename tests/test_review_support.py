"""Fixture repositories for the review bot, shaped like an ML project (training script,
serving app, policies, requirements, configs), each made by the test in a throwaway git repo:
a clean base commit, then one scenario commit with planted problems whose rule and line are
known. ``python -m tests.test_review_support`` prints precision and recall over the set.

Secret-shaped strings are assembled at run time, so this file holds none."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
Expected = set[tuple[str, str, int]]


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Fixture",
        "GIT_AUTHOR_EMAIL": "fixture@example.invalid",
        "GIT_COMMITTER_NAME": "Fixture",
        "GIT_COMMITTER_EMAIL": "fixture@example.invalid",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": os.environ.get("PATH", ""),
    }
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env
    ).stdout


def line_of(text: str, needle: str, nth: int = 1) -> int:
    seen = 0
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == nth:
                return i
    raise AssertionError(f"{needle!r} not in the fixture text")


# The clean base project ---------------------------------------------------------------------
TRAIN = '''"""Train the churn model and log it to MLflow with honesty metadata."""

import mlflow
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

HONESTY = {
    "implementation_status": "IMPLEMENTED",
    "accuracy_claim": "f1 0.91 on a 20% stratified holdout",
    "validation_method": "stratified holdout, seed 42",
}


def main(path: str = "data/churn.csv") -> None:
    df = pd.read_csv(path)
    X, y = df.drop(columns=["churned"]), df["churned"]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=42
    )
    scaler = StandardScaler().fit(X_train)
    model = RandomForestClassifier(n_estimators=200, random_state=42)
    with mlflow.start_run(run_name="churn-rf"):
        mlflow.log_params(HONESTY)
        model.fit(scaler.transform(X_train), y_train)
        score = f1_score(y_test, model.predict(scaler.transform(X_test)))
        mlflow.log_metric("holdout_f1", score)
        mlflow.sklearn.log_model(
            model, name="model", pip_requirements=["scikit-learn==1.5.2", "pandas==2.2.3"]
        )


if __name__ == "__main__":
    main()
'''

APP = '''"""Serve the champion churn model; every prediction carries its honesty metadata."""

import mlflow
from fastapi import FastAPI
from pydantic import BaseModel

MODEL_URI = "models:/churn@champion"
VERSION = "3"
HONESTY = {
    "implementation_status": "IMPLEMENTED",
    "accuracy_claim": "f1 0.91 on a 20% stratified holdout",
    "validation_status": "PASSED",
}
app = FastAPI()
model = mlflow.pyfunc.load_model(MODEL_URI)


class Features(BaseModel):
    rows: list[list[float]]


@app.get("/health")
def health() -> dict:
    return {"status": "ok", "honesty_compliant": True}


@app.post("/predict")
def predict(features: Features) -> dict:
    prediction = model.predict(features.rows).tolist()
    return {"model_version": VERSION, **HONESTY, "prediction": prediction}
'''

SERVING_REQS = "mlflow==3.17.0\nscikit-learn==1.5.2\nfastapi==0.115.0\npydantic==2.9.2\n"
ROOT_REQS = "mlflow==3.17.0\nscikit-learn==1.5.2\npandas==2.2.3\n"
CONFIG = "tracking_uri: sqlite:///mlflow.db\nexperiment: churn\nmodel_name: churn\ndata: data/churn.csv\n"
README = "# churn\n\nTrain with `python train.py`; serve with `uvicorn serving.app:app`.\n"


@functools.lru_cache(maxsize=1)
def _policy_texts() -> tuple[str, str]:
    """The project's policy, read once per process (other work may edit it meanwhile)."""
    roles = (ROOT / "policies" / "roles.yaml").read_text()
    roles = roles.replace("require_human: false", "require_human: true")
    assert "require_human: true" in roles
    return roles, (ROOT / "policies" / "thresholds.yaml").read_text()


def base_files() -> dict[str, str]:
    roles, thresholds = _policy_texts()
    return {
        "train.py": TRAIN,
        "serving/app.py": APP,
        "serving/requirements.txt": SERVING_REQS,
        "requirements.txt": ROOT_REQS,
        "configs/train.yaml": CONFIG,
        "policies/roles.yaml": roles,
        "policies/thresholds.yaml": thresholds,
        "README.md": README,
    }


def write(repo: Path, files: dict[str, str | None]) -> None:
    for path, text in files.items():
        p = repo / path
        if text is None:
            p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def make_repo(path: Path, change: dict[str, str | None], message: str = "change") -> Path:
    """A repo with the base project on ``main`` and ``change`` committed on ``feature``."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    write(path, base_files())
    git(path, "add", "-A")
    git(path, "commit", "-qm", "base project")
    git(path, "switch", "-q", "-c", "feature")
    write(path, change)
    git(path, "add", "-A")
    git(path, "commit", "-qm", message)
    return path


# Scenarios ----------------------------------------------------------------------------------
@dataclass
class Scenario:
    name: str
    change: dict[str, str | None]
    expected: Expected = field(default_factory=set)


def _training() -> Scenario:
    text = (
        TRAIN.replace("import mlflow\n", "import pickle\n\nimport mlflow\n")
        .replace(
            '    X, y = df.drop(columns=["churned"]), df["churned"]\n',
            '    with open("data/features.pkl", "rb") as fh:\n'
            "        extra = pickle.load(fh)\n"
            '    X, y = df.drop(columns=["churned"]).join(extra), df["churned"]\n',
        )
        .replace(
            "    X_train, X_test, y_train, y_test = train_test_split(\n"
            "        X, y, test_size=0.2, stratify=y, random_state=42\n    )\n",
            "    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2)\n",
        )
        .replace(
            "StandardScaler().fit(X_train)", "StandardScaler().fit(pd.concat([X_train, X_test]))"
        )
        .replace(
            "        mlflow.log_params(HONESTY)\n",
            '        mlflow.log_params({"n_estimators": 200})\n',
        )
        .replace(
            "        model.fit(scaler.transform(X_train), y_train)\n",
            "        model.fit(scaler.transform(X_train), y_train)\n"
            "        X_test = X_test.fillna(X_train.mean())\n",
        )
        .replace('"scikit-learn==1.5.2", "pandas==2.2.3"', '"scikit-learn", "pandas==2.2.3"')
    )
    p = "train.py"
    return Scenario(
        "training",
        {p: text},
        {
            ("MO401", p, line_of(text, "pickle.load(fh)")),
            ("MO702", p, line_of(text, "train_test_split(X, y, test_size=0.2)")),
            ("MO701", p, line_of(text, "pd.concat([X_train, X_test])")),
            ("MO101", p, line_of(text, "mlflow.start_run(")),
            ("MO801", p, line_of(text, '"scikit-learn", "pandas==2.2.3"')),
        },
    )


def _serving() -> Scenario:
    app = (
        APP.replace("import mlflow\n", "import json\n\nimport joblib\nimport mlflow\n").replace(
            "model = mlflow.pyfunc.load_model(MODEL_URI)\n",
            'model = mlflow.pyfunc.load_model("runs:/4f2a9c0d/model")\n'
            'encoder = joblib.load("serving/encoder.joblib")\n'
            'settings = json.load(open("serving/settings.json"))\n',
        )
        + """

@app.post("/predict_batch")
def predict_batch(features: Features) -> dict:
    predictions = model.predict(encoder.transform(features.rows)).tolist()
    return {"model_version": VERSION, "predictions": predictions}


@app.get("/metadata")
def metadata() -> dict:
    return {"name": "churn", "version": VERSION}
"""
    )
    reqs = SERVING_REQS + "xgboost\nlightgbm>=4.5,<5\n"
    a, r = "serving/app.py", "serving/requirements.txt"
    return Scenario(
        "serving",
        {a: app, r: reqs},
        {
            ("MO402", a, line_of(app, "runs:/4f2a9c0d/model")),
            ("MO401", a, line_of(app, "joblib.load(")),
            ("MO301", a, line_of(app, '"predictions": predictions}')),
            ("MO801", r, line_of(reqs, "xgboost")),
        },
    )


PROMOTE = '''"""Promote the newest churn model (a shortcut around the approval workflow)."""

from mlflow import MlflowClient


def promote(version: str) -> None:
    client = MlflowClient()
    client.set_registered_model_alias("churn", "challenger", version)
    client.set_registered_model_alias("churn", "champion", version)
    client.transition_model_version_stage("churn", version, stage="Production")
'''


def _promotion() -> Scenario:
    p = "scripts/promote.py"
    return Scenario(
        "promotion",
        {p: PROMOTE},
        {
            ("MO201", p, line_of(PROMOTE, '"champion", version')),
            ("MO202", p, line_of(PROMOTE, "transition_model_version_stage")),
        },
    )


def fake_secret(prefix: str, n: int, alphabet: str = "aB3dE5gH7jK9mN1pQ2rS4tU6vW8xY0z") -> str:
    return prefix + (alphabet * 4)[:n]


def _secrets() -> Scenario:
    hf = fake_secret("hf" + "_", 34)
    openai_key = fake_secret("sk-" + "proj-", 40)
    gh = fake_secret("gh" + "p_", 36)
    config = CONFIG + (
        f"hf_token: {hf}\n"
        "db_password: Xq9!mT4#rLw2\n"
        "token_ttl_hours: 24\n"
        "password_env: DB_PASSWORD\n"
    )
    env = f"OPENAI_API_KEY={openai_key}\nMLFLOW_TRACKING_URI=sqlite:///mlflow.db\n"
    clients = (
        '"""Clients for the feature store and the tracking server."""\n\n'
        "import os\n\n"
        f'GITHUB_TOKEN = "{gh}"\n'
        'api_key = os.environ["OPENAI_API_KEY"]\n'
        'TRACKING = "postgresql://mlflow:' + "Sup3rS3cret" + '@db:5432/mlflow"\n'
        'PUBLIC_DSN = "postgresql://db:5432/mlflow"\n'
    )
    c, e, py = "configs/train.yaml", ".env", "src/clients.py"
    return Scenario(
        "secrets",
        {c: config, e: env, py: clients},
        {
            ("MO501", c, line_of(config, "hf_token:")),
            ("MO501", c, line_of(config, "db_password:")),
            ("MO501", e, line_of(env, "OPENAI_API_KEY=")),
            ("MO501", py, line_of(clients, "GITHUB_TOKEN =")),
            ("MO501", py, line_of(clients, "TRACKING =")),
        },
    )


def _policy() -> Scenario:
    roles, thresholds = _policy_texts()
    new_roles = (
        roles.replace("      - design:write\n", "      - design:write\n      - deploy:production\n")
        .replace(
            "  carol:\n    role: Architect\n    approver: false",
            "  carol:\n    role: Architect\n    approver: true",
        )
        .replace("require_human: true", "require_human: false")
    )
    new_thr = thresholds.replace("      f1: 0.90\n", "      f1: 0.80\n", 1)
    r, t = "policies/roles.yaml", "policies/thresholds.yaml"
    assert new_roles.count("- deploy:production") == 2 and new_thr != thresholds
    return Scenario(
        "policy",
        {r: new_roles, t: new_thr},
        {
            ("MO601", r, line_of(new_roles, "- deploy:production", 2)),
            ("MO601", r, line_of(new_roles, "  carol:") + 2),
            ("MO601", r, line_of(new_roles, "require_human: false")),
            ("MO601", t, line_of(new_thr, "f1: 0.80")),
        },
    )


def _clean() -> Scenario:
    train = TRAIN.replace(
        "from sklearn.model_selection import train_test_split\n",
        "from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split\n",
    ).replace(
        '        mlflow.log_metric("holdout_f1", score)\n',
        '        mlflow.log_metric("holdout_f1", score)\n'
        "        cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)\n"
        "        cv_f1 = cross_val_score(model, scaler.transform(X_train), y_train, cv=cv).mean()\n"
        '        mlflow.log_metric("cv_f1", cv_f1)\n',
    )
    app = (
        APP
        + """

@app.post("/predict_proba")
def predict_proba(features: Features) -> dict:
    probabilities = model.predict_proba(features.rows).tolist()
    return {"model_version": VERSION, **HONESTY, "probabilities": probabilities}
"""
    )
    roles, thresholds = _policy_texts()
    promote = PROMOTE.split('    client.set_registered_model_alias("churn", "champion"')[0]
    return Scenario(
        "clean",
        {
            "train.py": train,
            "serving/app.py": app,
            "serving/requirements.txt": SERVING_REQS + "onnxruntime==1.20.1\n",
            "configs/train.yaml": CONFIG + "token_ttl_hours: 24\npassword_env: DB_PASSWORD\n",
            "policies/roles.yaml": roles.replace("      - deploy:stop\n", "", 1),
            "policies/thresholds.yaml": thresholds.replace(
                "      f1: 0.90\n", "      f1: 0.92\n", 1
            ),
            "scripts/promote.py": promote,
            "README.md": README + "\nThe app loads `models:/churn@champion`; see serving/app.py.\n",
        },
    )


SCENARIOS: tuple[Callable[[], Scenario], ...] = (
    _training,
    _serving,
    _promotion,
    _secrets,
    _policy,
    _clean,
)


def scenarios() -> list[Scenario]:
    return [make() for make in SCENARIOS]


# Registry-aware scenario (needs a home with registered versions) ------------------------------
REGISTRY_REFS_TEMPLATE = '''"""Model references the serving layer uses."""

CHAMPION = "models:/{m}@champion"
STAGING = "models:/{m}@staging"
MISSING = "models:/{m}/9"
PLANNED = "models:/{m}/3"
FAILED = "{m}/2"
UNKNOWN = "models:/no-such-model@champion"
'''


def registry_scenario(model: str) -> Scenario:
    text = REGISTRY_REFS_TEMPLATE.format(m=model)
    p = "serving/models.py"
    return Scenario(
        "registry",
        {p: text},
        {
            ("MO904", p, line_of(text, "CHAMPION =")),
            ("MO901", p, line_of(text, "STAGING =")),
            ("MO901", p, line_of(text, "MISSING =")),
            ("MO902", p, line_of(text, "PLANNED =")),
            ("MO903", p, line_of(text, "FAILED =")),
            ("MO901", p, line_of(text, "UNKNOWN =")),
        },
    )


def prepare_registry(rt, bc_data, trained) -> str:  # noqa: ANN001
    """v1 and v2 as the quickstart registers them, v3 registered PLANNED, a FAILED validation
    of v2 on record, and champion set directly on v1 (no approval)."""
    from core.honesty import HonestyMetadata
    from tests.fakes.models import register_models

    reg = register_models(rt, bc_data, trained)
    name = reg["name"]
    run_id = rt.services.registry.log_sklearn_run(
        trained[0].model,
        X_sample=bc_data.train[bc_data.feature_names].head(3),
        honesty=trained[0].honesty,
        run_name="planned",
        dataset=bc_data.train,
    )
    planned = HonestyMetadata(
        implementation_status="PLANNED",
        accuracy_claim="none yet",
        validation_method="not validated",
        honesty_warning="UNVALIDATED",
    )
    dana = rt.services.policy.human("dana")
    rt.dispatcher.call_or_raise(
        dana,
        "register_model",
        {"name": name, "run_id": run_id, "honesty": planned.model_dump(mode="json")},
    )
    v2 = rt.services.registry.get(name, "2")
    rt.services.validations.record(
        rt.services.policy.human("bob"),
        model_name=name,
        version="2",
        artifact_sha256=v2.artifact_sha256 or "",
        dataset_sha256="0" * 64,
        dataset_path="holdout.csv",
        evaluation_id="",
        verdict="FAILED",
        reasons=["f1 0.6100 below minimum 0.9"],
        metrics={"f1": 0.61},
    )
    rt.services.registry.set_alias(name, "champion", "1")
    return name


# Scoring --------------------------------------------------------------------------------------
def score(found: Expected, expected: Expected) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives)."""
    return len(found & expected), len(found - expected), len(expected - found)


def review_found(repo: Path, lookup_actor=None) -> Expected:  # noqa: ANN001
    from agents.review.service import Reviewer, review_git

    result = review_git(repo, "main..feature", lookup_actor or Reviewer())
    return {(f.rule, f.path, f.line) for f in result.findings}


def main() -> None:
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for sc in scenarios():
            repo = make_repo(Path(tmp) / sc.name, sc.change)
            rows.append((sc.name, *score(review_found(repo), sc.expected)))
        rows.append(("registry", *_registry_row(Path(tmp))))
    tp, fp, fn = (sum(r[i] for r in rows) for i in (1, 2, 3))
    print(f"{'scenario':12} {'TP':>3} {'FP':>3} {'FN':>3}")
    for name, a, b, c in rows:
        print(f"{name:12} {a:3} {b:3} {c:3}")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(f"total        {tp:3} {fp:3} {fn:3}")
    print(f"precision {precision:.3f}  recall {recall:.3f}  over {len(rows)} fixture repositories")
    sys.exit(0 if fp == fn == 0 else 1)


def _registry_row(tmp: Path) -> tuple[int, int, int]:
    os.environ["MODELOPS_HOME"] = str(tmp / "home")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from agents.review.service import Reviewer
    from agents.runtime import build_runtime
    from core.settings import load_settings
    from core.training import load_breast_cancer_split, train_quickstart_models

    rt = build_runtime(load_settings())
    data = load_breast_cancer_split()
    name = prepare_registry(rt, data, train_quickstart_models(data))
    sc = registry_scenario(name)
    repo = make_repo(tmp / "registry", sc.change)
    policy = rt.services.policy
    rv = Reviewer(dispatcher=rt.dispatcher, policy=policy, person=policy.human("carol"))
    return score(review_found(repo, rv), sc.expected)


if __name__ == "__main__":
    main()
