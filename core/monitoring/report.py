"""One version's monitoring report over a window: data drift, prediction drift, estimated and
realized performance, and SLOs, each saying plainly when there is not enough to judge."""

from __future__ import annotations

from typing import Any

import numpy as np

from core.monitoring.drift import CATEGORICAL, NUMERIC, DriftConfig, dataset_drift
from core.monitoring.performance import Reference, estimate_performance, realized_performance
from core.monitoring.profile import ReferenceProfile
from core.monitoring.slo import TIMELINE_BUCKETS, bucket_index, timeline, version_slo
from core.monitoring.window import LogWindow, decode_features, decode_outputs, numeric_column

PLOT_VALUES = 5000  # current values kept per feature for the HTML histograms
PREDICTION = "prediction"


def drift_config(rules: dict[str, Any], overrides: dict[str, Any] | None = None) -> DriftConfig:
    """The policy's drift rules, then a caller's report-only overrides."""
    d = rules.get("drift", {})
    cfg = DriftConfig(
        drift_share=float(d.get("drift_share", 0.5)),
        small_reference_rows=int(d.get("small_reference_rows", 1000)),
        min_rows=int(d.get("min_rows", 30)),
    )
    cfg.thresholds.update({k: float(v) for k, v in (d.get("thresholds") or {}).items()})
    o = overrides or {}
    if o.get("data_drift_threshold") is not None:
        cfg.drift_share = float(o["data_drift_threshold"])
    if o.get("prediction_drift_threshold") is not None:
        cfg.column_thresholds[PREDICTION] = float(o["prediction_drift_threshold"])
    return cfg


def _served_rows(window: LogWindow, version: str) -> list[int]:
    ok = window.mask(version) & (window.status == 200)
    return [int(i) for i in np.flatnonzero(ok)]


def _current_columns(
    window: LogWindow, profile: ReferenceProfile, rows: list[int]
) -> tuple[dict[str, Any], int, list[str]]:
    decoded = decode_features(window.features, profile.features, rows)
    current: dict[str, Any] = {}
    for col, values in decoded.columns.items():
        kind = profile.kinds.get(col)
        if kind == NUMERIC or (
            kind is None and all(isinstance(v, int | float) or v is None for v in values)
        ):
            current[col] = numeric_column(values)
        else:
            current[col] = np.array(values, dtype=object)
    return current, decoded.n_rows, decoded.problems


def _prediction_reference(profile: ReferenceProfile) -> tuple[str, Any] | None:
    p = profile.probabilities
    if p is not None and p.ndim == 2 and p.shape[1] == 2:
        return NUMERIC, p[:, 1].astype(float)
    if profile.predictions is not None:
        return CATEGORICAL, profile.predictions
    return None


def _prediction_current(kind: str, preds: list[Any], probas: list[Any]) -> Any:
    if kind == NUMERIC:
        return np.array(
            [p[1] if isinstance(p, list) and len(p) == 2 else np.nan for p in probas], dtype=float
        )
    return np.array(preds, dtype=object)


