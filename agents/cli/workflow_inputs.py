"""Input schemas of the named workflows (for ``agent workflow list``), and the workflows
that are PLANNED: listed with their seed input shape, never run and never faked."""

from __future__ import annotations

import importlib
from typing import Any

from core.errors import ModelOpsError

# workflow -> (module, attribute): a tool name (its input model) or a pydantic model.
SCHEMA_SOURCES: dict[str, tuple[str, str]] = {
    "ml-model-evaluation": ("tool", "evaluate_model"),
    "promotion": ("tool", "request_promotion"),
    "ml-model-registry": ("tool", "register_own_model"),
    "mlops-deployment": ("agents.deployment_workflow", "DeploymentRequest"),
    "ml-experiment-tracker": ("tool", "track_experiment"),
    "ml-feature-engineering": ("tool", "engineer_features"),
    "ml-model-monitoring": ("agents.monitoring_workflow", "MonitoringRequest"),
    "ml-ab-testing": ("agents.monitoring_workflow", "ABTestRequest"),
}
PLANNED: dict[str, dict[str, Any]] = {}


class WorkflowPlanned(ModelOpsError):
    code = "planned"
    exit_code = 1


def planned_error(name: str) -> WorkflowPlanned:
    return WorkflowPlanned(
        f"workflow {name} is PLANNED: it is not implemented in this build, so nothing was run",
        hint=f"It lands with the {PLANNED[name]['issue']} issue; `agent workflow list` shows "
        "what runs today.",
    )


def input_schema(name: str) -> dict[str, Any] | None:
    """The JSON Schema of a workflow's input (None when it cannot be read here)."""
    if name in PLANNED:
        return None
    module, attr = SCHEMA_SOURCES.get(name, ("", ""))
    try:
        if module == "tool":
            from tools.base import CATALOG
            from tools.dispatcher import Dispatcher  # noqa: F401  (index + catalog)
            from tools.index import tool_modules

            importlib.import_module(tool_modules()[attr])
            return CATALOG[attr].json_schema()
        if module:
            return getattr(importlib.import_module(module), attr).model_json_schema()
    except (KeyError, ImportError, AttributeError):
        return None
    return None


def schema_summary(schema: dict[str, Any] | None) -> str:
    """``field*: type, ...`` (``*`` = required) for a terminal line."""
    if not schema:
        return ""
    required = set(schema.get("required", []))
    parts = []
    for key, spec in schema.get("properties", {}).items():
        kind = (
            spec.get("type")
            or "/".join(
                s.get("type", "object") for s in spec.get("anyOf", []) if s.get("type") != "null"
            )
            or "object"
        )
        parts.append(f"{key}{'*' if key in required else ''}: {kind}")
    return ", ".join(parts)
