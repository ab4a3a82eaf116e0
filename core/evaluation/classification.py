"""Classification metrics from one confusion-matrix bincount and one sort of the scores.

Values equal scikit-learn's (cross-checked in tests/test_evaluation_classification.py). A metric
that is undefined on the data (one class present, never-predicted class, NaN scores) is put in
``unavailable`` with the reason instead of a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import InvalidInput
from core.evaluation._inputs import (
    as_1d,
    check_lengths,
    describe_rows,
    json_label,
    missing_rows,
    reject_missing_labels,
)
from core.evaluation.curves import BinaryCurve, binary_curve, calibration, curves_for
from core.evaluation.registry import register_builtin
from core.evaluation.result import Calibration, ConfusionMatrix, Curve

_KIND = "classification"
for _name, _desc in (
    ("accuracy", "fraction of rows predicted correctly"),
    ("precision", "binary: positive class; multiclass: macro average"),
    ("recall", "binary: positive class; multiclass: macro average"),
    ("f1", "binary: positive class; multiclass: macro average"),
):
    register_builtin(_name, _KIND, higher_is_better=True, description=_desc)
for _base in ("precision", "recall", "f1"):
    for _avg in ("macro", "micro", "weighted"):
        register_builtin(
            f"{_base}_{_avg}", _KIND, higher_is_better=True, description=f"{_avg} {_base}"
        )
register_builtin(
    "auc_roc", _KIND, higher_is_better=True, needs_score=True, description="ROC AUC (OvR macro)"
)
register_builtin(
    "average_precision", _KIND, higher_is_better=True, needs_score=True, description="PR AUC"
)
register_builtin("log_loss", _KIND, higher_is_better=False, needs_score=True, description="")
register_builtin(
    "brier", _KIND, higher_is_better=False, needs_score=True, description="Brier score"
)
register_builtin(
    "ece", _KIND, higher_is_better=False, needs_score=True, description="calibration error"
)

_EPS = float(np.finfo(np.float64).eps)
# Probability rows may come as float32 (XGBoost, ONNX Runtime): a row sums to 1 only within
# float32 rounding. scikit-learn's log_loss accepts float32 rows within sqrt(eps32); so do we,
# for every dtype (a float32 row cast to float64 keeps its float32 rounding).
PROBA_SUM_TOLERANCE = float(np.sqrt(np.finfo(np.float32).eps))


@dataclass
class EncodedLabels:
    """Labels as integer codes into ``classes`` (declared order, or sorted observed labels)."""

    classes: np.ndarray
    true_codes: np.ndarray
    pred_codes: np.ndarray | None
    pred_problem: str | None = None  # why label-based metrics are unavailable
    pos_index: int | None = None
    pos_problem: str | None = None  # why positive-class metrics are unavailable

    @property
    def k(self) -> int:
        return len(self.classes)

    @property
    def binary(self) -> bool:
        return self.k <= 2

    @property
    def pos_label(self) -> Any:
        return None if self.pos_index is None else self.classes[self.pos_index]


def _map_to_classes(values: np.ndarray, classes: np.ndarray, name: str) -> np.ndarray:
    order = np.argsort(classes, kind="stable")
    ordered = classes[order]
    try:
        pos = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
        bad = np.flatnonzero(ordered[pos] != values)
    except TypeError as exc:
        raise InvalidInput(
            f"{name} and labels mix types ({exc})", hint="Use one label type (all int or all str)."
        ) from exc
    if len(bad):
        raise InvalidInput(
            f"{name} contains label {json_label(values[bad[0]])!r} that is not in labels "
            f"{[json_label(c) for c in classes]} ({describe_rows(bad)})",
            hint="Pass the model's full class list as labels, or fix the label values.",
        )
    return order[pos]


def _observed(t: np.ndarray, p: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, Any]:
    """Sorted observed classes and codes; O(n) for small non-negative integer labels."""
    arrays = [t] if p is None else [t, p]
    if all(a.dtype.kind in "biu" for a in arrays):
        as_int = [a.astype(np.int64, copy=False) for a in arrays]
        lo = min(int(a.min()) for a in as_int)
        hi = max(int(a.max()) for a in as_int)
        if hi - lo <= 1 << 20:
            present = np.zeros(hi - lo + 1, dtype=bool)
            for a in as_int:
                present |= np.bincount(a - lo, minlength=hi - lo + 1) > 0
            values = np.flatnonzero(present)
            lut = np.full(hi - lo + 1, -1, dtype=np.int64)
            lut[values] = np.arange(len(values))
            classes = (values + lo).astype(np.result_type(*arrays))
            codes = [lut[a - lo] for a in as_int]
            return classes, codes[0], None if p is None else codes[1]
    try:
        joined = np.concatenate(arrays)
        classes, inverse = np.unique(joined, return_inverse=True)
    except TypeError as exc:
        raise InvalidInput(
            f"labels mix types that cannot be compared ({exc})",
            hint="Use one label type for y_true and y_pred (all int or all str).",
        ) from exc
    n = len(t)
    return classes, inverse[:n], None if p is None else inverse[n:]


def _is_subset(classes: np.ndarray, allowed: set) -> bool:
    return classes.dtype.kind in "biuf" and {c.item() for c in classes} <= allowed


def encode_labels(
    y_true: np.ndarray,
    y_pred: np.ndarray | None,
    labels: Any = None,
    pos_label: Any = None,
) -> EncodedLabels:
    """Encode labels and predictions; decide binary vs multiclass and the positive class."""
    reject_missing_labels("y_true", y_true)
    pred_problem = None
    if y_pred is not None:
        bad = missing_rows(y_pred)
        if len(bad):
            pred_problem = f"predictions contain missing values (NaN/None) in {describe_rows(bad)}"
            y_pred = None
    if labels is not None:
        classes = np.asarray(labels)
        if classes.ndim != 1 or len(classes) == 0 or len(np.unique(classes)) != len(classes):
            raise InvalidInput("labels must be a non-empty list of distinct class labels")
        t = _map_to_classes(y_true, classes, "y_true")
        p = None if y_pred is None else _map_to_classes(y_pred, classes, "y_pred")
    else:
        classes, t, p = _observed(y_true, y_pred)
    enc = EncodedLabels(classes, t, p, pred_problem)
    if enc.binary:
        _choose_positive(enc, pos_label, declared=labels is not None)
    elif pos_label is not None:
        raise InvalidInput(
            f"pos_label={pos_label!r} was given but there are {enc.k} classes",
            hint="pos_label only applies to binary classification.",
        )
    return enc


def _choose_positive(enc: EncodedLabels, pos_label: Any, *, declared: bool) -> None:
    classes = enc.classes
    values = [c.item() if isinstance(c, np.generic) else c for c in classes]
    if pos_label is None:
        if _is_subset(classes, {0, 1}) or _is_subset(classes, {-1, 1}):
            pos_label = 1  # scikit-learn's convention for {0,1} and {-1,1} labels
        elif len(classes) == 2:
            pos_label = values[1]  # the greater label, as in basic.classification_metrics
        else:
            enc.pos_problem = (
                f"only one class ({values[0]!r}) is present and no pos_label was given, "
                "so the positive class is unknown"
            )
            return
    if pos_label in values:
        enc.pos_index = values.index(pos_label)
        return
    if declared or len(classes) == 2:
        raise InvalidInput(
            f"pos_label {pos_label!r} is not one of the labels {values}",
            hint="Pass the positive class exactly as it appears in y_true.",
        )
    # One observed class plus a known positive label: the label set is {class, positive}.
    try:
        expanded = np.asarray(sorted([values[0], pos_label]))
    except TypeError as exc:
        raise InvalidInput(f"pos_label {pos_label!r} has a different type than the labels") from exc
    remap = np.searchsorted(expanded, classes)
    enc.classes = expanded
    enc.true_codes = remap[enc.true_codes]
    if enc.pred_codes is not None:
        enc.pred_codes = remap[enc.pred_codes]
    enc.pos_index = int(np.flatnonzero(expanded == pos_label)[0])


# --- metrics from confusion matrices (batched, so fairness and bootstrap reuse them) -----------


def confusion_matrix_codes(t: np.ndarray, p: np.ndarray, k: int, groups: Any = None) -> np.ndarray:
    """(k, k) counts, or (G, k, k) when ``groups`` (codes, n_groups) is given: one bincount."""
    if groups is None:
        return np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    codes, n_groups = groups
    flat = (codes.astype(np.int64) * k + t) * k + p
    return np.bincount(flat, minlength=n_groups * k * k).reshape(n_groups, k, k)


def confusion_metrics(cm: np.ndarray, pos_index: int | None) -> dict[str, np.ndarray]:
    """Metrics of a batch of confusion matrices (B, k, k): NaN marks an undefined value.

    Macro averages run over classes seen in labels or predictions; an average that would need
    an undefined per-class value is itself undefined (scikit-learn would count it as 0).
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    total = support.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = {
            "precision": tp / predicted,
            "recall": tp / support,
            "f1": 2 * tp / (support + predicted),
        }
        out = {"accuracy": tp.sum(axis=1) / total}
        observed = (support + predicted) > 0
        n_observed = observed.sum(axis=1)
        for name, values in per.items():
            filled = np.nan_to_num(values)
            macro = np.where(observed, filled, 0.0).sum(axis=1) / n_observed
            undefined = np.any(observed & np.isnan(values), axis=1)
            out[f"{name}_macro"] = np.where(undefined, np.nan, macro)
            weighted = (filled * support).sum(axis=1) / total
            undefined_w = np.any((support > 0) & np.isnan(values), axis=1)
            out[f"{name}_weighted"] = np.where(undefined_w, np.nan, weighted)
        tp_sum = tp.sum(axis=1)
        out["precision_micro"] = tp_sum / predicted.sum(axis=1)
        out["recall_micro"] = tp_sum / total
        out["f1_micro"] = 2 * tp_sum / (predicted.sum(axis=1) + total)
        if pos_index is not None:
            out["precision"] = per["precision"][:, pos_index]
            out["recall"] = per["recall"][:, pos_index]
            out["f1"] = per["f1"][:, pos_index]
            negatives = total - support[:, pos_index]
            out["fpr"] = (predicted[:, pos_index] - tp[:, pos_index]) / negatives
            out["selection_rate"] = predicted[:, pos_index] / total
    for name, values in per.items():
        out[f"class_{name}"] = values
    out["class_support"] = support
    return out


