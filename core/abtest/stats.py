"""A/B statistics from statsmodels and scipy, plus the two pieces they lack (CUPED and an
always-valid confidence sequence), written out and checked in tests/test_abtest_stats.py.

- rates: two-proportion z-test (``statsmodels.stats.proportion.proportions_ztest``) and the
  Newcombe CI of the difference (``confint_proportions_2indep``);
- means: Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``) with its CI;
- power and sample size: ``NormalIndPower`` on Cohen's h (rates) or d (means);
- sample-ratio mismatch: chi-square goodness of fit, flagged at p < 0.001 (as GrowthBook);
- CUPED: Y - theta (X - mean X), theta = cov(X, Y) / var(X) pooled over both arms;
- multiple testing: Holm (``multipletests``) across secondary metrics;
- sequential: the normal-mixture mSPRT confidence sequence (Johari et al. 2017), valid at
  every look, so reading early does not inflate false positives.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SRM_P = 0.001


def two_proportions(x_c: int, n_c: int, x_t: int, n_t: int, alpha: float = 0.05) -> dict[str, Any]:
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

    p_c, p_t = x_c / n_c, x_t / n_t
    if x_c + x_t in (0, n_c + n_t):
        z, p = 0.0, 1.0
    else:
        z, p = proportions_ztest([x_t, x_c], [n_t, n_c])
    lo, hi = confint_proportions_2indep(
        x_t, n_t, x_c, n_c, compare="diff", method="newcomb", alpha=alpha
    )
    se = math.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    return {
        "test": "two-proportion z-test (pooled)",
        "control": p_c, "treatment": p_t, "difference": p_t - p_c,
        "relative_lift": (p_t - p_c) / p_c if p_c else None,
        "z": float(z), "p_value": float(p), "ci": [float(lo), float(hi)], "se": se,
        "n_control": n_c, "n_treatment": n_t,
    }  # fmt: skip


def welch(y_c: np.ndarray, y_t: np.ndarray, alpha: float = 0.05) -> dict[str, Any]:
    from scipy import stats

    res = stats.ttest_ind(y_t, y_c, equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    v_c, v_t = np.var(y_c, ddof=1), np.var(y_t, ddof=1)
    return {
        "test": "Welch's t-test",
        "control": float(np.mean(y_c)), "treatment": float(np.mean(y_t)),
        "difference": float(np.mean(y_t) - np.mean(y_c)),
        "relative_lift": float((np.mean(y_t) - np.mean(y_c)) / np.mean(y_c)) if np.mean(y_c) else None,
        "t": float(res.statistic), "df": float(res.df), "p_value": float(res.pvalue),
        "ci": [float(ci.low), float(ci.high)], "se": math.sqrt(v_c / len(y_c) + v_t / len(y_t)),
        "n_control": len(y_c), "n_treatment": len(y_t),
    }  # fmt: skip


def sample_size_proportions(
    baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> int:
    """Units per arm (control; treatment = ratio x control) to detect baseline -> baseline+mde."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    h = abs(proportion_effectsize(baseline + mde, baseline))
    return int(
        math.ceil(
            NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=ratio)
        )
    )


def power_proportions(
    baseline: float, mde: float, n_control: int, alpha: float = 0.05, ratio: float = 1.0
) -> float:
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    h = abs(proportion_effectsize(baseline + mde, baseline))
    return float(NormalIndPower().power(effect_size=h, nobs1=n_control, alpha=alpha, ratio=ratio))


def detectable_effect(
    n_control: int, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> float:
    """The standardized effect (Cohen's h or d) detectable with this sample at this power."""
    from statsmodels.stats.power import NormalIndPower

    return float(
        NormalIndPower().solve_power(nobs1=n_control, alpha=alpha, power=power, ratio=ratio)
    )


def srm(n_control: int, n_treatment: int, share_control: float) -> dict[str, Any]:
    from scipy.stats import chisquare

    total = n_control + n_treatment
    if total == 0:
        return {"p_value": None, "mismatch": False, "note": "no units yet"}
    expected = [total * share_control, total * (1 - share_control)]
    p = float(chisquare([n_control, n_treatment], expected)[1])
    return {
        "test": "chi-square goodness of fit", "observed": [n_control, n_treatment],
        "expected": expected, "p_value": p, "mismatch": p < SRM_P, "flag_below": SRM_P,
    }  # fmt: skip


def cuped(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """CUPED-adjusted outcomes, theta and the variance reduction (share of variance removed)."""
    vx = np.var(x, ddof=1)
    if not np.isfinite(vx) or vx == 0:
        return y, 0.0, 0.0
    theta = float(np.cov(x, y, ddof=1)[0, 1] / vx)
    adj = y - theta * (x - x.mean())
    vy = np.var(y, ddof=1)
    return adj, theta, float(1 - np.var(adj, ddof=1) / vy) if vy else 0.0


def holm(p_values: dict[str, float], alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    from statsmodels.stats.multitest import multipletests

    if not p_values:
        return {}
    names = list(p_values)
    reject, adjusted, _, _ = multipletests([p_values[n] for n in names], alpha=alpha, method="holm")
    return {
        n: {"p_value": p_values[n], "p_adjusted": float(a), "significant": bool(r)}
        for n, a, r in zip(names, adjusted, reject, strict=True)
    }


def msprt_halfwidth(
    variance: np.ndarray | float, alpha: float = 0.05, tau2: float | None = None
) -> np.ndarray | float:
    """Half-width of the always-valid CI for an estimate with ``variance`` (normal mixture,
    mixing variance ``tau2``; default: the variance itself at the planned horizon)."""
    v = np.asarray(variance, dtype=float)
    t2 = v if tau2 is None else tau2
    return np.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / alpha) + np.log((v + t2) / v)))


def sequential_ci(estimate: float, se: float, alpha: float, tau2: float) -> dict[str, Any]:
    hw = float(msprt_halfwidth(se**2, alpha, tau2))
    return {
        "method": "mSPRT normal-mixture confidence sequence (always valid)",
        "ci": [estimate - hw, estimate + hw], "tau2": tau2,
        "excludes_zero": not (estimate - hw <= 0 <= estimate + hw),
    }  # fmt: skip
