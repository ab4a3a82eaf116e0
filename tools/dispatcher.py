"""Validate -> authorize -> run -> audit, for every tool call by an agent or a person."""

from __future__ import annotations

import importlib
import json
from typing import Any

from pydantic import ValidationError

from core.errors import ModelOpsError, error_from_code
from policies.rbac import Actor, ActorKind
from tools.base import CATALOG, INTERNAL, Tool, ToolError, ToolResult, load_catalog
from tools.context import CallContext, Services
from tools.index import tool_modules

MAX_ARGS_BYTES = 64_000
_AUDIT_ARGS_CHARS = 2000
_ROLES_HINT = "See policies/roles.yaml for what each role may do."


class Dispatcher:
    def __init__(self, services: Services) -> None:
        self.services = services

    @property
    def catalog(self) -> dict[str, Tool]:
        """Every catalog tool. Imports every tool module: a call imports only its own."""
        return load_catalog()

    def _find(self, name: str, *, internal: bool) -> Tool | None:
        """The tool called ``name`` (an internal step only if ``internal``), importing just
        the module that defines it; every module when the static index does not know it."""
        module = tool_modules().get(name)
        if module is not None:
            importlib.import_module(module)
        if name not in CATALOG and not (internal and name in INTERNAL):
            load_catalog()
        tool = CATALOG.get(name)
        if tool is None and internal:
            tool = INTERNAL.get(name)
        return tool

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
        tool = self._find(name, internal=internal and actor.kind == ActorKind.WORKFLOW)
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
                _ROLES_HINT,
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
        # What these arguments need beyond the base permission (production, a person), decided
        # here and not inside the tool: a refusal is audited as denied, never as an allowed
        # call whose outcome happens to be permission_denied.
        call = CallContext(self.services, actor, self)
        permission, refusal = self._further(call, tool, payload)
        if refusal is not None:
            reason, hint = refusal
            audit.append(
                actor,
                name,
                permission,
                decision="denied",
                outcome="permission_denied",
                detail=detail,
                reason=reason,
            )
            return _error(
                name, "permission_denied", f"{actor.describe()} may not call {name}: {reason}", hint
            )
        # A tool with side effects gets its intent row before it acts, so a crash mid-effect
        # leaves an open intent in the audit log rather than an effect without a trace.
        intent = (
            audit.intent(actor, name, permission, detail) if tool.side_effect != "read" else None
        )

        def record(outcome: str, reason: str = "", extra: dict[str, Any] | None = None) -> None:
            full = {**detail, **(extra or {})}
            if intent is None:
                audit.append(
                    actor,
                    name,
                    permission,
                    decision="allowed",
                    outcome=outcome,
                    detail=full,
                    reason=reason,
                )
            else:
                audit.complete(intent, actor, name, permission, outcome, full, reason=reason)

        try:
            output = tool.func(call, payload)
        except ModelOpsError as exc:
            record(exc.code, exc.message)
            return ToolResult(ok=False, tool=name, error=ToolError(**exc.to_dict()))
        except Exception as exc:
            record("bug", f"{type(exc).__name__}: {exc}")
            raise
        dumped = output.model_dump(mode="json")
        # What the call produced, named for the audit trail (e.g. the version it registered).
        refs = {
            k: str(dumped[k]) for k in ("name", "version", "approval_id", "digest") if dumped.get(k)
        }
        if refs.get("name"):
            refs["model"] = refs.pop("name")
        record("ok", extra=refs)
        return ToolResult(ok=True, tool=name, output=dumped)

    def _further(
        self, call: CallContext, tool: Tool, payload: Any
    ) -> tuple[str, tuple[str, str] | None]:
        """The permission this call is audited under (the base one, or the further one these
        arguments need) and, if refused, (reason, hint)."""
        actor = call.actor
        extra = tool.extra_permission(payload)
        permission = extra or tool.permission
        if tool.people_only and actor.kind != ActorKind.HUMAN:
            return permission, (
                "only a person may call it",
                f"Ask a person who holds {permission} to run it.",
            )
        if extra is not None:
            decision = self.services.policy.authorize(actor, extra)
            if not decision.allowed:
                return permission, (decision.reason, _ROLES_HINT)
        if tool.guard is not None:
            reason = tool.guard(call, payload)
            if reason is not None:
                return permission, (reason, "Ask someone else to make this call.")
        return permission, None

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


_NUMBER_ERRORS = frozenset({"float_type", "int_type", "float_parsing", "int_parsing"})


def _loc(loc: tuple) -> str:
    """``features[1]``: field names joined by dots, list positions in brackets; the names of
    union members pydantic inserts (``list[float]``) left out, they are no field of the input."""
    out = ""
    for p in loc:
        if isinstance(p, int):
            out += f"[{p}]"
        elif "[" not in p and p not in ("float", "int", "str", "bool"):
            out += f".{p}" if out else p
    return out or "(arguments)"


def _validation_message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        # A null where a number belongs: name that field once, not every union member's error.
        nulls = [e for e in errors if e["type"] in _NUMBER_ERRORS and e.get("input", 0) is None]
        if nulls:
            shown = sorted({_loc(e["loc"]) for e in nulls})[:5]
            return "invalid arguments: " + "; ".join(
                f"{loc} is null where a number is expected" for loc in shown
            )
        parts = [f"{_loc(e['loc'])}: {e['msg']}" for e in errors[:5]]
        return "invalid arguments: " + "; ".join(parts)
    return f"invalid arguments: {exc}"
