"""draft_training_pipeline: a notebook becomes a script that really trains and logs to MLflow;
confined paths; force semantics; malformed notebooks; permissions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

ROOT = Path(__file__).resolve().parent.parent

CELLS = [
    new_markdown_cell("# Churn model\nTrains a forest."),
    new_code_cell("%matplotlib inline\n!pip list\nimport numpy as np\nimport pandas as pd"),
    new_code_cell(
        "from sklearn.datasets import load_breast_cancer\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "from sklearn.model_selection import train_test_split\n"
        "import matplotlib.pyplot as plt"
    ),
    new_code_cell(
        "data = load_breast_cancer()\ndf = pd.DataFrame(data.data, columns=data.feature_names)"
    ),
    new_code_cell("df.head()"),
    new_code_cell("df.shape"),
    new_raw_cell("raw text"),
    new_code_cell(
        "X_train, X_test, y_train, y_test = train_test_split(\n"
        "    data.data, data.target, test_size=0.25, random_state=7)\n"
        "clf = RandomForestClassifier(n_estimators=12, max_depth=4, random_state=7)\n"
        "clf.fit(X_train, y_train)\n"
        "acc = clf.score(X_test, y_test)\n"
        "print('accuracy', acc)"
    ),
    new_code_cell("plt.plot([1, 2])\nplt.show()\ndisplay(df)"),
]


def _notebook(path: Path, cells=CELLS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=list(cells)), str(path))
    return path


def _draft(rt, who: str, **args):
    return rt.dispatcher.call(rt.services.policy.human(who), "draft_training_pipeline", args)


def test_generated_script_trains_and_logs_to_mlflow(rt, home, tmp_path):
    _notebook(tmp_path / "notebooks" / "churn.ipynb")
    res = _draft(rt, "carol", notebook="notebooks/churn.ipynb")
    assert res.ok, res.error
    out = res.output
    script, config = (Path(p) for p in out["paths"])
    assert script.parent == home / "drafts" / "pipelines" / "churn"
    assert out["config"] == {
        "test_size": 0.25,
        "random_state": 7,
        "n_estimators": 12,
        "max_depth": 4,
    }
    assert json.loads(config.read_text()) == out["config"]
    assert out["model_variable"] == "clf"
    # markdown, raw, df.head(), df.shape and the plot/display cell
    assert out["dropped_cells"] == 5
    text = script.read_text()
    code = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    assert "%matplotlib" not in code and "pip list" not in code and "plt.show" not in text
    # the dropped IPython lines are named in the script's notes and in the warnings
    assert "# - cell 2: IPython lines dropped: %matplotlib inline; !pip list" in text
    assert any("%matplotlib inline" in w for w in out["warnings"])
    assert "n_estimators=cfg.n_estimators" in text

    env = {**os.environ, "MODELOPS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("MODELOPS_TRACKING_URI", None)
    run = subprocess.run(
        [sys.executable, str(script), "--config", str(config), "--n_estimators", "5"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "accuracy" in run.stdout
    run_id = run.stdout.strip().splitlines()[-1]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=rt.services.settings.resolved_tracking_uri)
    r = client.get_run(run_id)
    from core.honesty import missing_honesty_fields

    assert missing_honesty_fields(r.data.tags) == []
    assert r.data.tags["honesty_warning"] == "UNVALIDATED"
    assert r.data.params["n_estimators"] == "5"  # the CLI override won over the file
    assert r.data.params["max_depth"] == "4" and r.data.params["test_size"] == "0.25"

    import hashlib

    import numpy as np
    from sklearn.datasets import load_breast_cancer

    ds = load_breast_cancer()
    h = hashlib.sha256()
    for arr in (ds.data, ds.target):
        h.update(np.ascontiguousarray(arr).tobytes())
    assert r.data.tags["dataset_digest.training"] == h.hexdigest()
    assert r.data.tags["model_class"] == "RandomForestClassifier"
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"environment.json", "model"} <= artifacts
    env_json = json.loads(Path(client.download_artifacts(run_id, "environment.json")).read_text())
    assert env_json  # python version and packages from core.experiments.environment

    # A second draft of the same notebook goes to a new folder; never overwrites the first.
    again = _draft(rt, "carol", notebook="notebooks/churn.ipynb")
    assert again.ok and Path(again.output["paths"][0]).parent.name == "churn-2"


def test_csv_path_is_lifted_and_digested(rt, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("a,b\n1,0\n2,1\n")
    cells = [
        new_code_cell("import pandas as pd\ndf = pd.read_csv('data/d.csv')\ndf"),
        new_code_cell(
            "from sklearn.tree import DecisionTreeClassifier\n"
            "m = DecisionTreeClassifier().fit(df[['a']], df['b'])"
        ),
    ]
    _notebook(tmp_path / "nb.ipynb", cells)
    res = _draft(rt, "carol", notebook="nb.ipynb", out_dir="drafts/nb")
    assert res.ok, res.error
    assert res.output["config"] == {"data_path": "data/d.csv"}
    assert res.output["model_variable"] == "m"
    assert "pd.read_csv(cfg.data_path)" in Path(res.output["paths"][0]).read_text()


@pytest.mark.parametrize("bad", ["../outside.ipynb", "ABSOLUTE", "link/evil.ipynb"])
def test_hostile_notebook_paths_are_refused(rt, tmp_path, bad):
    outside = _notebook(tmp_path.parent / f"outside-{tmp_path.name}" / "evil.ipynb")
    _notebook(tmp_path.parent / "outside.ipynb")
    (tmp_path / "link").symlink_to(outside.parent)
    res = _draft(rt, "carol", notebook=str(outside) if bad == "ABSOLUTE" else bad)
    assert not res.ok and res.error.code == "invalid_input", res.error
    assert res.error.message.startswith("notebook path"), res.error.message
    assert not (rt.services.settings.home_dir / "drafts").exists()


def test_hostile_output_folder_is_refused(rt, tmp_path):
    _notebook(tmp_path / "nb.ipynb")
    for out in ("../elsewhere", str(tmp_path.parent / "abs-elsewhere")):
        res = _draft(rt, "carol", notebook="nb.ipynb", out_dir=out)
        assert not res.ok and res.error.code == "invalid_input", out
    assert not (tmp_path.parent / "elsewhere").exists()
    assert not (tmp_path.parent / "abs-elsewhere").exists()


def test_a_file_we_did_not_write_is_never_overwritten_not_even_with_force(rt, tmp_path):
    _notebook(tmp_path / "nb.ipynb")
    out = tmp_path / "drafts" / "nb"
    out.mkdir(parents=True)
    (out / "train.py").write_text("mine\n")
    res = _draft(rt, "carol", notebook="nb.ipynb", out_dir="drafts/nb")
    assert not res.ok and res.error.code == "invalid_input"
    assert (out / "train.py").read_text() == "mine\n"
    assert not (out / "config.json").exists()
    # force overwrites only what an earlier draft wrote, unchanged: this train.py is a person's.
    forced = _draft(rt, "carol", notebook="nb.ipynb", out_dir="drafts/nb", force=True)
    assert not forced.ok and forced.error.code == "invalid_input"
    assert "train.py (not written by us)" in forced.error.message
    assert (out / "train.py").read_text() == "mine\n" and not (out / "config.json").exists()
    (out / "train.py").unlink()
    forced = _draft(rt, "carol", notebook="nb.ipynb", out_dir="drafts/nb", force=True)
    assert forced.ok, forced.error
    assert "class Config(BaseModel)" in (out / "train.py").read_text()


@pytest.mark.parametrize(
    "content", ["{not json", '{"cells": 3}', "[]", '{"nbformat": 4, "cells": [{"x": 1}]}']
)
def test_malformed_notebook_is_a_clear_error(rt, tmp_path, content):
    (tmp_path / "bad.ipynb").write_text(content)
    res = _draft(rt, "carol", notebook="bad.ipynb")
    assert not res.ok and res.error.code == "invalid_input", res.error
    assert "notebook" in res.error.message
    assert not (rt.services.settings.home_dir / "drafts").exists()


def test_notebook_without_code_and_non_notebook_are_refused(rt, tmp_path):
    _notebook(tmp_path / "prose.ipynb", [new_markdown_cell("only words"), new_code_cell("%ls")])
    res = _draft(rt, "carol", notebook="prose.ipynb")
    assert not res.ok and "no code" in res.error.message
    (tmp_path / "x.py").write_text("print(1)\n")
    assert not _draft(rt, "carol", notebook="x.py").ok


def test_architect_allowed_qa_tester_denied(rt, tmp_path):
    _notebook(tmp_path / "nb.ipynb")
    denied = _draft(rt, "bob", notebook="nb.ipynb")
    assert not denied.ok and denied.error.code == "permission_denied"
    assert not (rt.services.settings.home_dir / "drafts").exists()
    assert _draft(rt, "carol", notebook="nb.ipynb").ok


def test_cell_magics_and_display_statements():
    from core.design.notebook import convert

    nb = new_notebook(
        cells=[
            new_code_cell("%%time\nfrom sklearn.svm import SVC\nm = SVC(C=0.5, kernel='rbf')"),
            new_code_cell("%%bash\necho hi"),
            new_code_cell("m\nm.fit([[0], [1]], [0, 1])\nm.get_params()"),
        ]
    )
    draft = convert(nb, "x.ipynb")
    assert draft.config == {"C": 0.5, "kernel": "rbf"}
    assert draft.dropped_cells == 1 and draft.model_var == "m"
    assert any("cell magic" in w for w in draft.warnings)
    assert "echo hi" not in draft.script and "m.fit([[0], [1]], [0, 1])" in draft.script


def test_generated_cli_rejects_a_bad_value_before_logging(rt, home, tmp_path):
    _notebook(tmp_path / "nb.ipynb")
    res = _draft(rt, "carol", notebook="nb.ipynb")
    script = res.output["paths"][0]
    env = {**os.environ, "MODELOPS_HOME": str(home), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, script, "--n_estimators", "many"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode != 0 and "n_estimators" in run.stderr
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=rt.services.settings.resolved_tracking_uri)
    assert client.get_experiment_by_name("notebook-pipelines") is None


def test_odd_notebook_name_and_reserved_kwarg_names(rt, home, tmp_path):
    code = "# a comment\nfrom sklearn.svm import SVC\nm = SVC(config=1, cfg=2)\nm.fit(X, y)"
    cells = [new_code_cell(code)]
    _notebook(tmp_path / 'odd """ name.ipynb', cells)
    res = _draft(rt, "carol", notebook='odd """ name.ipynb')
    assert res.ok, res.error
    script = Path(res.output["paths"][0])
    assert script.parent == home / "drafts" / "pipelines" / "odd-----name"
    assert res.output["config"] == {"p_config": 1, "p_cfg": 2}
    assert any("comments" in w for w in res.output["warnings"])
    compile(script.read_text(), str(script), "exec")
    assert "config=cfg.p_config, cfg=cfg.p_cfg" in script.read_text()


def test_code_that_cannot_live_in_a_function_is_a_clear_error(rt, tmp_path):
    _notebook(tmp_path / "star.ipynb", [new_code_cell("from math import *\nx = sqrt(4)")])
    res = _draft(rt, "carol", notebook="star.ipynb")
    assert not res.ok and res.error.code == "invalid_input" and "train()" in res.error.message
    assert not (rt.services.settings.home_dir / "drafts").exists()
