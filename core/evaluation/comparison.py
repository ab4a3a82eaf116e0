"""Candidate vs. champion on the same rows: paired bootstrap CIs of metric differences.

Each bootstrap replicate is a vector of row multiplicities W (drawn once, shared by both
models, so the comparison is paired). Every built-in metric is evaluated for a whole chunk of
replicates at once from W: means as ``W @ per_row_loss``, confusion metrics from per-cell
totals, ROC AUC as a weighted Mann-Whitney statistic over the fixed score order. The caller
(the policy layer) supplies n_boot, confidence, min_effect and the primary metric.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from core.errors import InvalidInput
from core.evaluation._inputs import as_1d, check_lengths, missing_rows
from core.evaluation.classification import (
    EncodedLabels,
    Scores,
    brier_rows,
    confusion_metrics,
    encode_labels,
    log_loss_rows,
    prepare_scores,
)
from core.evaluation.registry import MetricUnavailable, get_metric, resolve_metric_names
from core.evaluation.regression import mape_reason, prepare_regression, r2_reason
from core.evaluation.result import ComparisonResult, MetricComparison, Verdict
from core.evaluation.text import exact_match_rows, prepare_text, token_counts, token_f1_rows

_CHUNK_CELLS = 2_000_000  # replicate-matrix entries per chunk: bounds memory at ~16 MB


class ComparisonParams(BaseModel):
    """Decision parameters; their defaults belong to the policy layer, so none are set here."""

    n_boot: int = Field(ge=50, le=200_000)
    confidence: float = Field(gt=0.5, lt=1.0)
    min_effect: float = Field(ge=0.0, description="Smallest difference that counts as a change.")
    primary_metric: str
    seed: int = 0


@dataclass
class Predictions:
    """One model's outputs on the evaluation rows."""

    y_pred: Any
    y_score: Any = None


def as_predictions(value: Any, name: str) -> Predictions:
    if isinstance(value, Predictions):
        return value
    if isinstance(value, Mapping) and "y_pred" in value:
        extra = set(value) - {"y_pred", "y_score"}
        if extra:
            raise InvalidInput(
                f"{name} has unknown keys {sorted(extra)}", hint="Use y_pred, y_score."
            )
        return Predictions(value["y_pred"], value.get("y_score"))
    raise InvalidInput(
        f"{name} must be Predictions(y_pred, y_score) or a mapping with 'y_pred'",
        hint="Give the champion's predictions on exactly the same rows as the candidate's.",
    )


Stat = Callable[[np.ndarray, dict], np.ndarray]  # (W (b, n), per-chunk cache) -> (b,)


def _mean_stat(values: np.ndarray) -> Stat:
    n = len(values)
    return lambda W, cache: W @ values / n


class _ConfusionCounter:
    """Per-replicate confusion matrices of one model, computed once per chunk for all metrics."""

    def __init__(self, t: np.ndarray, p: np.ndarray, k: int, pos: int | None) -> None:
        cells = t * k + p
        self.order = np.argsort(cells, kind="stable")
        sorted_cells = cells[self.order]
        self.starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
        self.present = sorted_cells[self.starts]
        self.k, self.pos = k, pos

    def stat(self, name: str) -> Stat:
        def stat(W: np.ndarray, cache: dict) -> np.ndarray:
            if self not in cache:
                counts = np.zeros((len(W), self.k * self.k))
                counts[:, self.present] = np.add.reduceat(W[:, self.order], self.starts, axis=1)
                cache[self] = confusion_metrics(counts.reshape(len(W), self.k, self.k), self.pos)
            return cache[self][name]

        return stat


def _auc_stat(is_pos: np.ndarray, score: np.ndarray) -> Stat:
    order = np.argsort(score, kind="stable")
    s = score[order]
    pos = is_pos[order].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])

    def stat(W: np.ndarray, cache: dict) -> np.ndarray:
        ws = W[:, order]
        p_run = np.add.reduceat(ws * pos, starts, axis=1)
        n_run = np.add.reduceat(ws, starts, axis=1) - p_run
        # Mid-rank Mann-Whitney: each positive beats the negatives below it, ties count half.
        below = np.cumsum(n_run, axis=1) - n_run
        u = (p_run * (below + 0.5 * n_run)).sum(axis=1)
        p_tot, n_tot = p_run.sum(axis=1), n_run.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((p_tot > 0) & (n_tot > 0), u / (p_tot * n_tot), np.nan)

    return stat


