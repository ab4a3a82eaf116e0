"""The MCP server of one agent profile (the SDK's low-level ``Server``): the tools, resources and
prompts that profile may use for the person behind each request, every call through the
dispatcher (validate, authorize, run, audit), exactly as ``agent run`` acts for that person.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import mcp_types as types
from mcp.server.lowlevel import Server

from agents.mcp import prompts, resources
from agents.mcp.errors import REFUSALS, from_exception, mcp_error
from core.errors import ModelOpsError

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from agents.runtime import Runtime
    from agents.supervisor import AgentSystem
    from policies.rbac import Actor
    from tools.base import Tool, ToolResult

CHANNEL = "mcp"

# Who is asking, for one request: the transport decides (stdio: the token or claim this
# process was started with, checked again each time; HTTP: this request's bearer token).
PersonOf = Callable[["ServerRequestContext[Any, Any]"], "Actor"]


class McpGate:
    """What an MCP session may do: the profile's agent actor for a person, with the channel
    ``mcp`` (so every audit row says "mcp client via PROFILE for PERSON"). The launch check
    (a person may not launch a more trusted profile) and its audit row are the supervisor's;
    an allowed launch is remembered per person, role and policy digest."""

    def __init__(self, rt: Runtime, profile: str, *, transport: str, console_url: str) -> None:
        self.rt = rt
        self.profile = profile
        self.transport = transport
        self.console_url = console_url.rstrip("/")
        self._system: AgentSystem | None = None
        self._launched: dict[tuple[str, str, bool, str], Actor] = {}
        self._lock = threading.Lock()

    @property
    def system(self) -> AgentSystem:
        if self._system is None:
            from agents.supervisor import AgentSystem

            self._system = AgentSystem(self.rt)
        return self._system

    def close(self) -> None:
        if self._system is not None:
            self._system.close()

    def agent(self, person: Actor) -> Actor:
        """The agent actor for ``person``; PermissionDenied (audited) if they may not launch
        this profile. Rights are the profile's intersected with the person's (policy.agent)."""
        services = self.rt.services
        key = (person.name, person.role, person.authenticated, services.policy_digest)
        with self._lock:
            actor = self._launched.get(key)
            if actor is None:
                detail = {"via": CHANNEL, "transport": self.transport}
                actor = self.system.launch(self.profile, person, detail, channel=CHANNEL)
                self._launched[key] = actor
            return actor

    # Tools ------------------------------------------------------------------------------
    def tools(self, actor: Actor) -> list[types.Tool]:
        return [mcp_tool(t) for t in sorted(self.rt.dispatcher.tools_for(actor), key=_name)]

    def call(self, actor: Actor, name: str, args: dict[str, Any]) -> types.CallToolResult:
        result = self.rt.dispatcher.call(actor, name, args)
        return self.render(result)

    def render(self, result: ToolResult) -> types.CallToolResult:
        """Structured content is the tool's output model; the text is the same JSON. A call
        that is refused (not this profile's tool, unknown) is an MCP error; a tool's own error
        (bad arguments, not found, a gate) is an ``isError`` result the client's model reads."""
        from agents.role_agent import is_pending_promotion

        if not result.ok:
            error = result.error.model_dump()
            if result.error.code in REFUSALS:
                raise mcp_error({**error, "tool": result.tool})
            text = f"{error['code']}: {error['message']}"
            if error["hint"]:
                text += f"\nHint: {error['hint']}"
            return types.CallToolResult(
                content=[types.TextContent(text=text)],
                structured_content={"ok": False, "tool": result.tool, "error": error},
                is_error=True,
            )
        output = dict(result.output or {})
        note = ""
        if is_pending_promotion(result) and output.get("approval_id"):
            from agents.approval_view import pending_view

            # Read back from the state DB, not from the tool's words: the request as stored.
            view = pending_view(self.rt.services, output["approval_id"], self.console_url)
            output["pending_approval"] = view
            note = (
                f"\n\nStopped at the human approval node: approval {view['approval_id']} is "
                f"{view['status']} and waits for {' or '.join(view['waits_for']) or 'an approver'}"
                f" (evidence sha256 {view['evidence_hash']}). An MCP client cannot decide it; "
                f"a person reviews it at {view['console_url']}."
            )
        text = json.dumps(output, indent=2, default=str) + note
        return types.CallToolResult(
            content=[types.TextContent(text=text)], structured_content=output
        )


def mcp_tool(tool: Tool) -> types.Tool:
    """The tool as the LLM sees it (name, description, input schema) plus its output model."""
    params = tool.openai_spec()["function"]["parameters"]
    return types.Tool(
        name=tool.name,
        description=tool.description,
        input_schema=params,
        output_schema=tool.output_model.model_json_schema(mode="serialization"),
        annotations=types.ToolAnnotations(
            read_only_hint=tool.side_effect == "read",
            open_world_hint=tool.side_effect == "external",
        ),
    )


def _name(tool: Tool) -> str:
    return tool.name


def build_server(gate: McpGate, person_of: PersonOf) -> Server[Any]:
    """The low-level server: each handler finds the actor for this request first (a refused
    person or a revoked token fails that request), then works in a thread (the dispatcher,
    MLflow and the state DB are synchronous)."""

    async def run(ctx: ServerRequestContext[Any, Any], work: Callable[[Actor], Any]) -> Any:
        def job() -> Any:
            actor = gate.agent(person_of(ctx))
            return work(actor)

        try:
            return await anyio.to_thread.run_sync(job)
        except ModelOpsError as exc:
            raise from_exception(exc) from exc

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await run(ctx, gate.tools))

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        args = dict(params.arguments or {})
        return await run(ctx, lambda actor: gate.call(actor, params.name, args))

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(
            resources=await run(ctx, lambda actor: resources.listed(gate.rt, actor))
        )

    async def list_templates(ctx: Any, params: Any) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(
            resource_templates=await run(ctx, lambda actor: resources.templates(gate.rt, actor))
        )

    async def read_resource(
        ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return await run(ctx, lambda actor: resources.read(gate.rt, actor, str(params.uri)))

    async def list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
        return types.ListPromptsResult(
            prompts=await run(ctx, lambda actor: prompts.listed(gate.rt, actor))
        )

    async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        args = dict(params.arguments or {})
        return await run(ctx, lambda actor: prompts.get(gate.rt, actor, params.name, args))

    return Server(
        f"modelops-{gate.profile}",
        version=_version(),
        instructions=(
            f"ModelOps agent profile {gate.profile}: the tools this profile may call for you, "
            "each call checked by policy and audited. A production promotion stops at a human "
            "approval; no MCP client can decide one."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("modelops-agents")
    except PackageNotFoundError:
        return "0"