def version_report(
    window: LogWindow,
    profile: ReferenceProfile | None,
    version: str,
    *,
    rules: dict[str, Any],
    overrides: dict[str, Any] | None = None,
    feedback: list[dict[str, Any]] | None = None,
    classes: list[Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report of one version, and the arrays the HTML plots draw."""
    cfg = drift_config(rules, overrides)
    rows = _served_rows(window, version)
    out: dict[str, Any] = {"version": version, "answered_requests": len(rows), "problems": []}
    plots: dict[str, Any] = {"features": {}, "timeline": timeline(window, version)}
    out["slo"] = version_slo(window, version)
    # The buckets travel in the report itself, so every reader (the console's plots, the
    # CLI's --json) draws from the same object.
    out["timeline"] = plots["timeline"]
    preds, probas = decode_outputs(window.output, rows)
    if profile is None:
        out["data_drift"] = {"status": "no_reference_profile"}
        out["prediction_drift"] = {"status": "no_reference_profile"}
        out["problems"].append("no reference profile: drift cannot be measured")
    elif not rows:
        out["data_drift"] = {
            "status": "empty_window",
            "message": "no answered requests in the window",
        }
        out["prediction_drift"] = {"status": "empty_window"}
    else:
        current, n_rows, problems = _current_columns(window, profile, rows)
        out["problems"] += problems
        drift = dataset_drift(profile.samples, current, profile.kinds, cfg, workers=1)
        out["data_drift"] = {"status": "measured", "current_rows": n_rows, **drift.as_dict()}
        for col in profile.features:
            if profile.kinds[col] == NUMERIC and col in current:
                values = current[col]
                plots["features"][col] = (profile.samples[col], values[:PLOT_VALUES])
        out["prediction_drift"] = _prediction_drift(profile, preds, probas, cfg)
    reference = _estimation_reference(profile, classes)
    out["estimated_performance"] = estimate_performance(
        probas, predictions=preds, reference=reference,
        min_rows=int(rules.get("drift", {}).get("min_rows", 30)),
    )  # fmt: skip
    out["realized_performance"] = _realized(window, rows, preds, feedback or [])
    out["performance_timeline"] = performance_timeline(window, rows, feedback or [], reference)
    plots["drift_scores"] = [
        (c["column"], c["score"], c["threshold"], c["method"], c["drifted"])
        for c in out.get("data_drift", {}).get("columns", [])
        if c.get("score") is not None
    ]
    return out, plots


def _estimation_reference(profile: ReferenceProfile | None, classes: list[Any] | None) -> Reference:
    """What CBPE calibrates on: the reference sample's probabilities, labels, predictions."""
    if profile is None:
        return Reference(classes=classes)
    return Reference(profile.probabilities, profile.labels, profile.predictions, classes)


def _prediction_drift(
    profile: ReferenceProfile, preds: list[Any], probas: list[Any], cfg: DriftConfig
) -> dict[str, Any]:
    ref = _prediction_reference(profile)
    if ref is None:
        note = "; ".join(n for n in profile.notes if "prediction" in n) or "not computed"
        return {"status": "no_reference_predictions", "message": note}
    kind, values = ref
    current = _prediction_current(kind, preds, probas)
    result = dataset_drift(
        {PREDICTION: values}, {PREDICTION: current}, {PREDICTION: kind}, cfg, workers=1
    )
    col = result.columns[0].as_dict()
    col["on"] = "positive-class probability" if kind == NUMERIC else "predicted label"
    return col


def _realized(
    window: LogWindow, rows: list[int], preds: list[Any], feedback: list[dict[str, Any]]
) -> dict[str, Any]:
    """Labels joined to this version's answered single-row predictions by prediction id."""
    by_id: dict[str, Any] = {}
    for i in rows:
        out = window.output[i] or {}
        by_id[window.request_id[i]] = out.get("prediction")
    in_window = set(window.request_id)
    y_true, y_pred = [], []
    unknown = 0
    for fb in feedback:
        if fb.get("label") is None:
            continue
        pid = fb["prediction_id"]
        if pid not in in_window:
            unknown += 1
            continue
        if pid not in by_id:
            continue  # another version's prediction (or a failed request)
        pred, label = by_id[pid], fb["label"]
        if isinstance(pred, list):
            if isinstance(label, list) and len(label) == len(pred):
                y_pred += pred
                y_true += label
        else:
            y_pred.append(pred)
            y_true.append(label)
    return realized_performance(y_pred, y_true, unknown_ids=unknown)


def performance_timeline(
    window: LogWindow,
    rows: list[int],
    feedback: list[dict[str, Any]],
    reference: Reference | None = None,
    buckets: int = TIMELINE_BUCKETS,
) -> list[dict[str, Any]]:
    """Per time bucket (the SLO timeline's buckets): the estimated accuracy (HEURISTIC, CBPE
    calibrated on ``reference``) beside the realized one (labels joined by prediction id)."""
    edges = np.linspace(window.since, window.until, buckets + 1)
    idx = bucket_index(window, buckets)
    labels = {fb["prediction_id"]: fb["label"] for fb in feedback if fb.get("label") is not None}
    out = []
    for b in range(buckets):
        in_bucket = [i for i in rows if idx[i] == b]
        b_preds, probas = decode_outputs(window.output, in_bucket)
        est = (
            estimate_performance(probas, predictions=b_preds, reference=reference, min_rows=1)
            if probas
            else {}
        )
        y_pred, y_true = [], []
        for i in in_bucket:
            rid = window.request_id[i]
            pred = (window.output[i] or {}).get("prediction")
            if rid in labels and not isinstance(pred, list):
                y_pred.append(pred)
                y_true.append(labels[rid])
        real = realized_performance(y_pred, y_true)
        out.append(
            {
                "start": float(edges[b]),
                "end": float(edges[b + 1]),
                "predictions": len(probas),
                "estimated_accuracy": (est.get("metrics") or {}).get("accuracy"),
                "labels": len(y_true),
                "realized_accuracy": (real.get("metrics") or {}).get("accuracy"),
            }
        )
    return out