def _macro_auc_stat(codes: np.ndarray, scores: np.ndarray) -> Stat:
    per_class = [_auc_stat(codes == i, scores[:, i]) for i in range(scores.shape[1])]
    return lambda W, cache: np.mean([s(W, cache) for s in per_class], axis=0)


def _r2_stat(t: np.ndarray, err: np.ndarray) -> Stat:
    n = len(t)
    centered = t - t.mean()  # centring first avoids cancellation in sum(t^2) - n * mean^2
    sq_err = err**2

    def stat(W: np.ndarray, cache: dict) -> np.ndarray:
        mean_c = W @ centered / n
        ss_tot = W @ centered**2 - n * mean_c**2
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(ss_tot > 0, 1.0 - (W @ sq_err) / ss_tot, np.nan)

    return stat


def _custom_stat(fn: Callable[..., float], t: np.ndarray, pred: np.ndarray, score: Any) -> Stat:
    rows = np.arange(len(t))
    score_arr = None if score is None else np.asarray(score)

    def one(idx: np.ndarray) -> float:
        try:
            return float(fn(t[idx], pred[idx], None if score_arr is None else score_arr[idx]))
        except MetricUnavailable:
            return np.nan  # undefined on this replicate: counted in n_undefined_resamples

    # A plain function cannot be vectorized: it is called once per replicate.
    return lambda W, cache: np.array([one(np.repeat(rows, w.astype(np.int64))) for w in W])


def _classification_stats(
    names: list[str],
    y_true: Any,
    cand: Predictions,
    champ: Predictions,
    labels: Any,
    pos_label: Any,
) -> tuple[dict[str, tuple[Stat, Stat]], dict[str, str], int]:
    t = as_1d("y_true", y_true)
    pc, ph = as_1d("candidate y_pred", cand.y_pred), as_1d("champion y_pred", champ.y_pred)
    n = len(t)
    check_lengths(n, **{"candidate y_pred": pc, "champion y_pred": ph})
    unavailable: dict[str, str] = {}
    bad_pred = [
        f"{who} predictions contain missing values"
        for who, p in (("candidate", pc), ("champion", ph))
        if len(missing_rows(p))
    ]
    preds = None if bad_pred else np.concatenate([pc, ph])
    enc: EncodedLabels = encode_labels(t, preds, labels, pos_label)
    scores: list[Scores | None] = [
        None if m.y_score is None else prepare_scores(m.y_score, n, enc) for m in (cand, champ)
    ]
    stats: dict[str, tuple[Stat, Stat]] = {}
    counters: list[_ConfusionCounter] = []
    for name in names:
        spec = get_metric(name, "classification")
        if not spec.builtin:
            stats[name] = (
                _custom_stat(spec.fn, t, pc, cand.y_score),  # type: ignore[arg-type]
                _custom_stat(spec.fn, t, ph, champ.y_score),  # type: ignore[arg-type]
            )
            continue
        if not spec.needs_score:
            if bad_pred:
                unavailable[name] = "; ".join(bad_pred)
            elif enc.binary and enc.pos_index is None and name in ("precision", "recall", "f1"):
                unavailable[name] = enc.pos_problem or "positive class unknown"
            else:
                key = name if enc.binary or "_" in name or name == "accuracy" else f"{name}_macro"
                if not counters:
                    assert enc.pred_codes is not None
                    for codes in (enc.pred_codes[:n], enc.pred_codes[n:]):
                        counters.append(
                            _ConfusionCounter(enc.true_codes, codes, enc.k, enc.pos_index)
                        )
                stats[name] = (counters[0].stat(key), counters[1].stat(key))
            continue
        problems = [
            f"{who}: {why}"
            for who, sc in (("candidate", scores[0]), ("champion", scores[1]))
            for why in [
                "no scores given"
                if sc is None
                else sc.problem
                or (enc.pos_problem if enc.binary else None)
                or (sc.probability_problem if name in ("log_loss", "brier") else None)
            ]
            if why
        ]
        if name in ("average_precision", "ece"):
            unavailable[name] = "not supported by the paired bootstrap comparison"
        elif problems:
            unavailable[name] = "; ".join(problems)
        elif name == "auc_roc":
            pair = []
            for sc in scores:
                assert sc is not None
                if enc.binary:
                    pair.append(_auc_stat(enc.true_codes == enc.pos_index, sc.values))
                else:
                    pair.append(_macro_auc_stat(enc.true_codes, sc.values))
            stats[name] = (pair[0], pair[1])
        else:
            rows = log_loss_rows if name == "log_loss" else brier_rows
            stats[name] = tuple(  # type: ignore[assignment]
                _mean_stat(rows(enc.true_codes, sc.values, enc.pos_index))  # type: ignore[union-attr]
                for sc in scores
            )
    return stats, unavailable, n


