"""Helpers shared by the agent tests (imported by test_agents_*, test_rbac_matrix and
test_prompt_injection; this module holds no tests itself).

- ``module_home``: one MODELOPS_HOME for a whole module, for suites whose cases each snapshot
  the state they must not change (MLflow's first start in a home costs ~6 s).
- ``register_models``: the two quickstart versions, registered through the tool as dana.
- ``snapshot``: everything an unauthorized call could change: registry, aliases, tags,
  descriptions, deployments, approvals.
- ``sample_args``: arguments that pass a tool's input validation, so a test reaches the policy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.models import MODEL, register_models  # noqa: F401  (shared with suites)

MISSING = "missing-model"
_CLEARED_ENV = (
    "MODELOPS_USER",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "MODELOPS_STATE_DB_URL",
    "MODELOPS_TRACKING_URI",
    "MODELOPS_CONFIG",
    "MODELOPS_GRAPHS_DB",
)


@contextmanager
def module_home(base: Path) -> Iterator[Any]:
    """A runtime on its own MODELOPS_HOME (like the ``rt`` fixture, for a module scope)."""
    from agents.runtime import build_runtime
    from core.settings import load_settings

    with pytest.MonkeyPatch.context() as mp:
        for var in _CLEARED_ENV:
            mp.delenv(var, raising=False)
        mp.setenv("MODELOPS_HOME", str(base / "home"))
        mp.chdir(base)
        rt = build_runtime(load_settings())
        try:
            yield rt
        finally:
            for name in rt.services.deployments.list_deployments():
                rt.services.deployments.stop_gateway(name)


def snapshot(rt: Any) -> dict[str, Any]:
    services = rt.services
    reg = services.registry
    models = reg.list_models()
    versions = {
        m["name"]: [
            (v.version, sorted(v.aliases), dict(v.tags), v.description)
            for v in reg.list_versions(m["name"])
        ]
        for m in models
    }
    deployments = {
        name: [r.model_dump() for r in services.deployments.status(name).history]
        for name in services.deployments.list_deployments()
    }
    approvals = [(a.id, a.status.value, a.decided_by) for a in services.approvals.list()]
    return {
        "models": models,
        "versions": versions,
        "deployments": deployments,
        "approvals": approvals,
    }


def agent_system(rt: Any, **kwargs: Any) -> Any:
    """An AgentSystem whose LLM client gives up fast (tests never wait for retries)."""
    from agents.llm import LLMConfig
    from agents.supervisor import AgentSystem

    config = LLMConfig.from_env(settings=rt.settings, timeout_s=5.0, max_retries=0)
    return AgentSystem(rt, llm_config=config, **kwargs)


# Sample arguments -----------------------------------------------------------------------
# Values tried, in order, for a string field with a pattern; the first that matches is used.
_PATTERN_POOL = (
    "1",
    "apr-00000000",
    "ab-00000000",
    "0" * 32,
    "0" * 64,
    f"{MISSING}@champion",
    f"{MISSING}/1",
    MISSING,
)
_KNOWN = {
    "name": MISSING,
    "version": "1",
    "treatment_version": "2",  # an A/B test compares two different versions
    "dataset": "missing.csv",
    "thread_id": "thread-that-does-not-exist",
    "features": [0.0],  # predict: one of its input forms (a row)
}


def _sample(schema: dict[str, Any], defs: dict[str, Any], field_name: str) -> Any:
    if "$ref" in schema:
        return _sample(defs[schema["$ref"].split("/")[-1]], defs, field_name)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return _sample(options[0], defs, field_name)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _sample(props[k], defs, k) for k in schema.get("required", [])}
    if kind == "array":
        n = schema.get("minItems", 0)
        return [_sample(schema["items"], defs, field_name) for _ in range(n)]
    if kind == "boolean":
        return False
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if "pattern" in schema:
        pattern = re.compile(schema["pattern"])
        for candidate in (_KNOWN.get(field_name), *_PATTERN_POOL):
            if candidate is not None and pattern.search(candidate):
                return candidate
        raise AssertionError(f"no sample value for {field_name} matching {schema['pattern']}")
    value = _KNOWN.get(field_name, "x")
    return value.ljust(schema.get("minLength", 0), "x")


def sample_args(tool: Any) -> dict[str, Any]:
    """Arguments that pass ``tool``'s input validation and name objects that do not exist."""
    from pydantic import ValidationError

    schema = tool.json_schema()
    defs = schema.get("$defs", {})
    props = schema.get("properties", {})
    required = {k: _sample(props[k], defs, k) for k in schema.get("required", [])}
    known = {k: _sample(props[k], defs, k) for k in props if k in _KNOWN}
    if props.get("force", {}).get("type") == "boolean":
        # A drafting tool writes to a default folder; a second allowed caller would find it
        # taken. The matrix tests decisions, so let each allowed call write.
        required = {**required, "force": True}
    # Try the plain required fields, then with the usual identifying fields (a model
    # validator may need one of several optional references).
    for candidate in (required, {**known, **required}):
        try:
            tool.input_model.model_validate(candidate)
        except ValidationError:
            continue
        return candidate
    raise AssertionError(f"tests/test_agents_support.py cannot build valid args for {tool.name}")
