"""``agent serve``: the team control plane (REST, OpenAI-compatible agents, approval console)
over this home's services and dispatcher. See docs/control-plane.md."""

from __future__ import annotations

import ipaddress

import click

from agents.cli.common import runtime


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--chat-rate",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Chat requests a minute per token (0: no limit).",
)
@click.option("--chat-burst", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1024),
    default=1_000_000,
    show_default=True,
    help="Larger request bodies get 413.",
)
@click.option(
    "--public-url",
    metavar="URL",
    help="The address people use (behind a proxy), for console links in chat responses.",
)
@click.option(
    "--secure-cookies/--no-secure-cookies",
    default=None,
    help="Mark console cookies Secure (default: when the request came over https; a TLS "
    "proxy on 127.0.0.1 sets X-Forwarded-Proto).",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="warning",
    show_default=True,
    help="Server log level (start-up, errors); the access log has its own switch.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One line per request on stderr: time, request id, person, method, route, status, ms.",
)
@click.option("--log-json", is_flag=True, help="Write log lines as JSON objects.")
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    chat_rate: float,
    chat_burst: int,
    max_body_bytes: int,
    public_url: str | None,
    secure_cookies: bool | None,
    log_level: str,
    access_log: bool,
    log_json: bool,
) -> None:
    """Serve the control plane: REST + OpenAPI, /v1/chat/completions, the approval console.

    Every request acts as the owner of its bearer token (console: the token signed in with);
    embedded CLI use of this home stays possible alongside."""
    import gc

    import uvicorn

    from agents.server.app import create_app
    from agents.server.plane import ServerConfig

    if ctx.find_root().obj.get("server"):
        raise click.UsageError("`agent serve` runs the server; drop --server / MODELOPS_SERVER.")
    config = ServerConfig(
        host=host,
        port=port,
        chat_per_minute=chat_rate,
        chat_burst=chat_burst,
        max_body_bytes=max_body_bytes,
        public_url=public_url.rstrip("/") if public_url else None,
        secure_cookies=secure_cookies,
    )
    from core.access_log import configure

    configure("modelops.server.access", enabled=access_log, as_json=log_json)
    app = create_app(runtime(ctx), config)
    # What start-up loaded lives as long as the server: keep it out of the cyclic GC's full
    # scans, which otherwise pause a request for ~100 ms now and then.
    gc.freeze()
    where = public_url or f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    click.echo(f"ModelOps control plane on {where}  (console {where}/console/, API {where}/docs)")
    if not _loopback(host):
        click.echo(
            "Warning: listening beyond this machine; put TLS in front (tokens travel in headers "
            "and cookies).",
            err=True,
        )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        server_header=False,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
