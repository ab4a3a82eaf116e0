"""``agent mcp --profile NAME [--transport stdio|streamable-http]``: serve an agent profile's
tools, resources and prompts to MCP clients (IDE assistants, desktop chat apps, agent
frameworks) through the same policy gate and audit as ``agent run``. See docs/mcp.md."""

from __future__ import annotations

import ipaddress

import click

from agents.cli.common import as_option, runtime


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.command("mcp")
@click.option("--profile", required=True, metavar="NAME", help="Agent profile (roles.yaml).")
@click.option(
    "--transport",
    type=click.Choice(["stdio", "streamable-http"]),
    default="stdio",
    show_default=True,
    help="stdio: one person (token or --as); streamable-http: a bearer token per request.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP: address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option(
    "--console-url",
    metavar="URL",
    envvar="MODELOPS_CONSOLE_URL",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="The control plane people open (`agent serve`): pending approvals link to its console.",
)
@click.option("--log-level", default="warning", show_default=True, help="HTTP server log level.")
@as_option
@click.pass_context
def mcp(
    ctx: click.Context,
    profile: str,
    transport: str,
    host: str,
    port: int,
    console_url: str,
    log_level: str,
    as_user: str | None,
) -> None:
    """Serve agent PROFILE's tools as an MCP server: exactly what `agent tool list --profile
    PROFILE` shows for the person, each call checked and audited ("mcp client via PROFILE
    for PERSON"). No MCP client can decide an approval."""
    from agents.mcp.server import McpGate

    if ctx.find_root().obj.get("server"):
        raise click.UsageError("`agent mcp` serves this home; drop --server / MODELOPS_SERVER.")
    from_flag = ctx.get_parameter_source("as_user") == click.core.ParameterSource.COMMANDLINE
    if transport == "streamable-http" and as_user and from_flag:
        raise click.UsageError(
            "--as is for stdio; over HTTP each request's bearer token names the person."
        )
    rt = runtime(ctx)
    gate = McpGate(rt, profile, transport=transport, console_url=console_url)
    ctx.call_on_close(gate.close)
    if transport == "stdio":
        from agents.mcp.transports import run_stdio

        run_stdio(gate, as_user or rt.settings.user)  # stdout is the protocol: print nothing
        return
    from agents.mcp.transports import MCP_PATH, run_http

    if profile not in rt.services.policy.profiles:
        raise click.BadParameter(f"unknown agent profile {profile!r}", param_hint="--profile")
    where = f"http://{host if ':' not in host else f'[{host}]'}:{port}{MCP_PATH}"
    click.echo(f"ModelOps MCP server ({profile}) on {where}  (Authorization: Bearer)", err=True)
    if not _loopback(host):
        click.echo(
            "Warning: listening beyond this machine; put TLS in front (tokens travel in headers).",
            err=True,
        )
    run_http(gate, host=host, port=port, log_level=log_level)
