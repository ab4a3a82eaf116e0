"""The monitoring policy applied to measured numbers: which alerts to raise and whether the
policy orders a rollback. Pure functions over report dicts: nothing here acts.

A verdict needs data: a window with fewer than ``min_requests`` requests for the version, a
metric that could not be computed, or no reference profile yields no breach, so nothing is
ever rolled back on missing data.
"""

from __future__ import annotations

from typing import Any


def _alert(
    kind: str, severity: str, message: str, value: Any, threshold: Any, **extra: Any
) -> dict[str, Any]:
    return {
        "kind": kind,
        "severity": severity,
        "message": message,
        "value": value,
        "threshold": threshold,
        **extra,
    }


def slo_breaches(
    slo: dict[str, Any], slo_rules: dict[str, Any], min_requests: int
) -> list[dict[str, Any]]:
    """SLO breaches of one version's window ([] when it has too few requests to judge)."""
    n = slo.get("requests") or 0
    if n < min_requests:
        return []
    out = []
    p99, limit = slo.get("p99_ms"), slo_rules.get("latency_p99_ms")
    if p99 is not None and limit is not None and p99 > limit:
        out.append(
            _alert(
                "latency_p99",
                "critical",
                f"v{slo['version']} p99 latency {p99:.1f} ms > {limit:g} ms over {n} requests",
                p99,
                limit,
            )
        )
    rate, limit = slo.get("error_rate"), slo_rules.get("error_rate")
    if rate is not None and limit is not None and rate > limit:
        out.append(
            _alert(
                "error_rate",
                "critical",
                f"v{slo['version']} failed {slo['errors']} of {n} requests ({rate:.2%} > {limit:.2%})",
                rate,
                limit,
            )
        )
    return out


def performance_breach(
    est: dict[str, Any], rules: dict[str, Any], version: str, min_requests: int
) -> dict[str, Any] | None:
    if est.get("status") != "estimated" or (est.get("rows") or 0) < min_requests:
        return None
    metric, low = rules.get("metric", "accuracy"), rules.get("min")
    value = (est.get("metrics") or {}).get(metric)
    if value is None or low is None or value >= low:
        return None
    return _alert(
        "estimated_performance", "critical",
        f"v{version} estimated {metric} {value:.3f} < {low:g} (HEURISTIC: {est['method']})", value, low,
    )  # fmt: skip


