"""``agent mcp``: an agent profile's tools, resources and prompts as an MCP server (the official
``mcp`` SDK), for one person over stdio or for each bearer token over streamable HTTP; every
call goes through the dispatcher's policy check and audit. See docs/mcp.md."""
