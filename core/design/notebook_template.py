"""The script a notebook becomes: every value written into it is a Python literal (``repr``),
so a missing model or an empty list can never turn into ``null`` or ``[]`` meaning JSON."""

from __future__ import annotations

import re


def _comment(text: str) -> str:
    # notebook text inside a comment: one line, printable, nothing that ends the comment
    return re.sub(r"[^\x20-\x7e]", "?", text)[:200]


def render(
    source_name: str,
    config: dict[str, object],
    paths: list[str],
    bundled: list[str],
    model_var: str | None,
    code: str,
    cfg_name: str,
    notes: list[str],
) -> str:
    """The pipeline script (see core.design.notebook)."""
    fields = "\n".join(f"    {k}: {type(v).__name__} = {v!r}" for k, v in config.items())
    indented = "\n".join(("    " + line) if line else "" for line in code.splitlines())
    note_lines = "".join(f"# - {_comment(n)}\n" for n in notes)
    return TEMPLATE.format(
        source=repr(source_name),
        source_doc=re.sub(r"[^A-Za-z0-9._ -]", "_", source_name),
        notes=("# Drafting notes:\n" + note_lines + "\n") if notes else "",
        fields=fields or "    pass",
        paths=repr(list(paths)),
        bundled=repr(sorted(set(bundled))),
        model_var=repr(model_var),
        cfg=cfg_name,
        code=indented,
    )


TEMPLATE = '''"""Training pipeline drafted from {source_doc} (review it before use).

Run: python train.py [--PARAM VALUE ...] [--config config.json] [--experiment NAME]
Tracking: MODELOPS_TRACKING_URI, else MODELOPS_HOME/mlflow.db (MODELOPS_HOME: ./.modelops).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

{notes}PATH_FIELDS = {paths}
BUNDLED = {bundled}
MODEL_VAR = {model_var}
HONESTY = {{
    "implementation_status": "IMPLEMENTED",
    "accuracy_claim": "none: drafted from a notebook; this run measured nothing for approval",
    "validation_method": "none",
    "honesty_warning": "UNVALIDATED",
}}


class Config(BaseModel):
    """Values lifted from the notebook; override with --NAME VALUE or --config FILE.json."""

    model_config = ConfigDict(extra="forbid")
{fields}


def load_config(argv: list[str] | None = None) -> tuple[Config, str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="JSON object of Config fields")
    parser.add_argument("--experiment", default="notebook-pipelines")
    for name, info in Config.model_fields.items():
        parser.add_argument(
            f"--{{name}}", dest=name, default=None,
            help=f"{{info.annotation.__name__}} (default {{info.default!r}})",
        )
    ns = parser.parse_args(argv)
    data = json.loads(ns.config.read_text()) if ns.config else {{}}
    if not isinstance(data, dict):
        parser.error("--config must hold a JSON object")
    data.update({{k: v for k, v in vars(ns).items() if k in Config.model_fields and v is not None}})
    try:
        return Config.model_validate(data), ns.experiment
    except ValidationError as exc:
        parser.error(str(exc))


def train({cfg}: Config) -> dict:
{code}
    return locals()


def _tracking() -> tuple[str, str]:
    try:
        from core.settings import load_settings

        s = load_settings()
        return s.resolved_tracking_uri, s.resolved_artifact_root
    except ImportError:
        home = Path(os.environ.get("MODELOPS_HOME", ".modelops")).resolve()
        uri = os.environ.get("MODELOPS_TRACKING_URI") or f"sqlite:///{{home / 'mlflow.db'}}"
        return uri, os.environ.get("MODELOPS_ARTIFACT_ROOT") or (home / "artifacts").as_uri()


def _environment() -> dict:
    try:
        from core.experiments.environment import capture_environment

        return capture_environment()
    except ImportError:
        from importlib.metadata import PackageNotFoundError, version

        packages = {{}}
        for pkg in ("scikit-learn", "numpy", "pandas", "mlflow", "pydantic"):
            try:
                packages[pkg] = version(pkg)
            except PackageNotFoundError:
                pass
        return {{"python": sys.version.split()[0], "platform": platform.platform(),
                "packages": packages}}


def dataset_digest(cfg: Config) -> tuple[str, str] | None:
    """(sha256, what it covers): of the data files, else of the bundled datasets' arrays."""
    h = hashlib.sha256()
    if PATH_FIELDS:
        for name in PATH_FIELDS:
            h.update(Path(getattr(cfg, name)).read_bytes())
        return h.hexdigest(), "files: " + ", ".join(str(getattr(cfg, n)) for n in PATH_FIELDS)
    if BUNDLED:
        import numpy as np
        import sklearn.datasets

        for loader in BUNDLED:
            ds = getattr(sklearn.datasets, loader)()
            for arr in (ds.data, ds.target):
                h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest(), "sklearn arrays: " + ", ".join(BUNDLED)
    return None


def main(argv: list[str] | None = None) -> str:
    cfg, experiment = load_config(argv)  # bad values fail here, before anything is logged
    import mlflow

    uri, artifact_root = _tracking()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        mlflow.create_experiment(
            experiment, artifact_location=f"{{artifact_root.rstrip('/')}}/{{experiment}}"
        )
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=Path(__file__).parent.name) as run:
        mlflow.set_tags({{**HONESTY, "source_notebook": {source}}})
        mlflow.log_params(cfg.model_dump())
        env = _environment()
        mlflow.log_dict(env, "environment.json")
        mlflow.set_tag("env.python", platform.python_version())
        digest = dataset_digest(cfg)
        if digest:
            mlflow.set_tags({{"dataset_digest.training": digest[0], "dataset_source": digest[1]}})
        scope = train(cfg)
        model = scope.get(MODEL_VAR) if MODEL_VAR else None
        if model is not None and hasattr(model, "predict"):
            import skops.io

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.skops"
                skops.io.dump(model, path)
                mlflow.log_artifact(str(path), "model")
            mlflow.set_tag("model_class", type(model).__name__)
        elif MODEL_VAR:  # the draft named a model the code did not leave behind: say so
            print(f"warning: {{MODEL_VAR!r}} holds no fitted model; none logged", file=sys.stderr)
        print(run.info.run_id)
        return run.info.run_id


if __name__ == "__main__":
    main()
'''