def confusion_reason(name: str, cm: np.ndarray, classes: np.ndarray, pos_index: int | None) -> str:
    """Why metric ``name`` is undefined for one (k, k) confusion matrix."""
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    if cm.sum() == 0:
        return "no rows"
    if pos_index is not None and name in ("precision", "recall", "f1", "fpr", "selection_rate"):
        pos = json_label(classes[pos_index])
        if name == "precision":
            return f"no positive predictions (class {pos!r} never predicted)"
        if name == "recall":
            return f"no positive labels (class {pos!r} absent from y_true)"
        if name == "fpr":
            return "no negative labels (every row is positive)"
        return f"no positive labels and no positive predictions (class {pos!r})"
    base = name.split("_")[0]
    never_predicted = [
        json_label(c)
        for c, s, p in zip(classes, support, predicted, strict=True)
        if s > 0 and p == 0
    ]
    never_labeled = [
        json_label(c)
        for c, s, p in zip(classes, support, predicted, strict=True)
        if p > 0 and s == 0
    ]
    if base == "precision":
        return f"precision undefined for classes never predicted: {never_predicted}"
    if base == "recall":
        return f"recall undefined for predicted classes absent from y_true: {never_labeled}"
    return "undefined: a class has neither labels nor predictions"


# --- scores ------------------------------------------------------------------------------------


