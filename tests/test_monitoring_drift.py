"""Drift statistics against scipy/numpy on generated data with known shifts, and the method
choice Evidently makes (type and reference size)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from core.monitoring.drift import (
    DriftConfig,
    binned_psi,
    categorical_drift,
    dataset_drift,
    finite_sorted,
    numeric_drift,
    sorted_histogram,
    sturges_edges,
    wasserstein_sorted,
)

RNG = np.random.default_rng(20261201)


@pytest.mark.parametrize(
    ("n", "m"), [(1, 1), (3, 10), (50, 70), (70, 50), (999, 1001), (20_000, 200_003)]
)
def test_vectorized_wasserstein_equals_scipy_with_ties(n: int, m: int) -> None:
    a = RNG.normal(size=n)
    b = RNG.normal(0.2, 1.4, size=m)
    a[::3] = np.round(a[::3], 1)  # ties inside and across the samples
    b[::2] = np.round(b[::2], 1)
    got = wasserstein_sorted(np.sort(a), np.sort(b))
    assert got == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12, abs=1e-15)


def test_sorted_histogram_and_sturges_edges_equal_numpy() -> None:
    a, b = RNG.normal(size=3000), RNG.exponential(size=7000)
    both = np.concatenate([a, b])
    edges = sturges_edges(both.min(), both.max(), len(both))
    assert np.allclose(edges, np.histogram_bin_edges(both, "sturges"))
    assert (sorted_histogram(np.sort(b), edges) == np.histogram(b, edges)[0]).all()


def test_psi_follows_evidentlys_buckets() -> None:
    ref, cur = RNG.normal(size=5000), RNG.normal(0.5, 1, size=8000)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), "sturges")
    r = np.histogram(ref, edges)[0] / len(ref)
    c = np.histogram(cur, edges)[0] / len(cur)
    r, c = np.where(r == 0, 0.0001, r), np.where(c == 0, 0.0001, c)
    expected = np.sum((r - c) * np.log(r / c))
    assert binned_psi(np.sort(ref), np.sort(cur)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("shift", "scale", "drifts"),
    [(0.0, 1.0, False), (0.5, 1.0, True), (0.0, 2.0, True)],
    ids=["none", "mean-shift", "variance-shift"],
)
def test_small_reference_uses_ks_from_scipy(shift: float, scale: float, drifts: bool) -> None:
    ref, cur = RNG.normal(size=800), RNG.normal(shift, scale, size=2000)
    res = numeric_drift("x", ref, cur, DriftConfig())
    assert res.method == "ks"
    assert res.score == pytest.approx(stats.ks_2samp(ref, cur).pvalue)
    assert res.drifted is drifts


@pytest.mark.parametrize(
    ("shift", "scale", "drifts"),
    [(0.0, 1.0, False), (0.5, 1.0, True), (0.0, 2.0, True)],
    ids=["none", "mean-shift", "variance-shift"],
)
def test_large_reference_uses_normalized_wasserstein(
    shift: float, scale: float, drifts: bool
) -> None:
    ref, cur = RNG.normal(size=5000), RNG.normal(shift, scale, size=20_000)
    res = numeric_drift("x", ref, cur, DriftConfig())
    assert res.method == "wasserstein"
    assert res.score == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref))
    assert res.drifted is drifts
    assert res.psi is not None


def test_new_category_and_chi_square_against_scipy() -> None:
    ref = {"a": 300, "b": 150, "c": 50}
    same = categorical_drift("c", ref, {"a": 610, "b": 290, "c": 100}, DriftConfig())
    expected = np.array([300, 150, 50]) * (1000 / 500)
    assert same.method == "chisquare"
    assert same.score == pytest.approx(stats.chisquare([610, 290, 100], expected).pvalue)
    assert same.drifted is False
    new = categorical_drift("c", ref, {"a": 600, "b": 300, "c": 90, "zz": 10}, DriftConfig())
    assert new.new_categories == ["zz"] and new.drifted is True and new.score == 0.0
    gone = categorical_drift("c", ref, {"a": 700, "b": 300}, DriftConfig())
    assert gone.missing_categories == ["c"]


def test_large_categorical_uses_jensen_shannon_from_scipy() -> None:
    ref = {"a": 3000, "b": 1500, "c": 500}
    cur = {"a": 1000, "b": 1000, "c": 1000}
    res = categorical_drift("c", ref, cur, DriftConfig())
    p, q = np.array([3000, 1500, 500]) / 5000, np.array([1, 1, 1]) / 3
    assert res.method == "jensenshannon"
    assert res.score == pytest.approx(distance.jensenshannon(p, q))
    assert res.drifted is True


def test_binary_column_uses_z_and_few_valued_numeric_is_categorical() -> None:
    res = categorical_drift("flag", {"no": 400, "yes": 100}, {"no": 300, "yes": 200}, DriftConfig())
    assert res.method == "z" and res.drifted is True
    few = numeric_drift(
        "n",
        RNG.integers(0, 3, 900).astype(float),
        RNG.integers(0, 3, 900).astype(float),
        DriftConfig(),
    )
    assert few.method == "chisquare"


def test_bad_input_is_reported_not_raised() -> None:
    cfg = DriftConfig()
    nan = numeric_drift("x", RNG.normal(size=100), np.full(50, np.nan), cfg)
    assert nan.status == "all_missing" and nan.drifted is None
    few = numeric_drift("x", RNG.normal(size=100), RNG.normal(size=5), cfg)
    assert few.status == "insufficient_data" and few.drifted is None
    empty = numeric_drift("x", RNG.normal(size=100), np.array([]), cfg)
    assert empty.status == "insufficient_data"
    mixed = np.r_[RNG.normal(size=200), [np.nan, np.inf, -np.inf]]
    assert finite_sorted(mixed)[1] == 3
    assert numeric_drift("x", RNG.normal(size=300), mixed, cfg).missing_current == 3
    # Schema change: a reference column missing from traffic, a new one in traffic.
    res = dataset_drift(
        {"a": RNG.normal(size=100), "b": RNG.normal(size=100)},
        {"a": RNG.normal(size=100), "c": RNG.normal(size=100)},
        {"a": "numeric", "b": "numeric"},
    )
    assert res.schema["missing_in_current"] == ["b"] and res.schema["new_in_current"] == ["c"]
    assert [c.status for c in res.columns] == ["ok", "missing_in_current"]
    assert res.evaluated == 1


def test_dataset_drift_share() -> None:
    ref = {f"x{i}": RNG.normal(size=500) for i in range(4)}
    # Two columns shifted by one standard deviation, two exactly unchanged.
    cur = {k: v + (1.0 if i < 2 else 0.0) for i, (k, v) in enumerate(ref.items())}
    kinds = dict.fromkeys(ref, "numeric")
    res = dataset_drift(ref, cur, kinds, DriftConfig(drift_share=0.5))
    assert (res.drifted, res.share, res.dataset_drift) == (2, 0.5, True)
    assert dataset_drift(ref, cur, kinds, DriftConfig(drift_share=0.75)).dataset_drift is False