def report_alerts(
    report: dict[str, Any], rules: dict[str, Any], overrides: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Alerts for one version's report under the policy (and a caller's stricter thresholds)."""
    o = overrides or {}
    v = report["version"]
    min_requests = int(rules.get("min_requests", 100))
    slo_rules = dict(rules.get("slo", {}))
    if o.get("latency_p99_threshold_ms") is not None:
        slo_rules["latency_p99_ms"] = float(o["latency_p99_threshold_ms"])
    if o.get("error_rate_threshold") is not None:
        slo_rules["error_rate"] = float(o["error_rate_threshold"])
    alerts = slo_breaches(report["slo"], slo_rules, min_requests)
    perf = performance_breach(
        report["estimated_performance"], rules.get("estimated_performance", {}), v, min_requests
    )
    if perf:
        alerts.append(perf)
    drift = report.get("data_drift", {})
    if drift.get("dataset_drift"):
        cols = [c["column"] for c in drift["columns"] if c.get("drifted")]
        alerts.append(_alert(
            "data_drift", "warning",
            f"v{v}: {drift['drifted']} of {drift['evaluated']} features drifted (share {drift['share']:.2f} >= {drift['drift_share']:g}): {', '.join(cols[:10])}",
            drift["share"], drift["drift_share"],
        ))  # fmt: skip
    schema = drift.get("schema") or {}
    if schema.get("missing_in_current") or schema.get("new_in_current"):
        alerts.append(_alert(
            "schema_change", "warning",
            f"v{v}: features missing from traffic {schema.get('missing_in_current', [])}, new in traffic {schema.get('new_in_current', [])}",
            None, None,
        ))  # fmt: skip
    pred = report.get("prediction_drift", {})
    if pred.get("drifted"):
        alerts.append(_alert(
            "prediction_drift", "warning",
            f"v{v}: the {pred['on']} drifted ({pred['method']} {pred['score']:.4g}, threshold {pred['threshold']:g})",
            pred["score"], pred["threshold"],
        ))  # fmt: skip
    for a in alerts:
        a["version"] = v
    return alerts


def rollback_order(
    slo: dict[str, Any], est: dict[str, Any] | None, rules: dict[str, Any]
) -> dict[str, Any]:
    """Whether the policy orders a rollback for one live version, from its rollback window
    only (``auto_rollback.window_minutes``): {ordered, breaches, reason}.

    Only server outcomes of the version decide (``core.monitoring.slo``). The estimated
    performance is computed from inputs any client sends, so it alerts and never orders
    (``est`` is accepted and ignored for that reason; a policy listing it as a trigger is
    told so in ``notes``).
    """
    ar = rules.get("auto_rollback", {})
    notes = []
    if "estimated_performance" in ar.get("triggers", []):
        notes.append(
            "estimated_performance is listed as a trigger but never orders a rollback: it is "
            "computed from inputs any client can send"
        )
    if not ar.get("enabled"):
        return {
            "ordered": False,
            "breaches": [],
            "reason": "automatic rollback is off in the pinned policy",
            "notes": notes,
        }
    need = int(ar.get("min_requests", rules.get("min_requests", 100)))
    n = slo.get("requests") or 0
    if n < need:
        return {
            "ordered": False,
            "breaches": [],
            "reason": f"{n} server outcomes in the rollback window, fewer than {need}: not judged",
            "notes": notes,
        }
    triggers = set(ar.get("triggers", [])) - {"estimated_performance"}
    breaches = [b for b in slo_breaches(slo, rules.get("slo", {}), need) if b["kind"] in triggers]
    if not breaches:
        return {
            "ordered": False,
            "breaches": [],
            "reason": "no rollback trigger breached",
            "notes": notes,
        }
    return {
        "ordered": True,
        "breaches": breaches,
        "reason": "; ".join(b["message"] for b in breaches),
        "notes": notes,
    }


def choose_rollback_target(
    live: list[str],
    breaching: dict[str, list[str]],
    candidates: list[dict[str, Any]],
) -> dict[str, Any]:
    """Where the policy's rollback goes, or nowhere: {target, reason, considered}.

    ``breaching``: live version -> the kinds it breached. ``candidates``: versions a human
    approved for production whose approved plan ran to completion, newest approval first,
    each ``{version, approval_id, recent_breaches}`` (``recent_breaches``: what its own
    recent server outcomes breached, [] when it served within its SLO or has no traffic).

    The target is the newest candidate not in the breaching set that served within its SLO.
    Never a version to itself. When every live version of a split breaches latency only, the
    cause is load (it hits every version alike), not a version: nothing moves.
    """
    considered = []
    if len(live) > 1 and set(breaching) == set(live):
        if all(set(kinds) <= {"latency_p99"} for kinds in breaching.values()):
            return {
                "target": None,
                "reason": "every live version breaches latency alone: that is load on the "
                "gateway, not a version, so no rollback would help",
                "considered": considered,
            }
    for c in candidates:
        v = c["version"]
        if v in breaching:
            considered.append({**c, "refused": "it is breaching now"})
            continue
        if c.get("recent_breaches"):
            considered.append(
                {**c, "refused": "it breached " + ", ".join(c["recent_breaches"]) + " recently"}
            )
            continue
        if live == [v]:
            considered.append({**c, "refused": "it is what serves now"})
            continue
        considered.append({**c, "refused": None})
        return {
            "target": v,
            "reason": f"v{v}: the newest version a human approved for production "
            f"({c.get('approval_id')}) that is not breaching",
            "considered": considered,
        }
    return {
        "target": None,
        "reason": "no version a human approved for production is outside the breaching set "
        "and within its SLO"
        + (
            f" (considered {', '.join('v' + c['version'] for c in considered)})"
            if considered
            else ""
        ),
        "considered": considered,
    }
