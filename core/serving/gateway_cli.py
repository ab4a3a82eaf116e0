"""The gateway process's command line: ``python -m core.serving.gateway --model NAME [flags]``.

By default one worker per core (``--workers 0``); one worker (``--workers 1``) serves from this
process. With more, this process is uvicorn's supervisor and every worker builds the same
gateway from these flags (core.serving.workers).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from core.serving.batching import DEFAULT_MAX_BATCH, DEFAULT_WINDOW_S, check_config
from core.serving.gateway import PREDICT_TIMEOUT_S, Gateway

# How long a thread may hold the GIL before another one waiting for it gets it (Python's
# default is 5 ms). The background threads (prediction-log writer, feedback, shadow mirror)
# otherwise keep the event loop waiting for up to that long: at concurrency 32-64 this is
# the gateway's p99 (benchmarks/serving.py: p99 gateway/floor 3.2x -> 2.2x at c=32 and
# 7.5x -> 1.8x at c=64 in back-to-back runs).
SWITCH_INTERVAL_S = 0.0005


def server_options() -> dict[str, str]:
    """uvicorn's fastest installed HTTP parser and event loop (httptools, uvloop)."""
    import importlib.util

    return {
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
    }


# The gateway's access log: on unless it costs >= 2 % of a request (measured: see the report
# in docs/serving.md); MODELOPS_GATEWAY_ACCESS_LOG=0|1 sets it for gateways a deployment starts.
ACCESS_LOG_ENV = "MODELOPS_GATEWAY_ACCESS_LOG"
ACCESS_LOG_DEFAULT = "0"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True)
    p.add_argument("--environment", default="production")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--poll-seconds", type=float, default=0.5)
    p.add_argument(
        "--predict-timeout",
        type=float,
        default=PREDICT_TIMEOUT_S,
        help="Seconds a thread-run model call may take before the request is answered 504.",
    )
    p.add_argument(
        "--batching",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Gather concurrent single-row requests into one model call (a lone request "
        "never waits).",
    )
    p.add_argument(
        "--batch-window-ms",
        type=float,
        default=DEFAULT_WINDOW_S * 1000,
        help="At most this long to wait for more rows once two or more are waiting.",
    )
    p.add_argument(
        "--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="Rows per model call at most."
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Worker processes sharing the port (0: one per core the machine or container "
        "gives; default: MODELOPS_GATEWAY_WORKERS, else 0). Each reloads the routing table "
        "itself; /health and /metrics count all of them.",
    )
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get(ACCESS_LOG_ENV, ACCESS_LOG_DEFAULT) == "1",
        help="One line per /predict on stderr (gateway.log): time, request id (the "
        f"prediction id), route, status, ms (default: ${ACCESS_LOG_ENV}, else "
        f"{'on' if ACCESS_LOG_DEFAULT == '1' else 'off'}).",
    )
    p.add_argument("--log-json", action="store_true", help="Access log lines as JSON objects.")
    p.add_argument(
        "--routes-file",
        type=Path,
        default=None,
        help="Serve the routes in this JSON file instead of the state DB's revisions.",
    )
    return p


def build_gateway(config: dict[str, Any], worker_dir: Path | None = None) -> Any:
    """The ASGI app of one gateway process (or worker) from the parsed flags."""
    from core.access_log import configure
    from core.serving.app import GatewayApp
    from core.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    configure(
        "modelops.gateway.access",
        enabled=config.get("access_log", False),
        as_json=config.get("log_json", False),
    )
    # A feature beyond float32's range becomes inf on conversion, which parse_features then
    # rejects with a message; numpy's own overflow warning would only add noise per request.
    np.seterr(over="ignore")
    settings = load_settings()
    settings.ensure_home()
    gateway = Gateway(
        config["model"],
        settings.resolved_state_db_url,
        environment=config["environment"],
        poll_seconds=config["poll_seconds"],
        routes_file=Path(config["routes_file"]) if config.get("routes_file") else None,
        predict_timeout_s=config["predict_timeout"],
        batching=config["batching"],
        batch_window_s=config["batch_window_ms"] / 1000,
        max_batch=config["max_batch"],
        worker_dir=worker_dir,
    )
    gateway.refresh()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gateway.server_info = {
        **server_options(),
        "workers": str(config["workers"]),
        "switch_interval_ms": f"{sys.getswitchinterval() * 1000:g}",  # as set, read back
    }
    gateway.write_snapshot()
    # Everything loaded so far lives as long as the process: keep it out of the cyclic
    # GC's scans, which otherwise grow with every import and model (a few µs per request).
    gc.freeze()
    return GatewayApp(gateway)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from core.errors import ModelOpsError
    from core.names import is_valid_name
    from core.serving.workers import SNAPSHOT_DIR, WORKER_CONFIG_ENV, resolve_workers

    p = parser()
    args = p.parse_args(argv)
    for flag, value in (("--model", args.model), ("--environment", args.environment)):
        if not is_valid_name(value):
            p.error(f"{flag} {value!r}: letters, digits, '.', '_' or '-' (at most 128)")
    if not args.predict_timeout > 0:
        p.error(f"--predict-timeout {args.predict_timeout}: must be a positive number of seconds")
    try:
        check_config(args.batch_window_ms / 1000, args.max_batch)
    except ValueError as exc:
        p.error(f"--batch-window-ms/--max-batch: {exc}")
    try:
        if args.workers is None:
            from core.settings import load_settings

            args.workers = load_settings().gateway_workers
        args.workers = resolve_workers(args.workers)
    except (ValueError, ModelOpsError) as exc:
        p.error(f"--workers: {exc}")
    config = {**vars(args), "routes_file": str(args.routes_file) if args.routes_file else None}
    common = {
        "host": args.host,
        "port": args.port,
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "proxy_headers": False,
        **server_options(),
    }
    if args.workers == 1:
        uvicorn.run(build_gateway(config), workers=1, **common)
        return
    from core.serving.process import gateway_dir
    from core.serving.workers import clear_snapshots
    from core.settings import load_settings

    home = load_settings().home_dir
    folder = gateway_dir(home, args.model, args.environment, create=True) / SNAPSHOT_DIR
    clear_snapshots(folder)
    os.environ[WORKER_CONFIG_ENV] = json.dumps({**config, "worker_dir": str(folder)})
    uvicorn.run("core.serving.workers:worker_app", factory=True, workers=args.workers, **common)
