"""Structural checks of the decision trees inside a model skops just built.

skops rebuilds ``sklearn.tree._tree.Tree`` (and HistGradientBoosting's ``TreePredictor`` and
binning mapper) from the file's arrays without checking them: a child or feature index out of
range makes predict read out of bounds or crash. XGBoost and LightGBM boosters are parsed by
their own libraries; their trees' child and feature indices are checked here too. ``tree_problem`` finds the first such defect (standalone: numpy
only, so the serving scaffold embeds it); ``check_trees`` turns it into an InvalidInput.
"""

from __future__ import annotations

from typing import Any

TREE_FIX_HINT = (
    "The file's tree structure is not one scikit-learn builds; re-train the model with "
    "scikit-learn (or re-save the original with skops.io.dump) and register it again."
)
# Fitted scikit-learn models nest a few levels (pipeline > column transformer > ensemble >
# estimator > tree); a file nesting deeper than this is refused rather than walked.
MAX_TREE_WALK_DEPTH = 64


def _sklearn_tree_problem(tree: Any, n_features_in: Any) -> str | None:
    """The first defect of one ``sklearn.tree._tree.Tree``, or None."""
    import numpy as np

    n = int(tree.node_count)
    left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
    feature, threshold = np.asarray(tree.feature), np.asarray(tree.threshold)
    if any(a.shape != (n,) for a in (left, right, feature, threshold)):
        return f"has node arrays without node_count ({n}) entries"
    value = np.asarray(tree.value)
    if value.shape != (n, int(tree.n_outputs), int(tree.max_n_classes)):
        return f"has a value array of shape {value.shape}, not (node_count, n_outputs, classes)"
    if isinstance(n_features_in, int) and int(tree.n_features) != n_features_in:
        return f"is built on {tree.n_features} features but its estimator takes {n_features_in}"
    idx = np.arange(n)
    internal = left != -1
    # sklearn's builder numbers children after their parent: this also rules out cycles.
    for m in np.flatnonzero(internal & ((left <= idx) | (left >= n))):
        return f"node {m}: child index {left[m]} out of range ({m}, {n})"
    for m in np.flatnonzero(internal & ((right <= idx) | (right >= n))):
        return f"node {m}: child index {right[m]} out of range ({m}, {n})"
    for m in np.flatnonzero(~internal & (right != -1)):
        return f"node {m}: a leaf (left child -1) with right child {right[m]}"
    for m in np.flatnonzero(internal & ((feature < 0) | (feature >= int(tree.n_features)))):
        return f"node {m}: feature index {feature[m]} out of range [0, {tree.n_features})"
    # +inf is what sklearn writes for a split that sends only missing values right.
    for m in np.flatnonzero(internal & (np.isnan(threshold) | (threshold == -np.inf))):
        return f"node {m}: threshold {threshold[m]} is not a number a split can use"
    return None


def _hgb_predictor_problem(predictor: Any, n_features: Any) -> str | None:
    """The first defect of one HistGradientBoosting ``TreePredictor``, or None."""
    import numpy as np

    fields = {"left", "right", "feature_idx", "is_leaf", "is_categorical", "bitset_idx"}
    nodes = getattr(predictor, "nodes", None)
    names = getattr(getattr(nodes, "dtype", None), "names", None) or ()
    if not isinstance(nodes, np.ndarray) or nodes.ndim != 1 or fields - set(names):
        return "has nodes that are not the structured array scikit-learn builds"
    n = nodes.shape[0]
    idx = np.arange(n)
    inner = nodes["is_leaf"] == 0
    for field in ("left", "right"):
        child = nodes[field].astype(np.int64)
        for m in np.flatnonzero(inner & ((child <= idx) | (child >= n))):
            return f"node {m}: child index {child[m]} out of range ({m}, {n})"
    feat = nodes["feature_idx"].astype(np.int64)
    limit = n_features if isinstance(n_features, int) else None
    for m in np.flatnonzero(inner & ((feat < 0) | (feat >= (limit or np.iinfo(np.int64).max)))):
        return f"node {m}: feature index {feat[m]} out of range [0, {limit})"
    cat = inner & (nodes["is_categorical"] != 0)
    bits = nodes["bitset_idx"].astype(np.int64)
    sizes = [
        len(b) if isinstance(b, np.ndarray) and b.ndim == 2 else 0
        for b in (
            getattr(predictor, "raw_left_cat_bitsets", None),
            getattr(predictor, "binned_left_cat_bitsets", None),
        )
    ]
    for m in np.flatnonzero(cat & ((bits < 0) | (bits >= min(sizes)))):
        return f"node {m}: category bitset index {bits[m]} out of range [0, {min(sizes)})"
    for b in (predictor.raw_left_cat_bitsets, predictor.binned_left_cat_bitsets):
        # predict reads word (category // 32) of a row: 8 words hold categories 0..255.
        if len(b) and b.shape[1] != _BITSET_WORDS:
            return f"has category bitsets {b.shape[1]} words wide, not {_BITSET_WORDS}"
    return None


