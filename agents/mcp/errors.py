"""ModelOps errors as MCP errors: a JSON-RPC code for the kind of refusal, the message with its
hint, and the dispatcher's error itself (code, message, hint) as the error's ``data``."""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError

from core.errors import ModelOpsError

# The -32000..-32099 range is the server's own; -32002 is MCP's "resource not found".
FORBIDDEN = -32003
UNAUTHENTICATED = -32004
RESOURCE_NOT_FOUND = -32002
_CODES = {
    "unauthenticated": UNAUTHENTICATED,
    "permission_denied": FORBIDDEN,
    "unknown_tool": types.INVALID_PARAMS,
    "not_found": RESOURCE_NOT_FOUND,
    "invalid_input": types.INVALID_PARAMS,
}
# Dispatcher results that are refusals of the call itself (not the tool's own error).
REFUSALS = ("permission_denied", "unknown_tool")


def mcp_error(error: dict[str, Any]) -> MCPError:
    text = error["message"] + (f" Hint: {error['hint']}" if error.get("hint") else "")
    return MCPError(_CODES.get(error["code"], types.INTERNAL_ERROR), text, data=error)


def from_exception(exc: ModelOpsError) -> MCPError:
    return mcp_error(exc.to_dict())
