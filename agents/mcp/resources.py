"""Read-only MCP resources: the model registry, an approval's evidence and a monitoring report.

Each resource is one read through the dispatcher (``list_models``, ``get_model``,
``get_approval``, ``monitor_report`` without an HTML file), so it needs the same rights as the
tool and leaves the same audit row; a resource whose tool the actor may not call is not listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import mcp_types as types

from agents.mcp.errors import mcp_error
from core.errors import NotFound

if TYPE_CHECKING:
    from agents.runtime import Runtime
    from policies.rbac import Actor

SCHEME = "modelops"
MIME = "application/json"


@dataclass(frozen=True)
class Kind:
    """One family of resources: ``modelops://HOST[/{ARG}]`` read with ``tool``."""

    host: str
    tool: str
    arg: str | None  # the tool argument the URI's path names (None: no path)
    name: str
    description: str

    @property
    def uri_template(self) -> str:
        return f"{SCHEME}://{self.host}" + (f"/{{{self.arg}}}" if self.arg else "")


KINDS = [
    Kind("models", "list_models", None, "models", "Registered models (the registry)."),
    Kind(
        "models",
        "get_model",
        "name",
        "model",
        "A registered model: its versions, aliases (champion, challenger) and honesty metadata.",
    ),
    Kind(
        "approvals",
        "get_approval",
        "approval_id",
        "approval",
        "An approval request: state, evidence (gates, measured metrics, validation) and its hash.",
    ),
    Kind(
        "monitoring",
        "monitor_report",
        "model_id",
        "monitoring-report",
        "Monitoring report of NAME (its live versions), NAME/3 or NAME@champion in production.",
    ),
]


def _allowed(rt: Runtime, actor: Actor, tool: str) -> bool:
    catalog_tool = rt.dispatcher.catalog.get(tool)
    if catalog_tool is None:
        return False
    return rt.services.policy.authorize(actor, catalog_tool.permission).allowed


def listed(rt: Runtime, actor: Actor) -> list[types.Resource]:
    return [
        types.Resource(name=k.name, uri=k.uri_template, description=k.description, mime_type=MIME)
        for k in KINDS
        if k.arg is None and _allowed(rt, actor, k.tool)
    ]


def templates(rt: Runtime, actor: Actor) -> list[types.ResourceTemplate]:
    return [
        types.ResourceTemplate(
            name=k.name, uri_template=k.uri_template, description=k.description, mime_type=MIME
        )
        for k in KINDS
        if k.arg is not None and _allowed(rt, actor, k.tool)
    ]


def parse(uri: str) -> tuple[Kind, dict[str, Any]]:
    """The resource family and tool arguments a URI names; NotFound for any other URI. The
    values are checked by the tool's own input model, as any caller's arguments are."""
    parts = urlsplit(uri)
    path = unquote(parts.path.lstrip("/"))
    if parts.scheme == SCHEME and not (parts.query or parts.fragment):
        for k in KINDS:
            if parts.netloc != k.host or (k.arg is None) != (not path):
                continue
            # Only a model id has a slash of its own (NAME/3); a name or an id has none.
            if k.arg is None or k.arg == "model_id" or "/" not in path:
                return k, ({k.arg: path} if k.arg else {})
    raise NotFound(
        f"no resource {uri[:200]!r}",
        hint="Resources: " + ", ".join(k.uri_template for k in KINDS) + ".",
    )


def read(rt: Runtime, actor: Actor, uri: str) -> types.ReadResourceResult:
    """One read through the dispatcher: refused, audited and checked as the tool call is."""
    kind, args = parse(uri)
    result = rt.dispatcher.call(actor, kind.tool, args)
    if not result.ok:
        raise mcp_error({**result.error.model_dump(), "tool": kind.tool})
    text = json.dumps(result.output, indent=2, default=str)
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=uri, mime_type=MIME, text=text)]
    )
