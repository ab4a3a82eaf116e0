"""A/B statistics cross-checked against statsmodels/scipy, and simulated: A/A false positives
near alpha, power near plan, the sequential CI holding alpha under peeking (vectorized)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportions_ztest

from core.abtest import stats
from core.abtest.experiment import analyze

RNG = np.random.default_rng(7)
ALPHA = 0.05


def _z_p(x_c: np.ndarray, x_t: np.ndarray, n: int) -> np.ndarray:
    """The pooled two-proportion z-test, vectorized over many simulated experiments."""
    p_c, p_t = x_c / n, x_t / n
    pooled = (x_c + x_t) / (2 * n)
    se = np.sqrt(pooled * (1 - pooled) * 2 / n)
    return 2 * sps.norm.sf(np.abs((p_t - p_c) / se))


def test_vectorized_z_equals_statsmodels_and_the_tool() -> None:
    x_c, x_t, n = np.array([100, 130, 90]), np.array([120, 100, 91]), 1000
    ours = _z_p(x_c, x_t, n)
    for i in range(3):
        ref = proportions_ztest([x_t[i], x_c[i]], [n, n])[1]
        assert ours[i] == pytest.approx(ref)
        assert stats.two_proportions(int(x_c[i]), n, int(x_t[i]), n)["p_value"] == pytest.approx(
            ref
        )


def test_aa_false_positive_rate_is_near_alpha() -> None:
    runs, n, p = 4000, 2000, 0.1
    x_c, x_t = RNG.binomial(n, p, runs), RNG.binomial(n, p, runs)
    fpr = float(np.mean(_z_p(x_c, x_t, n) < ALPHA))
    assert abs(fpr - ALPHA) < 0.015, fpr  # 4000 runs: sd about 0.0035


def test_power_at_the_planned_sample_size_is_near_plan() -> None:
    base, mde = 0.10, 0.02
    n = stats.sample_size_proportions(base, mde, ALPHA, 0.8)
    assert stats.power_proportions(base, mde, n) == pytest.approx(0.8, abs=0.01)
    runs = 3000
    x_c, x_t = RNG.binomial(n, base, runs), RNG.binomial(n, base + mde, runs)
    power = float(np.mean(_z_p(x_c, x_t, n) < ALPHA))
    assert abs(power - 0.8) < 0.03, (n, power)


def test_welch_aa_rate_and_ci_against_scipy() -> None:
    y = RNG.normal(10, 3, size=(2000, 2, 100))
    p = sps.ttest_ind(y[:, 1], y[:, 0], axis=1, equal_var=False).pvalue
    assert abs(float(np.mean(p < ALPHA)) - ALPHA) < 0.02
    res = stats.welch(y[0, 0], y[0, 1])
    ref = sps.ttest_ind(y[0, 1], y[0, 0], equal_var=False)
    assert res["p_value"] == pytest.approx(ref.pvalue)
    assert res["ci"][0] == pytest.approx(ref.confidence_interval().low)


def test_srm_flags_a_broken_split_only() -> None:
    assert stats.srm(5000, 5050, 0.5)["mismatch"] is False
    bad = stats.srm(5000, 5600, 0.5)
    assert bad["mismatch"] is True and bad["p_value"] < 0.001
    assert bad["p_value"] == pytest.approx(sps.chisquare([5000, 5600], [5300, 5300]).pvalue)


def test_cuped_reduces_variance_and_keeps_the_effect() -> None:
    n = 4000
    x = RNG.normal(50, 10, 2 * n)
    y = 0.8 * x + RNG.normal(0, 5, 2 * n)
    y[n:] += 1.0  # the treatment effect
    adj, theta, reduction = stats.cuped(y, x)
    assert theta == pytest.approx(0.8, abs=0.05) and reduction > 0.5
    plain = stats.welch(y[:n], y[n:])
    cuped = stats.welch(adj[:n], adj[n:])
    assert cuped["difference"] == pytest.approx(plain["difference"], abs=0.3)
    assert cuped["se"] < plain["se"] * 0.7


def test_holm_matches_statsmodels() -> None:
    from statsmodels.stats.multitest import multipletests

    pv = {"a": 0.01, "b": 0.04, "c": 0.03}
    got = stats.holm(pv)
    ref = multipletests(list(pv.values()), method="holm")[1]
    assert [got[k]["p_adjusted"] for k in pv] == pytest.approx(list(ref))


def test_sequential_ci_holds_alpha_under_peeking_while_naive_reads_do_not() -> None:
    runs, looks, step, p = 2000, 20, 250, 0.2
    conv_c = RNG.binomial(step, p, (runs, looks)).cumsum(axis=1)
    conv_t = RNG.binomial(step, p, (runs, looks)).cumsum(axis=1)
    n = step * np.arange(1, looks + 1)
    p_c, p_t = conv_c / n, conv_t / n
    diff = p_t - p_c
    var = (p_c * (1 - p_c) + p_t * (1 - p_t)) / n
    naive = np.any(np.abs(diff) / np.sqrt(var) > 1.96, axis=1).mean()
    tau2 = 2 * p * (1 - p) / n[-1]
    hw = stats.msprt_halfwidth(var, ALPHA, tau2)
    always = np.any(np.abs(diff) > hw, axis=1).mean()
    assert naive > 2 * ALPHA, naive  # peeking inflates the fixed-horizon false positives
    assert always <= ALPHA, always
    # One look at the horizon: the sequential interval is wider than the fixed one.
    assert hw[0, -1] > 1.96 * math.sqrt(var[0, -1])


def _data(conv_c: int, n_c: int, conv_t: int, n_t: int) -> dict:
    units = {"control": [f"c{i}" for i in range(n_c)], "treatment": [f"t{i}" for i in range(n_t)]}
    values = {
        "conversion_rate": {
            **{f"c{i}": [1.0] for i in range(conv_c)},
            **{f"t{i}": [1.0] for i in range(conv_t)},
        }
    }
    return {"units": units, "values": values, "covariate": {}}


EXP = {
    "id": "ab-00000000",
    "share_control": 0.5,
    "plan": {"primary_metric": "conversion_rate", "min_sample_size": 2000, "alpha": 0.05},
}


def test_decisions() -> None:
    win = analyze(_data(200, 2000, 290, 2000), EXP)
    assert win["decision"] == "winner" and win["winner"] == "treatment", win
    harm = analyze(_data(290, 2000, 200, 2000), EXP)
    assert harm["decision"] == "stopped_for_harm"
    flat = analyze(_data(200, 2000, 205, 2000), EXP)
    assert flat["decision"] == "no_significant_difference"
    early = analyze(_data(20, 200, 22, 200), EXP)
    assert early["decision"] == "keep_running"
    assert any("peeking" in w for w in early["warnings"])
    srm = analyze(_data(200, 2000, 290, 2600), EXP)
    assert srm["decision"] == "invalid" and srm["srm"]["mismatch"]
    empty = analyze(_data(0, 0, 0, 0), EXP)
    assert empty["decision"] == "insufficient_data"
