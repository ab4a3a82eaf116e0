"""Validate -> authorize -> run -> audit, for every tool call by an agent or a person."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from core.errors import ModelOpsError, error_from_code
from policies.rbac import Actor, ActorKind
from tools.base import INTERNAL, Tool, ToolError, ToolResult, load_catalog
from tools.context import CallContext, Services

MAX_ARGS_BYTES = 64_000
_AUDIT_ARGS_CHARS = 2000


class Dispatcher:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.catalog = load_catalog()

    def tools_for(self, actor: Actor) -> list[Tool]:
        """The tools this actor's role may call: the only schemas an LLM is shown."""
        policy = self.services.policy
        return [t for t in self.catalog.values() if policy.authorize(actor, t.permission).allowed]

    def call(
        self,
        actor: Actor,
        name: str,
        args: dict[str, Any] | str | None = None,
        *,
        internal: bool = False,
    ) -> ToolResult:
        """Run a catalog tool; ``internal=True`` also reaches workflow steps, for workflow
        principals only."""
        audit = self.services.audit
        tool = self.catalog.get(name)
        if tool is None and internal and actor.kind == ActorKind.WORKFLOW:
            tool = INTERNAL.get(name)
        raw = args if isinstance(args, str) else json.dumps(args or {}, default=str)
        detail = {"args": raw[:_AUDIT_ARGS_CHARS]}
        if tool is None:
            audit.append(
                actor,
                name[:128],
                "unknown",
                decision="denied",
                outcome="unknown_tool",
                detail=detail,
                reason="no such tool",
            )
            return _error(
                name,
                "unknown_tool",
                f"there is no tool named {name!r}",
                f"Available tools: {', '.join(t.name for t in self.tools_for(actor))}.",
            )
        # Permission first: a caller learns nothing about the schema of a tool it may not use.
        decision = self.services.policy.authorize(actor, tool.permission)
        if not decision.allowed:
            audit.append(
                actor,
                name,
                tool.permission,
                decision="denied",
                outcome="permission_denied",
                detail=detail,
                reason=decision.reason,
            )
            return _error(
                name,
                "permission_denied",
                f"{actor.describe()} may not call {name}: {decision.reason}",
                "See policies/roles.yaml for what each role may do.",
            )
        try:
            if len(raw) > MAX_ARGS_BYTES:
                raise ValueError(f"arguments are {len(raw)} bytes; the limit is {MAX_ARGS_BYTES}")
            parsed = json.loads(raw) if isinstance(args, str) else (args or {})
            if not isinstance(parsed, dict):
                raise ValueError("arguments must be a JSON object")
            payload = tool.input_model.model_validate(parsed)
        except (ValueError, ValidationError) as exc:
            message = _validation_message(exc)
            audit.append(
                actor,
                name,
                tool.permission,
                decision="denied",
                outcome="invalid_input",
                detail=detail,
                reason=message,
            )
            return _error(
                name, "invalid_input", message, f"Arguments must match the {name} schema."
            )
        try:
            output = tool.func(CallContext(self.services, actor, self), payload)
        except ModelOpsError as exc:
            audit.append(
                actor,
                name,
                tool.permission,
                decision="allowed",
                outcome=exc.code,
                detail=detail,
                reason=exc.message,
            )
            return ToolResult(ok=False, tool=name, error=ToolError(**exc.to_dict()))
        except Exception as exc:
            audit.append(
                actor,
                name,
                tool.permission,
                decision="allowed",
                outcome="bug",
                detail=detail,
                reason=f"{type(exc).__name__}: {exc}",
            )
            raise
        audit.append(actor, name, tool.permission, decision="allowed", outcome="ok", detail=detail)
        return ToolResult(ok=True, tool=name, output=output.model_dump(mode="json"))

    def call_or_raise(
        self, actor: Actor, name: str, args: dict[str, Any] | None = None, *, internal: bool = False
    ) -> dict[str, Any]:
        """For callers (CLI, workflow) that want an exception instead of an error result."""
        result = self.call(actor, name, args, internal=internal)
        if result.ok:
            return result.output or {}
        raise error_from_code(result.error.code, result.error.message, result.error.hint)


def _error(tool: str, code: str, message: str, hint: str) -> ToolResult:
    return ToolResult(ok=False, tool=tool, error=ToolError(code=code, message=message, hint=hint))


def _validation_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(p) for p in e["loc"]) or "(arguments)"
            parts.append(f"{loc}: {e['msg']}")
        return "invalid arguments: " + "; ".join(parts)
    return f"invalid arguments: {exc}"
