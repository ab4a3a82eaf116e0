"""Strict checks on thresholds.yaml: a typo or a string where a number belongs is an error,
never a gate that silently passes. Plain Python (no pydantic): cheap to import."""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_thresholds(data: Any, source: str = "thresholds.yaml") -> dict[str, Any]:
    """Strict enough that a typo or a string where a number belongs is an error, not a gate."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: expected a mapping at the top level")
    extra = set(data) - {"default", "models", "monitoring"}
    if extra:
        problems.append(f"unknown keys {sorted(extra)}")
    if "monitoring" in data:  # the monitoring policy (policies/monitoring_rules.py)
        from policies.monitoring_rules import validate_monitoring

        problems += validate_monitoring(data["monitoring"])
    default = data.get("default")
    if not isinstance(default, dict):
        problems.append("default must be a mapping")
        default = {}
    models = data.get("models") or {}
    if not isinstance(models, dict):
        problems.append("models must be a mapping of model name to overrides")
        models = {}
    for where, section in [("default", default)] + [(f"models.{k}", v) for k, v in models.items()]:
        if not isinstance(section, dict):
            problems.append(f"{where} must be a mapping")
            continue
        if where == "default":
            for key in ("primary_metric", "comparison", "minimums"):
                if key not in section:
                    problems.append(f"default.{key} is required")
        if "primary_metric" in section and not isinstance(section["primary_metric"], str):
            problems.append(f"{where}.primary_metric must be a metric name")
        if "block_inconclusive" in section and not isinstance(section["block_inconclusive"], bool):
            problems.append(f"{where}.block_inconclusive must be true or false")
        comparison = section.get("comparison", {})
        if not isinstance(comparison, dict):
            problems.append(f"{where}.comparison must be a mapping")
        else:
            for k, v in comparison.items():
                if not _number(v):
                    problems.append(f"{where}.comparison.{k} must be a number")
        minimums = section.get("minimums", {})
        if not isinstance(minimums, dict):
            problems.append(f"{where}.minimums must be a mapping")
            continue
        for status, limits in minimums.items():
            if not isinstance(limits, dict) or not all(_number(v) for v in limits.values()):
                problems.append(f"{where}.minimums.{status} must map metric names to numbers")
    if problems:
        raise InvalidInput(
            f"invalid thresholds {source}: " + "; ".join(problems[:8]),
            hint="Fix thresholds.yaml; numbers are plain numbers, unknown keys are refused.",
        )
    return data