def _regression_stats(
    names: list[str], y_true: Any, cand: Predictions, champ: Predictions
) -> tuple[dict[str, tuple[Stat, Stat]], dict[str, str], int]:
    t, pc, problem_c = prepare_regression(y_true, cand.y_pred)
    _, ph, problem_h = prepare_regression(y_true, champ.y_pred)
    stats: dict[str, tuple[Stat, Stat]] = {}
    unavailable: dict[str, str] = {}
    for name in names:
        spec = get_metric(name, "regression")
        if problem_c or problem_h:
            unavailable[name] = "; ".join(
                f"{who}: {p}" for who, p in (("candidate", problem_c), ("champion", problem_h)) if p
            )
            continue
        assert pc is not None and ph is not None
        pair = []
        for p in (pc, ph):
            err = p - t
            if not spec.builtin:
                pair.append(_custom_stat(spec.fn, t, p, None))  # type: ignore[arg-type]
            elif name in ("mse", "rmse"):
                pair.append(_mean_stat(err**2))
            elif name == "mae":
                pair.append(_mean_stat(np.abs(err)))
            elif name == "r2":
                pair.append(_r2_stat(t, err))
            else:
                pair.append(_mean_stat(np.abs(err) / np.abs(t)))
        reason = r2_reason(t) if name == "r2" else mape_reason(t) if name == "mape" else None
        if reason:
            unavailable[name] = reason
        elif name == "rmse":
            stats[name] = tuple(  # type: ignore[assignment]
                (lambda W, cache, s=s: np.sqrt(s(W, cache))) for s in pair
            )
        else:
            stats[name] = (pair[0], pair[1])
    return stats, unavailable, len(t)


def _text_stats(
    names: list[str], y_true: Any, cand: Predictions, champ: Predictions
) -> tuple[dict[str, tuple[Stat, Stat]], dict[str, str], int]:
    refs, pc, problem_c = prepare_text(y_true, cand.y_pred)
    _, ph, problem_h = prepare_text(y_true, champ.y_pred)
    stats: dict[str, tuple[Stat, Stat]] = {}
    unavailable: dict[str, str] = {}
    ref_tokens = token_counts(refs)
    for name in names:
        spec = get_metric(name, "text")
        if problem_c or problem_h:
            unavailable[name] = "; ".join(
                f"{who}: {p}" for who, p in (("candidate", problem_c), ("champion", problem_h)) if p
            )
            continue
        pair = []
        for p in (pc, ph):
            assert p is not None
            if not spec.builtin:
                pair.append(_custom_stat(spec.fn, refs, p, None))  # type: ignore[arg-type]
            elif name == "exact_match":
                pair.append(_mean_stat(exact_match_rows(refs, p)))
            elif name == "token_f1":
                pair.append(_mean_stat(token_f1_rows(refs, p)))
            else:
                tokens = token_counts(p)
                pair.append(lambda W, cache, a=tokens: (W @ a) / (W @ ref_tokens))
        stats[name] = (pair[0], pair[1])
    return stats, unavailable, len(refs)


def _verdict(
    diff: float, lo: float, hi: float, higher_is_better: bool, min_effect: float, confidence: float
) -> tuple[Verdict, str]:
    """better/worse need the CI to exclude 0 and the observed change to reach min_effect."""
    sign = 1.0 if higher_is_better else -1.0
    gain = sign * diff
    g_lo, g_hi = sorted((sign * lo, sign * hi))
    ci = f"{confidence:.0%} CI of the improvement [{g_lo:.4g}, {g_hi:.4g}]"
    if g_lo > 0 and gain >= min_effect:
        return "better", f"candidate better by {gain:.4g}; {ci} excludes 0"
    if g_hi < 0 and -gain >= min_effect:
        return "worse", f"candidate worse by {-gain:.4g}; {ci} excludes 0"
    if g_lo <= 0 <= g_hi:
        return "inconclusive", f"{ci} includes 0"
    return "inconclusive", f"change {gain:.4g} is smaller than min_effect {min_effect:g} ({ci})"


