"""Prometheus metrics of the gateway, exported with prometheus_client.

The request path only bumps plain integers on per-version objects (one event-loop thread
writes them); this collector turns them into Prometheus families at scrape time, which
keeps a prediction free of locks and label lookups.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from core.serving.loader import LoadedVersion, VersionStats

LATENCY_BOUNDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


def new_stats() -> VersionStats:
    return VersionStats(latency_buckets=[0] * (len(LATENCY_BOUNDS) + 1))


def observe(stats: VersionStats, seconds: float) -> None:
    stats.requests += 1
    stats.latency_sum += seconds
    stats.latency_buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1


# Every family is ``modelops_*`` and carries the served model's name, so one Prometheus can
# scrape many gateways (and other exporters) without name clashes or ambiguous series.
PREFIX = "modelops_"


class GatewayCollector(Collector):
    """Reads the gateway's counters when Prometheus scrapes /metrics.

    A family is exported only with samples (a ``# TYPE`` line without any is noise to
    Prometheus): per-version families have one child per loaded version from its first load,
    shadow counters one per shadow version, rejections one per reason seen.
    """

    def __init__(
        self,
        versions: Callable[[], Iterable[LoadedVersion]],
        errors: Callable[[], dict[str, int]],
        extra_counters: Callable[[], dict[str, tuple[str, float]]],
        *,
        model_name: str,
    ) -> None:
        self._versions = versions
        self._errors = errors
        self._extra = extra_counters
        self._model = model_name

    def collect(self) -> Iterator:
        m = self._model
        predictions = CounterMetricFamily(
            f"{PREFIX}predictions",
            "Predictions answered, by honesty status and model version",
            labels=["model_name", "model_version", "implementation_status"],
        )
        latency = HistogramMetricFamily(
            f"{PREFIX}prediction_latency_seconds",
            "Time from request body to response, by model version",
            labels=["model_name", "model_version"],
        )
        compliant = CounterMetricFamily(
            f"{PREFIX}honesty_compliant_responses",
            "Responses carrying complete honesty labels",
            labels=["model_name"],
        )
        missing = CounterMetricFamily(
            f"{PREFIX}missing_honesty_labels",
            "Responses missing an honesty label (or PLANNED status)",
            labels=["model_name"],
        )
        server_errors = CounterMetricFamily(
            f"{PREFIX}prediction_server_errors",
            "Model calls that raised, by model version",
            labels=["model_name", "model_version"],
        )
        shadow = CounterMetricFamily(
            f"{PREFIX}shadow_predictions",
            "Mirrored predictions by shadow version and outcome",
            labels=["model_name", "model_version", "outcome"],
        )
        rejected = CounterMetricFamily(
            f"{PREFIX}prediction_errors",
            "Rejected or failed requests by reason",
            labels=["model_name", "reason"],
        )
        by_label: dict[tuple[str, str], int] = {}
        by_version: dict[str, tuple[list[int], float]] = {}
        errors_by_version: dict[str, int] = {}
        shadow_by_version: dict[str, tuple[int, int, int]] = {}
        n_ok = n_missing = 0
        for v in self._versions():
            st, s = v.stats, v.served
            key = (s.version, s.implementation_status or "MISSING")
            by_label[key] = by_label.get(key, 0) + st.requests
            buckets, total = by_version.get(s.version, ([0] * len(st.latency_buckets), 0.0))
            by_version[s.version] = (
                [a + b for a, b in zip(buckets, st.latency_buckets, strict=True)],
                total + st.latency_sum,
            )
            errors_by_version[s.version] = errors_by_version.get(s.version, 0) + st.server_errors
            if v.honesty_compliant:
                n_ok += st.requests
            else:
                n_missing += st.requests
            if s.role == "shadow" or st.shadow_requests or st.shadow_errors:
                ok, err, agree = shadow_by_version.get(s.version, (0, 0, 0))
                shadow_by_version[s.version] = (
                    ok + st.shadow_requests,
                    err + st.shadow_errors,
                    agree + st.shadow_agreements,
                )
        for (version, status), n in sorted(by_label.items()):
            predictions.add_metric([m, version, status], n)
        for version, (buckets, total) in sorted(by_version.items()):
            cumulative, acc = [], 0
            for bound, n in zip((*LATENCY_BOUNDS, float("inf")), buckets, strict=True):
                acc += n
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), acc))
            latency.add_metric([m, version], cumulative, total)
        for version, n in sorted(errors_by_version.items()):
            server_errors.add_metric([m, version], n)
        for version, (ok, err, agree) in sorted(shadow_by_version.items()):
            shadow.add_metric([m, version, "ok"], ok)
            shadow.add_metric([m, version, "error"], err)
            shadow.add_metric([m, version, "agree"], agree)
        compliant.add_metric([m], n_ok)
        missing.add_metric([m], n_missing)
        for reason, n in sorted(self._errors().items()):
            rejected.add_metric([m, reason], n)
        families = [predictions, latency, compliant, missing, server_errors, shadow, rejected]
        for name, (doc, value) in self._extra().items():
            kind = GaugeMetricFamily if name.endswith("_pending") else CounterMetricFamily
            fam = kind(f"{PREFIX}{name}", doc, labels=["model_name"])
            fam.add_metric([m], value)
            families.append(fam)
        yield from (f for f in families if f.samples)


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
