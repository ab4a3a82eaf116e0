"""The supervisor: launches role agents for a person, routes requests, and runs hand-offs.

A person may launch (and an agent may hand work to) only profiles whose role is no more
trusted than their own, so a hand-off never gains a permission: every hop acts on behalf of
the same human, is audited (``agent_run`` / ``handoff``), and the hop depth is bounded.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.planner import AgentRequest, OfflinePlanner, parse_request, plan_message
from agents.profiles import may_delegate
from agents.role_agent import (
    DEFAULT_MAX_STEPS,
    OK_STATUSES,
    ChatModel,
    Event,
    LLMChatModel,
    RoleAgentGraph,
    RunContext,
    ToolBudget,
    citations,
    handoff_spec,
)
from core.errors import PermissionDenied
from policies.rbac import Actor, Policy
from tools.base import ToolError, ToolResult
from tools.dispatcher import MAX_ARGS_BYTES

if TYPE_CHECKING:
    from agents.llm import LLMClient, LLMConfig
    from agents.runtime import Runtime

SUPERVISOR = "supervisor"
RUN_PERMISSION = "agents:run"
HANDOFF_PERMISSION = "agents:handoff"
DEFAULT_MAX_DEPTH = 2

# Offline routing: the first rule that matches names the profile (else ml-engineer).
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(validat|verif|qa\b|quality|test)", re.I), "qa-tester"),
    (
        re.compile(r"\b(design|architect|review|pull request|pr\b|runbook|document)", re.I),
        "architect",
    ),
    (
        re.compile(r"\b(roll\s*-?\s*back|deploy|rollout|serving|gateway|health)", re.I),
        "mlops-engineer",
    ),
    (re.compile(r"\b(compare|explain|metric)", re.I), "data-scientist"),
]
_DEFAULT_ROUTE = "ml-engineer"


class HandoffInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    profile: str = Field(min_length=1, max_length=128)
    task: str = Field(min_length=1, max_length=4000)


@dataclass(frozen=True)
class RouteDecision:
    profile: str
    reason: str
    by: str  # llm | keywords | tool


def launchable_profiles(policy: Policy, person: Actor) -> list[str]:
    """Profiles this person may launch: none more trusted than their own role."""
    mine = policy.trust(person)
    return [
        name
        for name, prof in sorted(policy.profiles.items())
        if may_delegate(mine, policy.roles[prof.role].trust)
    ]


class AgentSystem:
    """Runs role agents for people: the entry point of ``agent run`` and ``agent chat``."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        llm_config: LLMConfig | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_depth: int = DEFAULT_MAX_DEPTH,
        checkpoint_db: Path | None = None,
    ) -> None:
        from agents.llm import UsageTracker

        self.runtime = runtime
        self.services = runtime.services
        self.dispatcher = runtime.dispatcher
        self.max_steps = max_steps
        self.max_depth = max_depth
        self.usage = UsageTracker()
        self._llm_config = llm_config
        self._client: LLMClient | None = None
        self._specs: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.graph = RoleAgentGraph(
            self.dispatcher, checkpoint_db or runtime.settings.home_dir / "agents.db"
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self.graph.close()

    # Models ---------------------------------------------------------------------------
    def llm_config(self) -> LLMConfig:
        from agents.llm import LLMConfig

        return self._llm_config or LLMConfig.from_env(settings=self.runtime.settings)

    def model_for(self, request: AgentRequest) -> ChatModel:
        """Structured input needs no model; text goes to the LLM when one is configured."""
        config = self.llm_config()
        if request.structured or not config.is_configured():
            return OfflinePlanner()
        if self._client is None:
            from agents.llm import LLMClient

            self._client = LLMClient(config, usage=self.usage)
        return LLMChatModel(self._client)

    # Who may run what ---------------------------------------------------------------------
    @property
    def policy(self) -> Policy:
        """The policy in force, read from the services each time: a long-running process
        (agent serve) that notices a newly applied policy must not keep the old one here."""
        return self.services.policy

    def launchable(self, person: Actor) -> list[str]:
        """Profiles this person may launch: none more trusted than their own role."""
        return launchable_profiles(self.policy, person)

    def _person(self, user: str | Actor | None) -> Actor:
        """The person an agent acts for; an Actor keeps how its identity was established."""
        if isinstance(user, Actor):
            return self.policy.human(user.responsible_human, authenticated=user.authenticated)
        return self.policy.human(user)

    def launch(
        self,
        profile: str,
        user: str | Actor | None,
        detail: dict[str, Any],
        *,
        channel: str | None = None,
    ) -> Actor:
        """The agent actor for ``profile`` on behalf of ``user``; audited either way.
        ``channel`` names how an outside client reached it (``mcp``), for the audit."""
        person = self._person(user)
        audit = self.services.audit
        if profile not in self.launchable(person):
            reason = (
                f"unknown agent profile {profile!r}"
                if profile not in self.policy.profiles
                else f"{person.name} ({person.role}, {self.policy.trust(person)}) may not "
                f"launch the more trusted profile {profile}"
            )
            audit.append(
                person,
                "agent_run",
                RUN_PERMISSION,
                decision="denied",
                outcome="permission_denied",
                detail={"profile": profile[:128], **detail},
                reason=reason,
            )
            raise PermissionDenied(
                reason, hint=f"Profiles you may run: {', '.join(self.launchable(person))}."
            )
        actor = self.policy.agent(profile, person, channel=channel)
        audit.append(
            person,
            "agent_run",
            RUN_PERMISSION,
            decision="allowed",
            outcome="started",
            detail={"profile": profile, **detail},
        )
        return actor

    # Runs -------------------------------------------------------------------------------
    def run(
        self,
        profile: str,
        request: str | dict[str, Any] | AgentRequest,
        *,
        user: str | Actor | None,
        thread_id: str | None = None,
        on_event: Callable[[Event], None] | None = None,
        stream: bool = False,
        dry_run: bool = False,
        route: RouteDecision | None = None,
    ) -> dict[str, Any]:
        """Run ``profile`` (or ``supervisor``: route first, unless ``route`` is the decision
        already made) on a request for ``user``; ``dry_run``: make no call that writes."""
        req = request if isinstance(request, AgentRequest) else parse_request(request)
        if route is None and profile == SUPERVISOR and SUPERVISOR not in self.policy.profiles:
            route = self.route(req, user)
        if route is not None:
            profile = route.profile
            if on_event is not None:
                on_event({"type": "route", "profile": profile, "reason": route.reason})
        thread_id = thread_id or f"agt-{uuid.uuid4().hex[:12]}"
        model = self.model_for(req)
        detail = {"thread_id": thread_id, "model": model.name}
        if route is not None:
            detail["routed_by"] = f"supervisor ({route.by}): {route.reason}"[:500]
        if dry_run:
            detail["dry_run"] = True
        actor = self.launch(profile, user, detail)
        # One budget for the whole run, hand-offs included, from the policy in force now.
        budget = ToolBudget.from_rules(self.policy.agents)
        ctx = self._context(
            actor, model, 0, [profile], on_event, stream, dry_run=dry_run, budget=budget
        )
        result = self.graph.run(
            ctx,
            thread_id=thread_id,
            user_message=req.message,
            depth=0,
            chain=[profile],
            max_steps=self.max_steps,
        )
        result["citations"] = citations(result)
        result["usage"] = self.usage.snapshot()
        result["route"] = asdict(route) if route else None
        result["dry_run"] = dry_run
        return result

    def _context(
        self,
        actor: Actor,
        model: ChatModel,
        depth: int,
        chain: list[str],
        on_event: Callable[[Event], None] | None,
        stream: bool,
        *,
        dry_run: bool = False,
        budget: ToolBudget,
    ) -> RunContext:
        targets = self.handoff_targets(actor, chain) if depth < self.max_depth else []
        specs = list(self._tool_specs(actor))
        if targets:
            specs.append(handoff_spec(targets, {t: self._describe(t) for t in targets}))
        prof = self.policy.profiles[actor.name]
        role = self.policy.roles[prof.role]
        return RunContext(
            actor=actor,
            model=model,
            tool_specs=specs,
            persona=prof.persona,
            grants=role.grants,
            trust=role.trust,
            stream=stream,
            on_event=on_event,
            handoff=self._handoff,
            handoff_targets=targets,
            dry_run=dry_run,
            budget=budget,
        )

    def _tool_specs(self, actor: Actor) -> list[dict[str, Any]]:
        # Only the schemas of tools the role may call ever reach the model.
        key = (self.services.policy_digest, actor.name, actor.role)
        if key not in self._specs:
            self._specs[key] = [t.openai_spec() for t in self.dispatcher.tools_for(actor)]
        return self._specs[key]

    def _describe(self, profile: str) -> str:
        prof = self.policy.profiles[profile]
        return f"{prof.role} ({self.policy.roles[prof.role].grants})"

    # Hand-offs ----------------------------------------------------------------------------
    def handoff_targets(self, actor: Actor, chain: list[str]) -> list[str]:
        mine = self.policy.trust(actor)
        return [
            name
            for name, prof in sorted(self.policy.profiles.items())
            if name not in chain and may_delegate(mine, self.policy.roles[prof.role].trust)
        ]

    def _handoff(
        self, ctx: RunContext, state: dict[str, Any], call_id: str, raw: str
    ) -> tuple[ToolResult, dict[str, Any] | None]:
        """The synthetic ``handoff`` tool: validate, authorize, audit, run the other agent."""
        caller = ctx.actor
        depth, chain = state.get("depth", 0) + 1, state.get("chain", [caller.name])
        detail: dict[str, Any] = {
            "args": raw[:2000],
            "depth": depth,
            "thread_id": state["thread_id"],
        }

        def refuse(code: str, message: str, hint: str) -> tuple[ToolResult, None]:
            self.services.audit.append(
                caller,
                "handoff",
                HANDOFF_PERMISSION,
                decision="denied",
                outcome=code,
                detail=detail,
                reason=message,
            )
            return ToolResult(
                ok=False, tool="handoff", error=ToolError(code=code, message=message, hint=hint)
            ), None

        try:
            if len(raw) > MAX_ARGS_BYTES:
                raise ValueError(f"arguments are {len(raw)} bytes; the limit is {MAX_ARGS_BYTES}")
            args = HandoffInput.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            return refuse("invalid_input", _input_error(exc), "Send {profile, task}.")
        target = args.profile
        allowed = self.handoff_targets(caller, chain)
        hint = f"Hand-off targets for {caller.name}: {', '.join(allowed) or 'none'}."
        if target not in self.policy.profiles:
            return refuse("not_found", f"no agent profile named {target!r}", hint)
        if depth > self.max_depth:
            return refuse(
                "permission_denied",
                f"hand-off depth limit {self.max_depth} reached",
                "Finish here.",
            )
        if target in chain:
            return refuse(
                "permission_denied", f"{target} is already in this hand-off chain ({chain})", hint
            )
        sub_actor = self.policy.agent(target, self._person(caller))
        if not may_delegate(self.policy.trust(caller), self.policy.trust(sub_actor)):
            return refuse(
                "permission_denied",
                f"{caller.describe()} may not hand work to the more trusted profile {target}",
                hint,
            )
        sub_thread = f"{state['thread_id']}/{target}-{uuid.uuid4().hex[:6]}"
        detail.update(to=target, task=args.task[:2000], sub_thread_id=sub_thread)
        self.services.audit.append(
            caller,
            "handoff",
            HANDOFF_PERMISSION,
            decision="allowed",
            outcome="delegated",
            detail=detail,
        )
        ctx.emit(
            {
                "type": "handoff",
                "from": caller.name,
                "to": target,
                "task": args.task,
                "depth": depth,
            }
        )
        sub_chain = [*chain, target]
        sub_ctx = self._context(
            sub_actor, ctx.model, depth, sub_chain, ctx.on_event, ctx.stream, budget=ctx.budget
        )
        sub = self.graph.run(
            sub_ctx,
            thread_id=sub_thread,
            user_message=f"Task from agent {caller.name} ({caller.role}), on behalf of "
            f"{caller.on_behalf_of}: {args.task}",
            depth=depth,
            chain=sub_chain,
            max_steps=self.max_steps,
        )
        sub.pop("transcript")
        ctx.emit(
            {
                "type": "handoff_done",
                "from": caller.name,
                "to": target,
                "status": sub["status"],
                "depth": depth,
            }
        )
        hop = {
            "call_id": call_id,
            "from": caller.name,
            "to": target,
            "task": args.task,
            "thread_id": sub_thread,
            "depth": depth,
            "status": sub["status"],
            "pending_approval": sub["pending_approval"],
            "result": sub,
        }
        output = {
            "profile": target,
            "thread_id": sub_thread,
            "status": sub["status"],
            "answer": sub["answer"],
            "tool_calls": [
                {"tool": c["tool"], "ok": c["ok"], "code": c["code"]} for c in sub["tool_calls"]
            ],
            "pending_approval": sub["pending_approval"],
        }
        if sub["status"] in OK_STATUSES:
            return ToolResult(ok=True, tool="handoff", output=output), hop
        err = sub.get("error") or {"code": sub["status"], "message": sub["answer"], "hint": ""}
        return ToolResult(ok=False, tool="handoff", output=output, error=ToolError(**err)), hop

    # Routing ----------------------------------------------------------------------------
    def route(self, request: AgentRequest, user: str | Actor | None) -> RouteDecision:
        """Pick the profile for a request among those the person may launch."""
        person = self._person(user)
        candidates = self.launchable(person)
        if request.structured:
            return self._route_structured(request, person, candidates)
        config = self.llm_config()
        if config.is_configured():
            decision = self._route_with_llm(request.message, candidates)
            if decision is not None:
                return decision
        return _route_keywords(request.message, candidates, person, self.policy.profiles)

    def _route_structured(
        self, request: AgentRequest, person: Actor, candidates: list[str]
    ) -> RouteDecision:
        tool = plan_message(request.message).calls[0][0]
        for name in [_DEFAULT_ROUTE, *candidates]:
            if name in candidates:
                actor = self.policy.agent(name, person.name)
                if any(t.name == tool for t in self.dispatcher.tools_for(actor)):
                    return RouteDecision(name, f"{name} may call {tool}", "tool")
        return _route_keywords(request.message, candidates, person, self.policy.profiles)

    def _route_with_llm(self, text: str, candidates: list[str]) -> RouteDecision | None:
        spec = {
            "type": "function",
            "function": {
                "name": "route",
                "description": "Choose the agent profile that should handle the request.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "profile": {"type": "string", "enum": candidates},
                        "reason": {"type": "string", "maxLength": 500},
                    },
                    "required": ["profile"],
                },
            },
        }
        profiles = "\n".join(
            f"- {n}: {self._describe(n)}. {self.policy.profiles[n].persona}" for n in candidates
        )
        model = self.model_for(AgentRequest("text", text))
        reply = model.respond(
            [
                {
                    "role": "system",
                    "content": "Route the request to one agent profile by calling route. "
                    f"Profiles:\n{profiles}",
                },
                {"role": "user", "content": text},
            ],
            [spec],
        )
        for call in reply.tool_calls:
            if call.name != "route":
                continue
            try:
                args = json.loads(call.arguments or "{}")
            except json.JSONDecodeError:
                return None  # an unreadable choice: fall back to the keyword rules
            if isinstance(args, dict) and args.get("profile") in candidates:
                return RouteDecision(args["profile"], str(args.get("reason", ""))[:500], "llm")
        return None


def _route_keywords(
    text: str, candidates: list[str], person: Actor, profiles: dict[str, Any]
) -> RouteDecision:
    wanted = next((p for pattern, p in _ROUTES if pattern.search(text)), _DEFAULT_ROUTE)
    if wanted in candidates:
        return RouteDecision(wanted, f"request matches {wanted}'s work", "keywords")
    own = [n for n in candidates if profiles[n].role == person.role] or candidates
    return RouteDecision(
        own[0], f"{wanted} fits the request but {person.name} may not launch it", "keywords"
    )


def _input_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
            for e in exc.errors()[:5]
        ]
        return "invalid arguments: " + "; ".join(parts)
    return f"invalid arguments: {exc}"