def compare_with_champion(
    task: str,
    y_true: Any,
    candidate: Predictions | Mapping[str, Any],
    champion: Predictions | Mapping[str, Any],
    *,
    params: ComparisonParams,
    metrics: list[str] | None = None,
    labels: Any = None,
    pos_label: Any = None,
) -> ComparisonResult:
    """Paired bootstrap of candidate-minus-champion differences, with a verdict per metric."""
    if task not in ("classification", "regression", "text"):
        raise InvalidInput(f"unknown task {task!r}", hint="Use classification, regression or text.")
    cand, champ = as_predictions(candidate, "candidate"), as_predictions(champion, "champion")
    names = resolve_metric_names(metrics, task)  # type: ignore[arg-type]
    get_metric(params.primary_metric, task)  # type: ignore[arg-type]
    if params.primary_metric not in names:
        names.append(params.primary_metric)
    if task == "classification":
        stats, unavailable, n = _classification_stats(names, y_true, cand, champ, labels, pos_label)
    elif task == "regression":
        stats, unavailable, n = _regression_stats(names, y_true, cand, champ)
    else:
        stats, unavailable, n = _text_stats(names, y_true, cand, champ)
    for name in list(stats):
        if get_metric(name, task).higher_is_better is None:  # type: ignore[arg-type]
            unavailable[name] = "metric has no better direction (e.g. a ratio best at 1.0)"
            del stats[name]

    ones = np.ones((1, n))
    observed = {
        name: (float(a(ones, {})[0]), float(b(ones, {})[0])) for name, (a, b) in stats.items()
    }
    for name, (a, b) in list(observed.items()):
        if np.isnan(a) or np.isnan(b):
            who = [w for w, v in (("candidate", a), ("champion", b)) if np.isnan(v)]
            unavailable[name] = f"undefined on the full data for {' and '.join(who)}"
            del stats[name]

    diffs = {name: np.empty(params.n_boot) for name in stats}
    rng = np.random.default_rng(params.seed)
    chunk = max(1, min(params.n_boot, _CHUNK_CELLS // max(n, 1)))
    for start in range(0, params.n_boot, chunk):
        b = min(chunk, params.n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        flat = (np.arange(b)[:, None] * n + idx).ravel()
        W = np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        cache: dict = {}
        for name, (a, c) in stats.items():
            diffs[name][start : start + b] = a(W, cache) - c(W, cache)

    alpha = 1.0 - params.confidence
    per_metric: dict[str, MetricComparison] = {}
    for name, d in diffs.items():
        undefined = int(np.isnan(d).sum())
        if undefined == len(d):
            unavailable[name] = "undefined in every bootstrap resample"
            continue
        lo, hi = np.nanpercentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        cand_v, champ_v = observed[name]
        hib = bool(get_metric(name, task).higher_is_better)  # type: ignore[arg-type]
        verdict, reason = _verdict(
            cand_v - champ_v, lo, hi, hib, params.min_effect, params.confidence
        )
        if undefined > 0.1 * len(d):
            verdict = "inconclusive"
            reason = f"metric undefined in {undefined} of {len(d)} resamples; {reason}"
        per_metric[name] = MetricComparison(
            metric=name,
            candidate=cand_v,
            champion=champ_v,
            difference=cand_v - champ_v,
            ci_low=float(lo),
            ci_high=float(hi),
            higher_is_better=hib,
            verdict=verdict,
            reason=reason,
            n_undefined_resamples=undefined,
        )
    overall, why = _overall(per_metric, unavailable, params.primary_metric)
    return ComparisonResult(
        n_boot=params.n_boot,
        confidence=params.confidence,
        min_effect=params.min_effect,
        primary_metric=params.primary_metric,
        seed=params.seed,
        per_metric=per_metric,
        unavailable=unavailable,
        verdict=overall,
        reason=why,
    )


def _overall(
    per_metric: dict[str, MetricComparison], unavailable: dict[str, str], primary: str
) -> tuple[Verdict, str]:
    if primary not in per_metric:
        return "inconclusive", f"primary metric {primary} unavailable: {unavailable.get(primary)}"
    head = per_metric[primary]
    worse = [m for m, c in per_metric.items() if c.verdict == "worse" and m != primary]
    if head.verdict == "better" and worse:
        return "inconclusive", f"{primary} is better but {', '.join(worse)} got worse"
    return head.verdict, f"{primary}: {head.reason}"
