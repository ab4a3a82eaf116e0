"""Start, find and stop the detached gateway process of one model deployment.

Each gateway records its pid, process start time, port and URL in
``MODELOPS_HOME/gateways/NAME/gateway.json`` (``NAME@ENVIRONMENT`` for environments other than
``local``), so any later CLI call can find it. A pid is signalled only while it still is that
gateway (command line and start time match, checked with psutil): a stale record whose pid now
belongs to another process is cleaned up without killing anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.errors import Conflict, ExternalServiceError
from core.names import validate_name

GATEWAY_FILE = "gateway.json"
# The gateway's working directory, empty and its own: ONNX Runtime and other libraries resolve
# relative paths there (an external-data tensor, a relative file name), so no file of the
# checkout or of the caller's folder is ever within reach of a relative path.
GATEWAY_CWD = "cwd"
GATEWAY_MODULE = "core.serving.gateway"
_ROOT = Path(__file__).resolve().parents[2]
# psutil's create_time is derived from boot time + start ticks: equal for one process, but
# allow for float rounding between reads.
_CREATE_TIME_TOLERANCE = 0.5
log = logging.getLogger(__name__)


def gateway_dir(home: Path, model_name: str, environment: str, *, create: bool = False) -> Path:
    """``home/gateways/NAME`` (``NAME@ENVIRONMENT`` off production), after both names are checked;
    created only when ``create`` (looking a gateway up never makes folders)."""
    validate_name("model", model_name)
    validate_name("environment", environment)
    d = (
        home
        / "gateways"
        / (model_name if environment == "production" else f"{model_name}@{environment}")
    )
    if create:
        d.mkdir(parents=True, exist_ok=True)
    return d


def gateway_cwd(gdir: Path) -> Path:
    """``gdir/cwd``, created empty if missing; Conflict if anything is in it (we never put
    anything there, so whatever is there was written by someone else)."""
    cwd = gdir / GATEWAY_CWD
    if cwd.is_symlink() or (cwd.exists() and not cwd.is_dir()):
        raise Conflict(f"the gateway's working directory {cwd} is not a plain folder")
    cwd.mkdir(mode=0o700, exist_ok=True)
    if any(cwd.iterdir()):
        raise Conflict(
            f"the gateway's working directory {cwd} is not empty; a gateway starts only in "
            "an empty folder of its own",
            hint=f"Look at what is in it, remove it (rm -r {cwd}), then start the gateway again.",
        )
    return cwd


def _child_state_db_url(url: str) -> str:
    """``url`` with a relative SQLite path made absolute against our own working directory
    (the gateway runs in another one)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    db = parsed.database
    if (
        parsed.get_backend_name() != "sqlite"
        or not db
        or db == ":memory:"
        or db.startswith("file:")
    ):
        return url
    if Path(db).is_absolute():
        return url
    return parsed.set(database=str(Path(db).resolve())).render_as_string(hide_password=False)


def gateway_environments(home: Path, model_name: str) -> list[str]:
    """Targets of ``model_name`` that have a gateway record on disk."""
    root = home / "gateways"
    if not root.is_dir():
        return []
    out = []
    for d in root.iterdir():
        if not (d / GATEWAY_FILE).exists():
            continue
        name, _, environment = d.name.partition("@")
        if name == model_name:
            out.append(environment or "production")
    return sorted(out)


def read_gateway(home: Path, model_name: str, environment: str) -> dict[str, Any]:
    meta_file = gateway_dir(home, model_name, environment) / GATEWAY_FILE
    if not meta_file.exists():
        return {"running": False}
    meta = json.loads(meta_file.read_text())
    if "target" in meta:  # a record written before the rename
        old = meta.pop("target")
        meta.setdefault("environment", "production" if old == "local" else old)
    meta["running"] = is_our_gateway(meta, model_name, environment)
    return meta