_BITSET_WORDS = 8  # scikit-learn's X_BITSET_INNER_DTYPE bitsets: 8 x 32 bits = 256 categories
_HGB_MODULE = "sklearn.ensemble._hist_gradient_boosting.gradient_boosting"


def _hgb_estimator_problem(est: Any) -> str | None:
    """The first defect of a HistGradientBoosting estimator's binning mapper, or None.

    Predict builds the known-category bitsets from ``_bin_mapper.bin_thresholds_`` (writing
    bit ``category`` of an 8-word row) and indexes them by ``is_categorical_``; a category
    outside 0..255, a list of the wrong length, or a categorical split on a feature the
    mapper calls numeric would write or read outside those arrays."""
    import numpy as np

    attrs = vars(est)
    predictors = attrs.get("_predictors")
    if not predictors:
        return None
    mapper, n = attrs.get("_bin_mapper"), attrs.get("_n_features")
    if mapper is None or not isinstance(n, int):
        return "has trees but no binning mapper or feature count"
    is_cat = getattr(mapper, "is_categorical_", None)
    is_cat = np.zeros(n, dtype=bool) if is_cat is None else np.asarray(is_cat)
    thresholds = getattr(mapper, "bin_thresholds_", None)
    if is_cat.shape != (n,) or not isinstance(thresholds, list) or len(thresholds) != n:
        return f"has a binning mapper that does not describe its {n} features"
    for f in np.flatnonzero(is_cat):
        cats = np.asarray(thresholds[f], dtype=np.float64)
        ok = cats.ndim == 1 and np.all((cats >= 0) & (cats < 32 * _BITSET_WORDS))
        if not ok or not np.all(cats == np.floor(cats)):
            return f"feature {f}: known categories outside 0..{32 * _BITSET_WORDS - 1}"
    for predictor in (p for it in predictors for p in (it or [])):
        nodes = getattr(predictor, "nodes", None)
        if not isinstance(nodes, np.ndarray) or "is_categorical" not in (nodes.dtype.names or ()):
            continue  # the predictor check reports it
        split = (nodes["is_leaf"] == 0) & (nodes["is_categorical"] != 0)
        feats = nodes["feature_idx"].astype(np.int64)[split]
        bad = feats[(feats < 0) | (feats >= n)]
        if len(bad) == 0:
            bad = feats[~is_cat.astype(bool)[feats]]
        if len(bad):
            return f"has a categorical split on feature {bad[0]}, not a categorical feature"
    return None


def _xgboost_problem(booster: Any) -> str | None:
    """The first defect of an XGBoost booster's trees (its own JSON dump), or None."""
    import json

    import numpy as np

    try:
        learner = json.loads(bytes(booster.save_raw("json")))["learner"]
        n_feat = int(learner["learner_model_param"]["num_feature"])
        gb = learner["gradient_booster"]
        model = gb.get("gbtree", gb)["model"] if gb.get("name") == "dart" else gb.get("model")
    except (ValueError, KeyError, TypeError) as exc:
        return f"is an XGBoost booster whose model cannot be read back ({exc})"
    for k, tree in enumerate((model or {}).get("trees", [])):
        left, right = np.asarray(tree["left_children"]), np.asarray(tree["right_children"])
        feat = np.asarray(tree["split_indices"])
        n = len(left)
        if right.shape != (n,) or feat.shape != (n,):
            return f"(XGBoost tree {k}) has node arrays of different lengths"
        idx = np.arange(n)
        inner = left != -1
        for child in (left, right):
            # XGBoost appends children after their parent: this also rules out cycles.
            for m in np.flatnonzero(inner & ((child <= idx) | (child >= n))):
                return f"(XGBoost tree {k}) node {m}: child index {child[m]} out of range"
        for m in np.flatnonzero(inner & ((feat < 0) | (feat >= n_feat))):
            return f"(XGBoost tree {k}) node {m}: feature index {feat[m]} out of [0, {n_feat})"
    return None


