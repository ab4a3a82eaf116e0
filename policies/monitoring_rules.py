"""The monitoring policy: the ``monitoring:`` section of the pinned thresholds.yaml.

It lives in thresholds.yaml (not a file of its own) so that it is pinned, digested, diffed
and changed exactly like the promotion thresholds (``agent policy diff|apply``): nothing in
the working directory or the environment swaps it. Parsed strictly (plain Python, cheap to
import): a typo or a string where a number belongs is an error, never a rule that silently
passes. A pinned policy without the section gets ``DEFAULTS`` with automatic rollback off.
"""

from __future__ import annotations

import copy
from typing import Any

DEFAULTS: dict[str, Any] = {
    # The report's window and the rows a verdict needs: below them nothing is judged.
    "window_minutes": 60,
    "min_requests": 100,
    "drift": {
        "drift_share": 0.5,
        "small_reference_rows": 1000,
        "min_rows": 30,
        "thresholds": {
            "ks": 0.05,
            "chisquare": 0.05,
            "z": 0.05,
            "wasserstein": 0.1,
            "jensenshannon": 0.1,
            "psi": 0.1,
        },
    },
    "slo": {"latency_p99_ms": 250.0, "error_rate": 0.05},
    # CBPE-style estimate (HEURISTIC): alert below this expected accuracy.
    "estimated_performance": {"metric": "accuracy", "min": 0.8},
    "auto_rollback": {
        "enabled": False,
        # What may order it: error_rate (server errors and timeouts of the version that
        # served), latency_p99 (single-row answers; load also raises it). estimated_performance
        # is accepted for old pins and never orders: any client chooses the inputs behind it.
        "triggers": ["error_rate"],
        "window_minutes": 5,
        "min_requests": 100,
    },
    "webhook": {"url": "", "secret_env": "MODELOPS_WEBHOOK_SECRET"},
}
ROLLBACK_TRIGGERS = ("latency_p99", "error_rate", "estimated_performance")
_NUMBER_KEYS = {
    "window_minutes": (1, 7 * 24 * 60),
    "min_requests": (1, 10_000_000),
}


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def validate_monitoring(data: Any, where: str = "monitoring") -> list[str]:
    """Problems in a ``monitoring:`` section ([] when it is valid)."""
    if not isinstance(data, dict):
        return [f"{where} must be a mapping"]
    problems: list[str] = []
    models = data.get("models", {})
    if not isinstance(models, dict):
        problems.append(f"{where}.models must map model names to overrides")
        models = {}
    for section, label in [({k: v for k, v in data.items() if k != "models"}, where)] + [
        (v, f"{where}.models.{k}") for k, v in models.items()
    ]:
        if not isinstance(section, dict):
            problems.append(f"{label} must be a mapping")
            continue
        problems += _check(section, DEFAULTS, label)
    return problems


def _check(section: dict[str, Any], schema: dict[str, Any], label: str) -> list[str]:
    problems = []
    for key, value in section.items():
        if key not in schema:
            problems.append(f"{label}: unknown key {key!r}")
            continue
        want = schema[key]
        if isinstance(want, dict):
            if not isinstance(value, dict):
                problems.append(f"{label}.{key} must be a mapping")
            else:
                problems += _check(value, want, f"{label}.{key}")
        elif isinstance(want, bool):
            if not isinstance(value, bool):
                problems.append(f"{label}.{key} must be true or false")
        elif _number(want):
            lo, hi = _NUMBER_KEYS.get(key, (0, float("inf")))
            if not _number(value) or not lo <= value <= hi:
                problems.append(f"{label}.{key} must be a number in [{lo}, {hi}]")
        elif isinstance(want, list):
            if not isinstance(value, list) or not all(v in ROLLBACK_TRIGGERS for v in value):
                problems.append(f"{label}.{key} must list some of {', '.join(ROLLBACK_TRIGGERS)}")
        elif not isinstance(value, str):
            problems.append(f"{label}.{key} must be a string")
    return problems


def monitoring_rules(thresholds: dict[str, Any], model_name: str | None = None) -> dict[str, Any]:
    """The rules in force for a model: defaults, then the pinned section, then its model's
    overrides. ``declared`` says whether the pinned policy has a section at all."""
    section = thresholds.get("monitoring")
    if not isinstance(section, dict):
        return {**copy.deepcopy(DEFAULTS), "declared": False}
    base = {k: v for k, v in section.items() if k != "models"}
    rules = _merge(DEFAULTS, base)
    override = (section.get("models") or {}).get(model_name or "")
    if isinstance(override, dict):
        rules = _merge(rules, override)
    return {**rules, "declared": True}