def start_gateway(
    home: Path,
    state_db_url: str,
    model_name: str,
    *,
    environment: str,
    host: str,
    port: int,
    timeout: float,
    poll_seconds: float,
    batching: bool = True,
    batch_window_ms: float | None = None,
    max_batch: int | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Start the gateway detached (own session, log file) and wait until /health answers.

    ``batching``/``batch_window_ms``/``max_batch``: micro-batching of concurrent single-row
    requests (``core.serving.batching``; None keeps the gateway's default). ``workers``:
    worker processes on the port (``core.serving.workers``; None or 0: one per core)."""
    from core.serving.batching import batching_flags
    from core.serving.workers import resolve_workers

    batch_flags = batching_flags(batching, batch_window_ms, max_batch)
    n_workers = resolve_workers(workers)
    if port == 0:
        port = free_port(host)
    gdir = gateway_dir(home, model_name, environment, create=True)
    cwd = gateway_cwd(gdir)
    log_path = gdir / "gateway.log"
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    # The child imports this same checkout (its cwd no longer is it), ahead of anything else.
    pythonpath = os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {
        **os.environ,
        "MODELOPS_STATE_DB_URL": _child_state_db_url(state_db_url),
        "MODELOPS_HOME": str(Path(home).resolve()),
        "PYTHONPATH": pythonpath,
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            GATEWAY_MODULE,
            "--model",
            model_name,
            "--environment",
            environment,
            "--host",
            host,
            "--port",
            str(port),
            "--poll-seconds",
            str(poll_seconds),
            *batch_flags,
            "--workers",
            str(n_workers),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        cwd=str(cwd),
    )
    log.close()
    url = f"http://{host}:{port}"
    meta = {
        "pid": proc.pid,
        "create_time": _create_time(proc.pid),
        "host": host,
        "port": port,
        "url": url,
        "environment": environment,
        "state_db": state_db_fingerprint(state_db_url),
        "log": str(log_path),
        "started_at": time.time(),
        "batching": {"enabled": batching, "window_ms": batch_window_ms, "max_batch": max_batch},
        "workers": n_workers,
    }
    (gdir / GATEWAY_FILE).write_text(json.dumps(meta))
    wait_healthy(url, proc, timeout, log_path)
    return {**meta, "running": True}


def state_db_fingerprint(url: str) -> str:
    """Which state DB a gateway reads, without writing its URL (maybe with a password) down."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def stop_gateway(home: Path, model_name: str, environment: str) -> bool:
    """SIGTERM (then SIGKILL) the gateway if its recorded pid still is that gateway; remove
    the record either way. True when a process was stopped."""
    info = read_gateway(home, model_name, environment)
    pid = info.get("pid")
    stopped = False
    if info.get("running") and pid:
        os.kill(pid, signal.SIGTERM)
        # The gateway flushes its prediction log on SIGTERM before it exits.
        for _ in range(200):
            if not pid_alive(pid):
                break
            time.sleep(0.05)
        else:
            if is_our_gateway(info, model_name, environment):
                os.kill(pid, signal.SIGKILL)
        stopped = True
    elif isinstance(pid, int) and pid_alive(pid):
        log.warning(
            "gateway record of %s@%s names pid %s, which is not that gateway any more; "
            "removing the stale record without signalling it",
            model_name,
            environment,
            pid,
        )
    meta_file = gateway_dir(home, model_name, environment) / GATEWAY_FILE
    if meta_file.exists():
        meta_file.unlink()
    return stopped


def is_our_gateway(meta: dict[str, Any], model_name: str, environment: str) -> bool:
    """True while ``meta["pid"]`` is alive and is the gateway this record was written for:
    its command line runs ``core.serving.gateway`` for this model and environment, and its start
    time is the one recorded at start. Anything else (a reused pid, a record without a start
    time, a process we may not inspect) is not ours and is never signalled."""
    import psutil

    pid, recorded = meta.get("pid"), meta.get("create_time")
    if not isinstance(pid, int) or pid <= 0 or not isinstance(recorded, int | float):
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
        started = proc.create_time()
    except (psutil.Error, OSError):
        return False
    return (
        abs(started - recorded) <= _CREATE_TIME_TOLERANCE
        and GATEWAY_MODULE in cmdline
        and _flag(cmdline, "--model") == model_name
        and _launched_environment(cmdline) == environment
    )


def _launched_environment(cmdline: list[str]) -> str | None:
    """The environment a gateway was started for; one started before the rename says
    ``--target local`` (production) and is still recognized, so it can be stopped."""
    env = _flag(cmdline, "--environment")
    if env is None and (old := _flag(cmdline, "--target")) is not None:
        env = "production" if old == "local" else old
    return env


def _flag(cmdline: list[str], name: str) -> str | None:
    try:
        return cmdline[cmdline.index(name) + 1]
    except (ValueError, IndexError):
        return None


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return True


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise ExternalServiceError(
                f"gateway exited with code {proc.returncode} during start-up",
                hint=f"Its log ends with:\n{tail}",
            )
        try:
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet: poll again until the deadline
        time.sleep(0.1)
    raise ExternalServiceError(
        f"gateway at {url} not healthy after {timeout:.0f} s", hint=f"See {log}."
    )