def _lightgbm_problem(booster: Any, n_features: Any) -> str | None:
    """The first defect of a LightGBM booster's trees (its own dump), or None."""
    try:
        dump = booster.dump_model()
        n_feat = int(dump["max_feature_idx"]) + 1
        trees = [t["tree_structure"] for t in dump["tree_info"]]
    except (ValueError, KeyError, TypeError) as exc:
        return f"is a LightGBM booster whose model cannot be read back ({exc})"
    if isinstance(n_features, int) and n_feat != n_features:
        return f"is a LightGBM booster on {n_feat} features but its estimator takes {n_features}"
    for k, root in enumerate(trees):
        stack = [root]
        while stack:  # iterative: a deep tree cannot exhaust the interpreter's stack
            node = stack.pop()
            if "split_feature" not in node:
                continue
            f = node["split_feature"]
            if not isinstance(f, int) or not 0 <= f < n_feat:
                return f"(LightGBM tree {k}) splits on feature {f}, outside [0, {n_feat})"
            stack += [node["left_child"], node["right_child"]]
    return None


def tree_problem(model: Any, max_depth: int = MAX_TREE_WALK_DEPTH) -> str | None:
    """``"tree N node M: ..."`` for the first defective tree anywhere inside ``model``
    (pipeline steps, transformers, ensembles, any attribute, list, dict or object array),
    or None when every tree is sound."""
    import numpy as np

    leaf_types = (str, bytes, int, float, complex, bool, type(None))
    seen: set[int] = set()
    count = 0
    estimators: list[Any] = []
    # (object, depth, its holder's own n_features_in_, nearest n_features above it)
    stack: list[tuple[Any, int, Any, Any]] = [(model, 0, None, None)]
    while stack:
        obj, depth, holder_n, above_n = stack.pop()
        if isinstance(obj, leaf_types) or isinstance(obj, type) or id(obj) in seen:
            continue
        seen.add(id(obj))
        if depth > max_depth:
            return f"structure nests deeper than {max_depth} levels"
        kind = (type(obj).__module__, type(obj).__name__)
        problem = None
        if kind == ("sklearn.tree._tree", "Tree"):
            count += 1
            problem = _sklearn_tree_problem(obj, holder_n)
        elif kind[1] == "TreePredictor" and kind[0].startswith("sklearn.ensemble."):
            count += 1
            problem = _hgb_predictor_problem(obj, above_n)
        elif kind[0] == _HGB_MODULE:
            # Checked after the walk: a defect of one of its trees is named more precisely.
            estimators.append(obj)
        elif kind == ("xgboost.core", "Booster"):
            count += 1
            problem = _xgboost_problem(obj)
        elif kind == ("lightgbm.basic", "Booster"):
            count += 1
            problem = _lightgbm_problem(obj, above_n)
        if problem:
            return f"tree {count} {problem}"
        if isinstance(obj, np.ndarray):
            children = list(obj.flat) if obj.dtype == object else []
        elif isinstance(obj, dict):
            children = list(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            children = list(obj)
        else:
            attrs = getattr(obj, "__dict__", None)
            children = list(attrs.values()) if isinstance(attrs, dict) else []
            if isinstance(attrs, dict):
                own = attrs.get("n_features_in_")
                holder_n = own if isinstance(own, int) else None
                # HistGradientBoosting records the width its trees were grown on.
                built = attrs.get("_n_features", own)
                above_n = built if isinstance(built, int) else above_n
        stack += [(child, depth + 1, holder_n, above_n) for child in reversed(children)]
    for est in estimators:
        problem = _hgb_estimator_problem(est)
        if problem:
            return f"{type(est).__name__} {problem}"
    return None


def check_trees(model: Any, *, ref: str) -> None:
    """InvalidInput when any tree inside ``model`` is structurally unsound (``tree_problem``)."""
    from core.errors import InvalidInput

    problem = tree_problem(model)
    if problem:
        raise InvalidInput(f"{ref}: the model's {problem}; refusing it", hint=TREE_FIX_HINT)
