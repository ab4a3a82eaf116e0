"""Strict checks on thresholds.yaml: a typo or a string where a number belongs is an error,
never a gate that silently passes. Plain Python (no pydantic): cheap to import."""

from __future__ import annotations

from typing import Any

from core.errors import InvalidInput


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Keys of a thresholds section (default, or one model's overrides). A task section holds the
# task's own TASK_KEYS; classification tasks fall back to the section's top level.
TASK_SECTIONS = ("binary", "multiclass", "regression")
TASK_KEYS = ("primary_metric", "minimums", "maximums")
SECTION_KEYS = {"comparison", "block_inconclusive", *TASK_KEYS, *TASK_SECTIONS}
LEGACY_KEYS = {"champion_tolerance"}  # the first bundled policy's; ignored, kept loadable
STATUSES = ("IMPLEMENTED", "HEURISTIC", "PLANNED")


def _task_keys(where: str, section: dict[str, Any]) -> list[str]:
    """primary_metric, minimums and maximums of one section or task section."""
    problems = []
    if "primary_metric" in section and not isinstance(section["primary_metric"], str):
        problems.append(f"{where}.primary_metric must be a metric name")
    for kind in ("minimums", "maximums"):
        if kind not in section:
            continue
        bounds = section[kind]
        if not isinstance(bounds, dict):
            problems.append(f"{where}.{kind} must be a mapping")
            continue
        for status, limits in bounds.items():
            if status not in STATUSES:
                problems.append(
                    f"{where}.{kind}.{status}: not an implementation status ({', '.join(STATUSES)})"
                )
            elif not isinstance(limits, dict) or not all(_number(v) for v in limits.values()):
                problems.append(f"{where}.{kind}.{status} must map metric names to numbers")
    return problems


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
        unknown = set(section) - SECTION_KEYS - LEGACY_KEYS
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        if "block_inconclusive" in section and not isinstance(section["block_inconclusive"], bool):
            problems.append(f"{where}.block_inconclusive must be true or false")
        comparison = section.get("comparison", {})
        if not isinstance(comparison, dict):
            problems.append(f"{where}.comparison must be a mapping")
        else:
            for k, v in comparison.items():
                if not _number(v):
                    problems.append(f"{where}.comparison.{k} must be a number")
        problems += _task_keys(where, section)
        for task in TASK_SECTIONS:
            if task not in section:
                continue
            sub = section[task]
            if not isinstance(sub, dict):
                problems.append(f"{where}.{task} must be a mapping")
                continue
            unknown = set(sub) - set(TASK_KEYS)
            if unknown:
                problems.append(f"{where}.{task}: unknown keys {sorted(unknown)}")
            if where == "default" and task == "regression":
                for key in ("primary_metric", "minimums"):
                    if key not in sub:
                        problems.append(f"default.regression.{key} is required")
            problems += _task_keys(f"{where}.{task}", sub)
    if problems:
        raise InvalidInput(
            f"invalid thresholds {source}: " + "; ".join(problems[:8]),
            hint="Fix thresholds.yaml; numbers are plain numbers, unknown keys are refused.",
        )
    return data
