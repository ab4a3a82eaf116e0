"""Monitoring thresholds proposed from a version's own evidence, in the exact input format of
the ``ml-model-monitoring`` workflow (``{"model_id": ..., "monitoring_config": {...}}``).

Sources, each proposal naming its own:
- data drift share: bootstrap self-drift of the reference profile (random halves of the
  reference sample compared with each other under the policy's tests) — the share of features
  that "drift" with no real change; the proposal sits one feature above its 95th percentile;
- latency p99 / error rate: the version's observed prediction-log rows, when there are enough;
  otherwise the policy's SLO (said so);
- performance floor: the lower bound of a bootstrap CI of accuracy on the reference sample
  (the model's own predictions vs the labels). The workflow's config has no such field: it is
  a proposal for the policy's ``monitoring.estimated_performance.min`` (reported, not written
  into the workflow input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.monitoring.drift import dataset_drift
from core.monitoring.report import drift_config

MIN_LOG_ROWS = 50
BOOTSTRAPS = 30


@dataclass(frozen=True)
class Proposal:
    key: str
    value: float | None
    source: str


def self_drift_share(profile: Any, rules: dict[str, Any], *, seed: int = 0) -> list[float]:
    """Shares of drifted features between random halves of the reference sample."""
    n = profile.sample_rows
    if n < 2 * int(rules.get("drift", {}).get("min_rows", 30)):
        return []
    rng = np.random.default_rng(seed)
    cfg = drift_config(rules)
    shares = []
    for _ in range(BOOTSTRAPS):
        idx = rng.permutation(n)
        a, b = idx[: n // 2], idx[n // 2 :]
        ref = {c: profile.samples[c][a] for c in profile.features}
        cur = {c: profile.samples[c][b] for c in profile.features}
        res = dataset_drift(ref, cur, {c: profile.kinds[c] for c in profile.features}, cfg)
        if res.share is not None:
            shares.append(res.share)
    return shares


def _drift(profile: Any, rules: dict[str, Any]) -> Proposal:
    policy = float(rules.get("drift", {}).get("drift_share", 0.5))
    if profile is None:
        return Proposal(
            "data_drift_threshold", policy, "policy drift.drift_share (no reference profile)"
        )
    shares = self_drift_share(profile, rules)
    if not shares:
        return Proposal(
            "data_drift_threshold",
            policy,
            f"policy drift.drift_share (reference sample of {profile.sample_rows} rows is too "
            "small for a bootstrap)",
        )
    q95 = float(np.quantile(shares, 0.95))
    value = round(min(1.0, q95 + 1.0 / max(1, len(profile.features))), 4)
    return Proposal(
        "data_drift_threshold",
        value,
        f"bootstrap self-drift of the reference profile: {len(shares)} random half/half splits "
        f"of its {profile.sample_rows}-row sample, 95th percentile drifted share {q95:.4f}, "
        f"plus one of {len(profile.features)} features",
    )


def _slo(log_rows: list[dict[str, Any]], version: str, rules: dict[str, Any]) -> list[Proposal]:
    slo = rules.get("slo", {})
    rows = [r for r in log_rows if str(r.get("model_version")) == str(version)]
    if len(rows) < MIN_LOG_ROWS:
        why = f"{len(rows)} prediction-log rows for v{version} (< {MIN_LOG_ROWS})"
        return [
            Proposal(
                "latency_p99_threshold_ms",
                float(slo.get("latency_p99_ms", 250.0)),
                f"policy slo.latency_p99_ms ({why})",
            ),
            Proposal(
                "error_rate_threshold",
                float(slo.get("error_rate", 0.05)),
                f"policy slo.error_rate ({why})",
            ),
        ]
    ok = np.array([float(r["latency_ms"]) for r in rows if r.get("status") == 200])
    errors = sum(1 for r in rows if int(r.get("status") or 0) >= 500)
    rate = errors / len(rows)
    p99 = float(np.quantile(ok, 0.99)) if len(ok) else float(slo.get("latency_p99_ms", 250.0))
    return [
        Proposal(
            "latency_p99_threshold_ms",
            round(max(1.0, 1.5 * p99), 3),
            f"1.5 x observed p99 {p99:.3f} ms over {len(ok)} served requests of v{version}",
        ),
        Proposal(
            "error_rate_threshold",
            round(min(1.0, max(0.01, 2 * rate)), 4),
            f"2 x observed error rate {rate:.4f} ({errors}/{len(rows)} requests), at least 0.01",
        ),
    ]


def performance_floor(profile: Any, *, seed: int = 0) -> Proposal:
    if profile is None or profile.predictions is None or profile.labels is None:
        return Proposal(
            "estimated_performance.min",
            None,
            "not proposed: the reference profile has no predictions and labels",
        )
    y = np.asarray(profile.labels).astype(str)
    p = np.asarray(profile.predictions).astype(str)
    hits = (y == p).astype(float)
    rng = np.random.default_rng(seed)
    boots = [hits[rng.integers(0, len(hits), len(hits))].mean() for _ in range(1000)]
    lo = float(np.quantile(boots, 0.025))
    return Proposal(
        "estimated_performance.min",
        round(lo, 4),
        f"lower bound of the 95% bootstrap CI of accuracy {hits.mean():.4f} on the "
        f"{len(hits)}-row reference sample (training data, so optimistic; policy proposal: "
        "monitoring.estimated_performance.min)",
    )


def propose(
    model_id: str, version: str, profile: Any, rules: dict[str, Any], log_rows: list[dict]
) -> dict[str, Any]:
    proposals = [_drift(profile, rules), *_slo(log_rows, version, rules)]
    floor = performance_floor(profile)
    return {
        "request": {
            "model_id": model_id,
            "monitoring_config": {p.key: p.value for p in proposals if p.value is not None},
        },
        "sources": {p.key: p.source for p in [*proposals, floor]},
        "policy_proposals": {floor.key: floor.value} if floor.value is not None else {},
    }


def to_yaml(draft: dict[str, Any]) -> str:
    """The workflow input as YAML, each threshold followed by a comment naming its source."""
    req = draft["request"]
    lines = [
        "# ml-model-monitoring input drafted from the version's own evidence; review it.",
        "# Run: agent workflow run ml-model-monitoring --input \"$(python -c 'import json,yaml,sys;"
        " print(json.dumps(yaml.safe_load(open(sys.argv[1]))))' THIS_FILE)\"",
        f"model_id: {req['model_id']}",
        "monitoring_config:",
    ]
    for key, value in req["monitoring_config"].items():
        lines.append(f"  # {draft['sources'][key]}")
        lines.append(f"  {key}: {value}")
    for key, value in draft["policy_proposals"].items():
        lines.append(f"# Policy proposal (not a workflow field): {key} = {value}")
        lines.append(f"#   {draft['sources'][key]}")
    return "\n".join(lines) + "\n"
