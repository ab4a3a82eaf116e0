"""What each live version of a deployment looks like from outside: its traffic share, what the
gateway's /health says of it, and its server outcomes in the prediction log over the policy's
monitoring window (counted as the monitoring report counts them; edge refusals apart)."""

from __future__ import annotations

from typing import Any

from tools.context import Services


def live_serving(
    services: Services, name: str, environment: str, rev: Any, health: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Each live version's weight, gateway health and window SLO (server outcomes only)."""
    if rev is None or not rev.live_versions:
        return []
    from core.monitoring.slo import version_slo
    from core.monitoring.window import read_window
    from policies.monitoring_rules import monitoring_rules

    minutes = float(monitoring_rules(services.thresholds, name).get("window_minutes", 60))
    window = read_window(services.engine, name, environment=environment, seconds=minutes * 60)
    by_version = {v.get("version"): v for v in (health or {}).get("versions") or []}
    weights = rev.weights()
    out = []
    for version in rev.live_versions:
        slo = version_slo(window, version)
        gw = by_version.get(version)
        out.append(
            {
                "version": version,
                "weight": weights.get(version, 0.0),
                "health": None
                if health is None
                else {
                    "gateway_status": health.get("status"),
                    "loaded": gw is not None,
                    "honesty_compliant": (gw or {}).get("honesty_compliant"),
                    "runtime": (gw or {}).get("runtime"),
                    "requests_since_start": (gw or {}).get("requests"),
                    "server_errors_since_start": (gw or {}).get("server_errors"),
                },
                "window_minutes": minutes,
                "requests": slo["requests"],
                "server_errors": slo["server_errors"],
                "error_rate": slo["error_rate"],
                "p99_ms": slo["p99_ms"],
                "refused_at_edge": slo["refused_at_edge"],
            }
        )
    return out