@dataclass
class Scores:
    """Validated scores: 1-D positive-class score (binary) or an (n, k) matrix (multiclass)."""

    values: np.ndarray
    problem: str | None = None  # why no score-based metric can be computed
    probability_problem: str | None = None  # why log loss / Brier / calibration cannot


def prepare_scores(y_score: Any, n: int, enc: EncodedLabels) -> Scores:
    s = y_score.to_numpy() if hasattr(y_score, "to_numpy") else np.asarray(y_score)
    if s.dtype.kind not in "biuf":
        raise InvalidInput(
            f"y_score must be numeric, got dtype {s.dtype}",
            hint="Pass predict_proba output (or decision_function scores).",
        )
    s = s.astype(np.float64, copy=False)
    if s.ndim == 0 or s.shape[0] != n:
        raise InvalidInput(
            f"y_true has {n} rows but y_score has {0 if s.ndim == 0 else s.shape[0]}",
            hint="Evaluate scores made on exactly the rows of the evaluation set.",
        )
    k = enc.k
    if enc.binary:
        if s.ndim == 2 and s.shape[1] == 1:
            s = s[:, 0]
        elif s.ndim == 2 and s.shape[1] == 2 and k == 2:
            s = s[:, enc.pos_index if enc.pos_index is not None else 1]
        elif s.ndim != 1:
            raise InvalidInput(
                f"y_score has shape {s.shape} but the task is binary ({k} classes)",
                hint="Pass the positive-class probability (n,) or predict_proba output (n, 2).",
            )
    elif s.ndim != 2 or s.shape[1] != k:
        raise InvalidInput(
            f"y_score has shape {s.shape} but there are {k} classes "
            f"{[json_label(c) for c in enc.classes]}",
            hint="Pass predict_proba output with one column per class and labels=model.classes_ "
            "when some classes are missing from this data.",
        )
    out = Scores(s)
    finite = np.isfinite(s) if s.ndim == 1 else np.isfinite(s).all(axis=1)
    if not finite.all():
        out.problem = (
            f"y_score contains NaN or infinite values in {describe_rows(np.flatnonzero(~finite))}"
        )
        return out
    lo, hi = float(s.min()), float(s.max())
    if lo < 0 or hi > 1:
        out.probability_problem = (
            f"y_score has values outside [0, 1] (min {lo:.4g}, max {hi:.4g}): these are "
            "decision scores, not probabilities"
        )
    elif s.ndim == 2:
        sums = s.sum(axis=1)
        off = np.flatnonzero(np.abs(sums - 1.0) > PROBA_SUM_TOLERANCE)
        if len(off):
            # repr: the shortest digits that round-trip, so the sum shown is never "1".
            out.probability_problem = (
                f"rows of y_score do not sum to 1 within {PROBA_SUM_TOLERANCE:.2g} "
                f"({describe_rows(off)}; row {off[0]} sums to {float(sums[off[0]])!r}); "
                "pass probabilities"
            )
    return out


