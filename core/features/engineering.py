"""Feature engineering: profile a table, generate candidates per type, select by mutual
information or permutation importance, validate (target leakage, missingness, train/serve
skew risk), and store the selected features as a new feature-view version.

Everything that is fitted (group statistics, reference dates, selection scores) is fitted on
the training split only, with a fixed seed; the validation split measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from core.errors import InvalidInput
from core.features.profile import (
    BOOLEAN,
    CATEGORICAL,
    DATETIME,
    NUMERIC,
    ColumnProfile,
    as_datetime,
    profile_frame,
)

FEATURE_TYPES = ("base", "temporal", "aggregation", "interaction")
LEAKAGE_AUC = 0.98  # a single feature that separates the target this well is a leak
LEAKAGE_R2 = 0.95
MAX_MISSING = 0.5
SKEW_KS_P = 0.001


@dataclass
class Candidate:
    name: str
    kind: str  # base | temporal | aggregation | interaction | missing_indicator
    sources: list[str]
    values: Any  # pandas Series over all rows
    notes: list[str] = field(default_factory=list)


class FeatureDecision(BaseModel):
    name: str
    kind: str
    sources: list[str]
    score: float | None
    selected: bool
    reasons: list[str]
    warnings: list[str]


class EngineeringReport(BaseModel):
    rows: int
    label_column: str
    task: str
    seed: int
    selection_method: str
    profile: list[ColumnProfile]
    candidates: dict[str, int]
    decisions: list[FeatureDecision]
    selected: list[str]
    rejected: dict[str, list[str]]
    warnings: list[str]
    stored: dict[str, Any] | None = None


def _task(y: Any) -> str:
    import pandas as pd

    if pd.api.types.is_float_dtype(y) and y.nunique() > 20:
        return "regression"
    return "classification"


def generate_candidates(
    frame: Any, label_column: str, profiles: list[ColumnProfile], types: list[str], train_idx: Any
) -> list[Candidate]:
    import numpy as np

    kinds = {p.name: p.kind for p in profiles if p.name != label_column}
    numeric = [c for c, k in kinds.items() if k in (NUMERIC, BOOLEAN)]
    cats = [c for c, k in kinds.items() if k == CATEGORICAL]
    out: list[Candidate] = []
    # Base features (always: the others are built from them).
    for c in numeric:
        out.append(Candidate(c, "base", [c], frame[c].astype(float)))
        if frame[c].isna().any():
            out.append(
                Candidate(f"{c}__missing", "missing_indicator", [c], frame[c].isna().astype(float))
            )
    for c in cats:
        freq = frame[c].iloc[train_idx].value_counts(normalize=True)
        out.append(
            Candidate(f"{c}__freq", "base", [c], frame[c].map(freq).astype(float).fillna(0.0))
        )
    if "temporal" in types:
        for c in [c for c, k in kinds.items() if k == DATETIME]:
            ts = as_datetime(frame[c])
            ref = ts.iloc[train_idx].max()
            out += [
                Candidate(f"{c}__month", "temporal", [c], ts.dt.month.astype(float)),
                Candidate(f"{c}__dayofweek", "temporal", [c], ts.dt.day_of_week.astype(float)),
                Candidate(f"{c}__hour", "temporal", [c], ts.dt.hour.astype(float)),
                Candidate(
                    f"{c}__days_before_ref",
                    "temporal",
                    [c],
                    (ref - ts).dt.total_seconds() / 86400.0,
                    [f"days before the training data's latest {c} ({ref.isoformat()})"],
                ),
            ]
    if "aggregation" in types:
        for g in cats:
            for c in numeric:
                means = frame[c].iloc[train_idx].groupby(frame[g].iloc[train_idx]).mean()
                out.append(
                    Candidate(
                        f"{c}__mean_by_{g}",
                        "aggregation",
                        [c, g],
                        frame[g].map(means).astype(float),
                        [f"mean of {c} per {g}, fitted on the training split"],
                    )
                )
            counts = frame[g].iloc[train_idx].value_counts()
            out.append(
                Candidate(
                    f"{g}__count",
                    "aggregation",
                    [g],
                    frame[g].map(counts).astype(float).fillna(0.0),
                )
            )
    if "interaction" in types and len(numeric) >= 2:
        ranked = _rank_numeric(frame, numeric, label_column, train_idx)[:5]
        for i, a in enumerate(ranked):
            for b in ranked[i + 1 :]:
                x, y = frame[a].astype(float), frame[b].astype(float)
                out.append(Candidate(f"{a}__x__{b}", "interaction", [a, b], x * y))
                out.append(
                    Candidate(f"{a}__per__{b}", "interaction", [a, b], x / (np.abs(y) + 1e-9))
                )
    return [c for c in out if c.values.nunique(dropna=True) > 1]


def _rank_numeric(frame: Any, numeric: list[str], label_column: str, train_idx: Any) -> list[str]:
    import pandas as pd

    y = frame[label_column].iloc[train_idx]
    if not pd.api.types.is_numeric_dtype(y):
        y = y.astype("category").cat.codes
    corr = {
        c: abs(frame[c].iloc[train_idx].astype(float).corr(y.astype(float)) or 0.0) for c in numeric
    }
    return sorted(numeric, key=lambda c: -(corr[c] if corr[c] == corr[c] else 0.0))


def _leakage(values: Any, y: Any, task: str, train_idx: Any, val_idx: Any) -> str | None:
    """A reason when one feature alone predicts the target (near-)perfectly on held-out rows."""
    import numpy as np
    from sklearn.metrics import r2_score, roc_auc_score
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    x = values.to_numpy(dtype=float).reshape(-1, 1)
    x = np.where(np.isnan(x), -1e12, x)  # missingness itself can leak
    if task == "classification":
        codes = y.astype("category").cat.codes.to_numpy()
        if len(np.unique(codes[val_idx])) < 2:
            return None
        tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(
            x[train_idx], codes[train_idx]
        )
        proba = tree.predict_proba(x[val_idx])
        if proba.shape[1] == 2:
            auc = roc_auc_score(codes[val_idx], proba[:, 1])
        else:
            auc = roc_auc_score(codes[val_idx], proba, multi_class="ovr", labels=tree.classes_)
        if auc >= LEAKAGE_AUC:
            return f"target leakage: alone it separates the target with held-out AUC {auc:.3f} (>= {LEAKAGE_AUC})"
        return None
    tree = DecisionTreeRegressor(max_depth=4, random_state=0).fit(x[train_idx], y.iloc[train_idx])
    r2 = r2_score(y.iloc[val_idx], tree.predict(x[val_idx]))
    if r2 >= LEAKAGE_R2:
        return f"target leakage: alone it explains held-out R2 {r2:.3f} (>= {LEAKAGE_R2})"
    return None


def _scores(
    X: Any, y: Any, task: str, method: str, train_idx: Any, val_idx: Any, seed: int
) -> dict[str, float]:
    import numpy as np

    Xf = X.fillna(X.iloc[train_idx].median()).fillna(0.0)
    if method == "mutual_info":
        from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

        fn = mutual_info_classif if task == "classification" else mutual_info_regression
        label_column = (
            y.astype("category").cat.codes if task == "classification" else y.astype(float)
        )
        mi = fn(Xf.iloc[train_idx], label_column.iloc[train_idx], random_state=seed)
        return {c: float(v) for c, v in zip(X.columns, mi, strict=True)}
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.inspection import permutation_importance

    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    model = cls(n_estimators=100, random_state=seed, n_jobs=1).fit(
        Xf.iloc[train_idx], y.iloc[train_idx]
    )
    imp = permutation_importance(
        model, Xf.iloc[val_idx], y.iloc[val_idx], n_repeats=5, random_state=seed, n_jobs=1
    )
    return {c: float(np.mean(v)) for c, v in zip(X.columns, imp.importances, strict=True)}


def _skew_warning(values: Any, train_idx: Any, val_idx: Any) -> str | None:
    from scipy.stats import ks_2samp

    a, b = values.iloc[train_idx].dropna(), values.iloc[val_idx].dropna()
    if len(a) < 20 or len(b) < 20:
        return None
    p = ks_2samp(a, b).pvalue
    if p < SKEW_KS_P:
        return f"train/serve skew risk: its distribution differs between the splits (KS p={p:.2g})"
    return None


def engineer_features(
    frame: Any,
    label_column: str,
    *,
    feature_types: list[str] | None = None,
    method: str = "mutual_info",
    max_features: int = 20,
    min_score: float = 0.001,
    seed: int = 42,
    validation_fraction: float = 0.25,
    exclude: list[str] | None = None,
) -> tuple[EngineeringReport, Any]:
    """(report, frame of the selected features over all rows). Columns in ``exclude`` (ids,
    event times) are profiled but never become features."""
    import numpy as np

    types = list(feature_types or ["temporal", "aggregation", "interaction"])
    unknown = set(types) - set(FEATURE_TYPES)
    if unknown:
        raise InvalidInput(
            f"unknown feature type(s) {', '.join(sorted(unknown))}",
            hint=f"Use: {', '.join(FEATURE_TYPES)}.",
        )
    if method not in ("mutual_info", "permutation"):
        raise InvalidInput("method must be mutual_info or permutation")
    if label_column not in frame.columns:
        raise InvalidInput(
            f"label column {label_column!r} is not in the dataset",
            hint=f"Columns: {', '.join(map(str, frame.columns[:30]))}.",
        )
    if frame[label_column].isna().any():
        raise InvalidInput(
            f"label column {label_column!r} has {int(frame[label_column].isna().sum())} missing values"
        )
    if len(frame) < 40:
        raise InvalidInput(
            f"{len(frame)} rows are too few to select and validate features (need 40)"
        )
    frame = frame.reset_index(drop=True)
    y = frame[label_column]
    task = _task(y)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame))
    cut = int(round(len(frame) * (1 - validation_fraction)))
    train_idx, val_idx = np.sort(order[:cut]), np.sort(order[cut:])
    profiles = profile_frame(frame)
    usable = frame.drop(columns=[c for c in (exclude or []) if c in frame.columns])
    cands = generate_candidates(
        usable, label_column, [p for p in profiles if p.name in usable.columns], types, train_idx
    )
    decisions: dict[str, FeatureDecision] = {}
    leaky_sources: set[str] = set()
    by_name = {c.name: c for c in cands}
    for c in cands:
        reasons, warns = [], list(c.notes)
        missing = float(c.values.isna().mean())
        if missing > MAX_MISSING:
            reasons.append(f"missingness {missing:.0%} > {MAX_MISSING:.0%}")
        leak = _leakage(c.values, y, task, train_idx, val_idx)
        if leak:
            reasons.append(leak)
            if c.kind in ("base", "missing_indicator"):
                leaky_sources.update(c.sources)
        skew = _skew_warning(c.values, train_idx, val_idx)
        if skew:
            warns.append(skew)
        if c.kind == "aggregation":
            warns.append(
                "train/serve skew risk: group statistics must be served from this feature-store version, not recomputed online"
            )
        if c.kind == "temporal" and "days_before_ref" in c.name:
            warns.append(
                "train/serve skew risk: relative to a fixed reference date; recompute at serving time with the same reference"
            )
        decisions[c.name] = FeatureDecision(
            name=c.name,
            kind=c.kind,
            sources=c.sources,
            score=None,
            selected=False,
            reasons=reasons,
            warnings=warns,
        )
    for d in decisions.values():  # anything built from a leaking column leaks too
        tainted = sorted(set(d.sources) & leaky_sources)
        if tainted and not any(r.startswith("target leakage") for r in d.reasons):
            d.reasons.append(f"target leakage: built from leaking column {', '.join(tainted)}")
    kept = [n for n, d in decisions.items() if not d.reasons]
    if kept:
        X = usable[[]].assign(**{n: by_name[n].values for n in kept})
        for name, s in _scores(X, y, task, method, train_idx, val_idx, seed).items():
            decisions[name].score = round(s, 6)
    ranked = sorted(
        (n for n in kept if (decisions[n].score or 0) > min_score),
        key=lambda n: -(decisions[n].score or 0),
    )
    for n in kept:
        if n not in ranked:
            decisions[n].reasons.append(f"{method} score {decisions[n].score} <= {min_score}")
    for n in ranked[max_features:]:
        decisions[n].reasons.append(f"outside the top {max_features} by {method}")
    selected = ranked[:max_features]
    for n in selected:
        decisions[n].selected = True
    counts: dict[str, int] = {}
    for c in cands:
        counts[c.kind] = counts.get(c.kind, 0) + 1
    report = EngineeringReport(
        rows=len(frame),
        label_column=label_column,
        task=task,
        seed=seed,
        selection_method=method,
        profile=profiles,
        candidates=counts,
        decisions=sorted(
            decisions.values(), key=lambda d: (not d.selected, -(d.score or 0), d.name)
        ),
        selected=selected,
        rejected={n: d.reasons for n, d in decisions.items() if not d.selected},
        warnings=sorted({w for n in selected for w in decisions[n].warnings}),
    )
    return report, usable[[]].assign(**{n: by_name[n].values for n in selected})


def next_version(store: Any, view: str) -> str:
    """One more than the highest integer version of ``view`` (``1`` for a new view)."""
    from core.errors import NotFound

    try:
        versions = [v.version for v in store.describe(view)]
    except NotFound:
        return "1"
    numbers = [int(v) for v in versions if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def store_selected(
    store: Any,
    report: EngineeringReport,
    selected: Any,
    frame: Any,
    *,
    view: str,
    version: str | None = None,
    entity_column: str | None = None,
    time_column: str | None = None,
) -> dict[str, Any]:
    """Push the selected features (one row per entity, at its event time) as a new version
    of ``view`` with metadata that records how they were chosen and checked."""
    if not report.selected:
        raise InvalidInput(
            "no feature survived selection and validation: nothing was stored",
            hint="See the rejected features and their reasons in the report.",
        )
    version = version or next_version(store, view)
    frame = frame.reset_index(drop=True)
    if entity_column is not None:
        if entity_column not in frame.columns:
            raise InvalidInput(f"entity column {entity_column!r} is not in the dataset")
        ids = frame[entity_column].astype(str)
        if ids.duplicated().any():
            raise InvalidInput(f"entity column {entity_column!r} has duplicate values")
    else:
        ids = frame.index.to_series().astype(str)
    times = None
    if time_column is not None:
        if time_column not in frame.columns:
            raise InvalidInput(f"time column {time_column!r} is not in the dataset")
        times = as_datetime(frame[time_column])
        if times is None or times.isna().any():
            raise InvalidInput(f"time column {time_column!r} has values that are not times")
    note = (
        f"selected by {report.selection_method} on a seeded split (seed {report.seed}) of "
        f"{report.rows} rows for label column {report.label_column}; rejected {len(report.rejected)} "
        "candidates (leakage, missingness, low score); "
        + (f"warnings: {'; '.join(report.warnings)}" if report.warnings else "no warnings")
    )
    rows = []
    records = selected.to_dict(orient="records")
    for i, rec in enumerate(records):
        feats = {k: (None if v != v else float(v)) for k, v in rec.items()}
        rows.append(
            {
                "entity_id": ids.iloc[i],
                "features": feats,
                "event_time": times.iloc[i].to_pydatetime() if times is not None else None,
            }
        )
    store.push_many(
        rows,
        view,
        version,
        implementation_status="IMPLEMENTED",
        validation_note=note[:4000],
        description=f"ml-feature-engineering for label column {report.label_column}",
    )
    return {"view": view, "version": version, "rows": len(rows), "features": report.selected}
