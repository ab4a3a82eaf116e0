"""Decision trees skops rebuilds from a file are checked before use: out-of-range children or
features, cycles, NaN thresholds and HistGradientBoosting node arrays are refused with
InvalidInput, and the untouched model still loads and predicts."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import skops.io
import yaml
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree._tree import Tree

from core.artifacts import sklearn_from_bytes
from core.errors import InvalidInput
from core.tree_checks import _hgb_predictor_problem, tree_problem

X, Y = load_breast_cancer(return_X_y=True)


@pytest.fixture(scope="module")
def tree_model() -> DecisionTreeClassifier:
    return DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, Y)


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, Y)


def files_of(model) -> dict[str, bytes]:  # noqa: ANN001
    mlmodel = {
        "flavors": {"sklearn": {"pickled_model": "model.skops", "serialization_format": "skops"}}
    }
    return {"MLmodel": yaml.safe_dump(mlmodel).encode(), "model.skops": skops.io.dumps(model)}


def corrupted(estimator, edit):  # noqa: ANN001, ANN201
    """A copy of ``estimator`` whose tree_ is rebuilt (``__setstate__``) from edited nodes."""
    out = copy.deepcopy(estimator)
    state = out.tree_.__getstate__()
    nodes = state["nodes"].copy()
    edit(nodes)
    tree = Tree(out.tree_.n_features, np.asarray(out.tree_.n_classes), out.tree_.n_outputs)
    tree.__setstate__({**state, "nodes": nodes})
    out.tree_ = tree
    return out


def first_internal(nodes) -> int:  # noqa: ANN001
    return int(np.flatnonzero(nodes["left_child"] != -1)[1])


def _child_out_of_range(n):  # noqa: ANN001, ANN202
    n["left_child"][0] = len(n) + 5


def _child_to_root(n):  # noqa: ANN001, ANN202
    n["right_child"][first_internal(n)] = 0


def _feature(n):  # noqa: ANN001, ANN202
    n["feature"][0] = 10_000


def _nan_threshold(n):  # noqa: ANN001, ANN202
    n["threshold"][0] = np.nan


def _leaf_with_child(n):  # noqa: ANN001, ANN202
    leaf = int(np.flatnonzero(n["left_child"] == -1)[0])
    n["right_child"][leaf] = 1


CASES = {
    "child out of range": (_child_out_of_range, "tree 1 node 0: child index"),
    "child back to the root": (_child_to_root, "child index 0 out of range"),
    "feature index": (_feature, "node 0: feature index 10000 out of range [0, 30)"),
    "NaN threshold": (_nan_threshold, "node 0: threshold nan"),
    "leaf with a child": (_leaf_with_child, "a leaf (left child -1) with right child 1"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_corrupted_decision_tree_file_is_refused_at_load(tree_model, case):
    edit, message = CASES[case]
    bad = files_of(corrupted(tree_model, edit))
    with pytest.raises(InvalidInput) as err:
        sklearn_from_bytes(bad, ref="m v1")
    assert message in err.value.message and "re-train" in err.value.hint


def test_the_untouched_files_load_and_predict(tree_model, forest):
    for model in (tree_model, forest):
        loaded = sklearn_from_bytes(files_of(model), ref="m v1")
        assert loaded.predict(X[:20]).tolist() == model.predict(X[:20]).tolist()


def test_a_forest_with_one_bad_tree_is_refused_naming_that_tree(forest):
    bad = copy.deepcopy(forest)
    bad.estimators_[3] = corrupted(bad.estimators_[3], _child_out_of_range)
    with pytest.raises(InvalidInput, match=r"tree 4 node 0: child index \d+ out of range"):
        sklearn_from_bytes(files_of(bad), ref="m v1")


def test_a_tree_built_on_another_width_than_its_estimator_is_refused(tree_model):
    bad = copy.deepcopy(tree_model)
    bad.n_features_in_ = 5
    assert "built on 30 features but its estimator takes 5" in tree_problem(bad)
    with pytest.raises(InvalidInput):
        sklearn_from_bytes(files_of(bad), ref="m v1")


def test_trees_inside_pipelines_and_containers_are_found(tree_model):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bad = corrupted(tree_model, _feature)
    pipe = make_pipeline(StandardScaler(), bad)
    assert "feature index 10000" in tree_problem(pipe)
    assert "feature index 10000" in tree_problem({"a": [(1, np.array([bad], dtype=object))]})
    assert tree_problem(make_pipeline(StandardScaler(), tree_model)) is None


def test_a_missing_value_split_threshold_of_infinity_is_sound():
    Xn = X.copy()
    Xn[::3, 0] = np.nan
    model = DecisionTreeClassifier(random_state=0).fit(Xn, Y)
    assert tree_problem(model) is None


def test_histgradientboosting_predictor_nodes_are_checked():
    rng = np.random.default_rng(0)
    Xc = np.c_[rng.integers(0, 5, 400), X[:400, :3]]
    model = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0]).fit(Xc, Y[:400])
    assert tree_problem(model) is None
    predictor = model._predictors[0][0]
    n = len(predictor.nodes)
    inner = int(np.flatnonzero(predictor.nodes["is_leaf"] == 0)[0])
    edits = {
        "child": (("left", n + 5), f"node {inner}: child index {n + 5} out of range"),
        "cycle": (("right", inner), f"node {inner}: child index {inner} out of range"),
        "feature": (("feature_idx", 99), f"node {inner}: feature index 99 out of range [0, 4)"),
        "bitset": (("bitset_idx", 7), "category bitset index 7 out of range [0,"),
    }
    for label, ((field, value), message) in edits.items():
        bad = copy.copy(predictor)
        bad.nodes = predictor.nodes.copy()
        bad.nodes[field][inner] = value
        if label == "bitset":
            bad.nodes["is_categorical"][inner] = 1
        assert message in (_hgb_predictor_problem(bad, 4) or ""), label
        whole = copy.copy(model)
        whole._predictors = [[bad]]
        assert (tree_problem(whole) or "").startswith("tree 1 node"), label
    assert _hgb_predictor_problem(predictor, 4) is None


def test_bring_your_own_skops_file_goes_through_the_same_check(tree_model, tmp_path):
    from core.byom_sources import read_model_path

    path = tmp_path / "bad.skops"
    path.write_bytes(skops.io.dumps(corrupted(tree_model, _child_out_of_range)))
    with pytest.raises(InvalidInput, match="child index"):
        read_model_path(path, ref="bad.skops")