def log_loss_rows(truth_codes: np.ndarray, scores: np.ndarray, pos_index: int | None) -> np.ndarray:
    """Per-row cross-entropy with scikit-learn's clipping to [eps, 1 - eps]."""
    if scores.ndim == 1:
        is_pos = truth_codes == pos_index
        p_true = np.where(is_pos, scores, 1.0 - scores)
    else:
        p_true = scores[np.arange(len(scores)), truth_codes]
    return -np.log(np.clip(p_true, _EPS, 1 - _EPS))


def brier_rows(truth_codes: np.ndarray, scores: np.ndarray, pos_index: int | None) -> np.ndarray:
    """Binary: (y - p)^2. Multiclass: sum_k (onehot - p_k)^2 (scikit-learn's unhalved form)."""
    if scores.ndim == 1:
        return ((truth_codes == pos_index) - scores) ** 2
    p_true = scores[np.arange(len(scores)), truth_codes]
    return (scores**2).sum(axis=1) - 2.0 * p_true + 1.0


# --- the whole classification pass -------------------------------------------------------------


@dataclass
class ClassificationOutcome:
    enc: EncodedLabels
    metrics: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    per_class_unavailable: dict[str, dict[str, str]] = field(default_factory=dict)
    confusion: ConfusionMatrix | None = None
    calibration: Calibration | None = None
    curves: list[Curve] = field(default_factory=list)
    scores: Scores | None = None
    curve: BinaryCurve | None = None  # binary positive-class curve, reused by thresholds
    score_order: np.ndarray | None = None  # ascending argsort of the positive score


_LABEL_METRICS = ["accuracy", "precision", "recall", "f1"] + [
    f"{b}_{a}" for b in ("precision", "recall", "f1") for a in ("macro", "micro", "weighted")
]
_SCORE_METRICS = ["auc_roc", "average_precision", "log_loss", "brier", "ece"]


def compute_classification(
    y_true: Any,
    y_pred: Any,
    y_score: Any = None,
    *,
    labels: Any = None,
    pos_label: Any = None,
    calibration_bins: int = 10,
    curve_points: int = 1000,
) -> ClassificationOutcome:
    """All built-in classification metrics in one pass (see module docstring)."""
    t_raw = as_1d("y_true", y_true)
    p_raw = as_1d("y_pred", y_pred)
    n = len(t_raw)
    check_lengths(n, y_pred=p_raw)
    if n == 0:
        raise InvalidInput("the evaluation set is empty", hint="Evaluate on at least one row.")
    enc = encode_labels(t_raw, p_raw, labels, pos_label)
    out = ClassificationOutcome(enc=enc)
    keys = [str(json_label(c)) for c in enc.classes]
    _label_metrics(out, keys)
    if y_score is None:
        for name in _SCORE_METRICS:
            out.unavailable[name] = "no scores given (the model has no predict_proba)"
    else:
        out.scores = prepare_scores(y_score, n, enc)
        _score_metrics(out, keys, calibration_bins, curve_points)
    return out


def _label_metrics(out: ClassificationOutcome, keys: list[str]) -> None:
    enc = out.enc
    if enc.pred_codes is None:
        for name in _LABEL_METRICS:
            out.unavailable[name] = enc.pred_problem or "no predictions"
        return
    cm = confusion_matrix_codes(enc.true_codes, enc.pred_codes, enc.k)
    out.confusion = ConfusionMatrix(
        labels=[json_label(c) for c in enc.classes], matrix=cm.astype(int).tolist()
    )
    values = confusion_metrics(cm[None], enc.pos_index)
    if enc.binary and enc.pos_index is None:
        for name in ("precision", "recall", "f1"):
            values.pop(name, None)
            out.unavailable[name] = enc.pos_problem or "positive class unknown"
    elif not enc.binary:
        for name in ("precision", "recall", "f1"):
            values[name] = values[f"{name}_macro"]
    for name in _LABEL_METRICS:
        if name not in values:
            continue
        v = float(values[name][0])
        if np.isnan(v):
            out.unavailable[name] = confusion_reason(name, cm, enc.classes, enc.pos_index)
        else:
            out.metrics[name] = v
    for i, key in enumerate(keys):
        row: dict[str, float] = {"support": float(values["class_support"][0, i])}
        missing: dict[str, str] = {}
        for name in ("precision", "recall", "f1"):
            v = float(values[f"class_{name}"][0, i])
            if np.isnan(v):
                missing[name] = confusion_reason(name, cm, enc.classes, i)
            else:
                row[name] = v
        out.per_class[key] = row
        if missing:
            out.per_class_unavailable[key] = missing


def _score_metrics(
    out: ClassificationOutcome, keys: list[str], n_bins: int, curve_points: int
) -> None:
    enc, sc = out.enc, out.scores
    assert sc is not None
    problem = sc.problem or (enc.pos_problem if enc.binary else None)
    if problem:
        for name in _SCORE_METRICS:
            out.unavailable[name] = problem
        return
    t = enc.true_codes
    if enc.binary:
        is_pos = t == enc.pos_index
        out.score_order = np.argsort(sc.values)
        out.curve = binary_curve(is_pos, sc.values, out.score_order)
        auc, ap = out.curve.roc_auc(), out.curve.average_precision()
        if auc is None:
            out.unavailable["auc_roc"] = "only one class present in y_true; ROC AUC is undefined"
        else:
            out.metrics["auc_roc"] = auc
            out.curves = curves_for(out.curve, "positive", curve_points)
        if ap is None:
            out.unavailable["average_precision"] = "no positive labels in y_true"
        else:
            out.metrics["average_precision"] = ap
        truth, prob = is_pos, sc.values
        kind = "positive_class"
    else:
        _multiclass_auc(out, keys, curve_points)
        pred = sc.values.argmax(axis=1)
        truth, prob = pred == t, sc.values.max(axis=1)
        kind = "top_label"
    if sc.probability_problem:
        for name in ("log_loss", "brier", "ece"):
            out.unavailable[name] = sc.probability_problem
        return
    out.metrics["log_loss"] = float(log_loss_rows(t, sc.values, enc.pos_index).mean())
    out.metrics["brier"] = float(brier_rows(t, sc.values, enc.pos_index).mean())
    out.calibration = calibration(truth, prob, n_bins, kind)
    assert out.calibration is not None  # n > 0 was checked
    out.metrics["ece"] = out.calibration.ece


def _multiclass_auc(out: ClassificationOutcome, keys: list[str], curve_points: int) -> None:
    enc, sc = out.enc, out.scores
    assert sc is not None
    aucs, aps, missing = [], [], []
    for i, key in enumerate(keys):
        curve = binary_curve(enc.true_codes == i, sc.values[:, i])
        auc, ap = curve.roc_auc(), curve.average_precision()
        if auc is None:
            reason = "class absent from y_true" if curve.n_pos == 0 else "every row is this class"
            out.per_class_unavailable.setdefault(key, {})["auc_roc"] = reason
            missing.append(key)
        else:
            out.per_class[key]["auc_roc"] = auc
            out.curves.extend(curves_for(curve, key, curve_points))
        aucs.append(auc)
        aps.append(ap)
    if missing:
        reason = f"one-vs-rest AUC undefined for classes {missing} (absent from y_true)"
        out.unavailable["auc_roc"] = reason
        out.unavailable["average_precision"] = reason
    else:
        out.metrics["auc_roc"] = float(np.mean(aucs))
        out.metrics["average_precision"] = float(np.mean(aps))
