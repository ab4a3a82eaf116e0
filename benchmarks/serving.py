"""Serving benchmark: one 100-tree random forest behind three servers, measured side by side.

1. our gateway (core.serving) serving the ONNX version registered by optimize_model, with
   routing, prediction logging to the state DB, Prometheus metrics and honesty labels on:
   as it starts by default (micro-batching on, one worker process per core), once with one
   worker (``--workers 1``, batching on) and once with ``--no-batching`` (workers per core);
2. ``mlflow models serve --env-manager local`` serving the scikit-learn version;
3. the floor: a minimal raw-ASGI server calling ONNX Runtime on the same ONNX graph
   (written here, same uvicorn settings as the gateway).

Load: wrk (Debian package) on 127.0.0.1, closed loop, single-row JSON, at concurrency 1, 8
32 and 64, a bounded number of seconds per cell, in rounds (the median of three by default);
falls back to a Python asyncio client when wrk is missing. Every server is stopped at the end.

Run: .venv/bin/python benchmarks/serving.py [--seconds 5] [--rounds 3] [--concurrency 1,8,32,64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

# Run as a script from a checkout: make the repo root importable without installing it.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

MODEL = "bench-forest"
HOST = "127.0.0.1"
TARGET_VS_MLFLOW = 100.0
TARGET_VS_FLOOR = 0.5
TARGET_P99_MS = 2.0
SERVERS = ("gateway", "gw-1worker", "gw-nobatch", "mlflow", "floor")
# Batching targets (every gateway feature on): throughput and p99 against the floor at high
# concurrency, at c=8, and a lone client's p50 against the same gateway with batching off.
TARGET_HIGH_C_VS_FLOOR = 1.0
TARGET_HIGH_C_P99_VS_FLOOR = 2.0
TARGET_C8_VS_FLOOR = 0.8
TARGET_C1_P50_VS_NOBATCH = 1.10

FLOOR_SERVER = textwrap.dedent(
    """
    import sys
    import numpy as np, onnxruntime as ort, orjson, uvicorn

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(open(sys.argv[1], "rb").read(), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = (await receive())["body"]
        if scope["path"] != "/predict":
            out = b'{"status":"ok"}'
        else:
            x = np.array([orjson.loads(body)["features"]], dtype=np.float32)
            labels, proba = sess.run(None, {name: x})
            out = orjson.dumps({"prediction": labels.item(0), "probabilities": proba[0]},
                               option=orjson.OPT_SERIALIZE_NUMPY)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", b"%d" % len(out))]})
        await send({"type": "http.response.body", "body": out})

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), http=sys.argv[3], loop=sys.argv[4],
                access_log=False, log_level="warning", lifespan="off", proxy_headers=False)
    """
)


@dataclass
class Cell:
    server: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def median_cell(server: str, concurrency: int, cells: list[Cell]) -> Cell:
    """One figure per server and concurrency: the median of its rounds (requests and errors
    summed)."""
    return Cell(
        server,
        concurrency,
        statistics.median(c.rps for c in cells),
        statistics.median(c.p50_ms for c in cells),
        statistics.median(c.p99_ms for c in cells),
        sum(c.requests for c in cells),
        sum(c.errors for c in cells),
    )


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # still starting
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


# Load generators ---------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(url: str, body: bytes, concurrency: int, seconds: float, work: Path) -> Cell:
    body_file = work / f"body-{abs(hash(body))}.json"
    body_file.write_bytes(body)
    script = work / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*a"); f:close()\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    threads = 1 if concurrency == 1 else 2
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{seconds:g}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return Cell("", concurrency, rps, p50, p99, total, errors)


def run_python_client(url: str, body: bytes, concurrency: int, seconds: float, work: Path) -> Cell:
    """Closed-loop keep-alive HTTP/1.1 client (used when wrk is not installed)."""
    host, port_path = url.removeprefix("http://").split(":", 1)
    port, path = port_path.split("/", 1)
    request = (
        f"POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = 0

    async def client(deadline: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            writer.write(request)
            status = await reader.readuntil(b"\r\n")
            headers = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", headers).group(1))
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += not status.split()[1].startswith(b"2")
        writer.close()

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(client(deadline) for _ in range(concurrency)))

    asyncio.run(main())
    latencies.sort()
    n = len(latencies)
    return Cell(
        "", concurrency, n / seconds, latencies[n // 2], latencies[int(n * 0.99)], n, errors
    )


# Set-up ------------------------------------------------------------------------------
def prepare(home: Path) -> dict:
    """Register the forest (v1, scikit-learn) and its ONNX optimization (v2); serve v2 on the
    staging gateway with complete honesty labels."""
    os.environ["MODELOPS_HOME"] = str(home)
    for var in (
        "MODELOPS_STATE_DB_URL",
        "MODELOPS_TRACKING_URI",
        "MODELOPS_CONFIG",
        "MODELOPS_GATEWAY_WORKERS",  # the gateways run with the default: one worker per core
        "MODELOPS_GATEWAY_BATCHING",
    ):
        os.environ.pop(var, None)
    from agents.runtime import build_runtime
    from core.registry import local_path
    from core.settings import load_settings
    from core.training import load_breast_cancer_split, train_quickstart_models, write_holdout_csv

    rt = build_runtime(load_settings())
    data = load_breast_cancer_split()
    forest = next(t for t in train_quickstart_models(data) if t.kind == "random_forest")
    reg = rt.services.registry
    run_id = reg.log_sklearn_run(
        forest.model,
        X_sample=data.train[data.feature_names].head(3),
        honesty=forest.honesty,
        run_name="bench-forest",
        dataset=data.train,
    )
    sk = reg.register_from_run(MODEL, run_id, honesty=forest.honesty)
    holdout = write_holdout_csv(data, home / "holdout.csv")
    dana = rt.services.policy.human("dana")
    out = rt.dispatcher.call_or_raise(
        dana,
        "optimize_model",
        {"model_id": f"{MODEL}/{sk.version}", "dataset": str(holdout), "benchmark_seconds": 0.5},
    )
    onnx_version = out["version"]
    # The benchmark's stand-in for QA's verdict, so every response carries all labels.
    reg.set_tags(MODEL, onnx_version, {"validation_status": "PASSED"})
    gw = rt.dispatcher.call_or_raise(
        dana, "deploy_to_staging", {"name": MODEL, "version": onnx_version}
    )
    onnx_info = reg.get(MODEL, onnx_version)
    return {
        "rt": rt,
        "gateway_url": gw["gateway_url"],
        "sklearn_dir": reg.verified_local_path(reg.get(MODEL, sk.version)),
        "onnx_file": local_path(onnx_info.artifact_uri) / "model.onnx",
        "row": data.holdout[data.feature_names].iloc[0].tolist(),
        "columns": list(data.feature_names),
        "optimizer": out,
    }


def start(cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
        cwd=str(ROOT),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0, help="Duration of each cell.")
    p.add_argument(
        "--rounds", type=int, default=3, help="Cells per server and concurrency (median taken)."
    )
    p.add_argument("--concurrency", default="1,8,32,64")
    args = p.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    if args.rounds < 1 or args.seconds <= 0:
        p.error("--rounds must be at least 1 and --seconds positive")
    load = run_wrk if shutil.which("wrk") else run_python_client
    progress(
        f"load generator: {'wrk' if load is run_wrk else 'Python asyncio client (wrk not found)'}"
    )

    from core.serving.gateway_cli import server_options
    from core.serving.process import free_port

    opts = server_options()
    work = Path(tempfile.mkdtemp(prefix="modelops-bench-"))
    procs: list[subprocess.Popen] = []
    rt = None
    try:
        progress("training, registering and optimizing a 100-tree random forest")
        env = prepare(work / "home")
        rt = env["rt"]
        bin_dir = str(Path(sys.executable).parent)
        mlflow_port, floor_port = free_port(HOST), free_port(HOST)
        nobatch_port, one_port = free_port(HOST), free_port(HOST)

        def gateway(port: int, *flags: str) -> list[str]:
            """A gateway process on the staging deployment, with these extra flags."""
            return [
                sys.executable,
                "-m",
                "core.serving.gateway",
                "--model",
                MODEL,
                "--environment",
                "staging",
                "--host",
                HOST,
                "--port",
                str(port),
                *flags,
            ]

        progress("starting a gateway with one worker process")
        one_gw = start(gateway(one_port, "--workers", "1"), work / "gateway-1worker.log")
        progress("starting a second gateway with micro-batching off")
        nobatch = start(gateway(nobatch_port, "--no-batching"), work / "gateway-nobatch.log")
        progress("starting mlflow models serve and the floor server")
        procs.append(
            start(
                [
                    str(Path(bin_dir) / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(env["sklearn_dir"]),
                    "--env-manager",
                    "local",
                    "-h",
                    HOST,
                    "-p",
                    str(mlflow_port),
                ],
                work / "mlflow.log",
                env={
                    **os.environ,
                    "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
                    "MLFLOW_DISABLE_TELEMETRY": "true",
                },
            )
        )
        floor_py = work / "floor.py"
        floor_py.write_text(FLOOR_SERVER)
        procs.append(
            start(
                [
                    sys.executable,
                    str(floor_py),
                    str(env["onnx_file"]),
                    str(floor_port),
                    opts["http"],
                    opts["loop"],
                ],
                work / "floor.log",
            )
        )
        wait_ready(f"http://{HOST}:{mlflow_port}/ping", procs[0])
        wait_ready(f"http://{HOST}:{floor_port}/health", procs[1])
        procs.extend([nobatch, one_gw])
        wait_ready(f"http://{HOST}:{nobatch_port}/health", nobatch)
        wait_ready(f"http://{HOST}:{one_port}/health", one_gw)
        row = env["row"]
        features = json.dumps({"features": row}).encode()
        servers = {
            "gateway": (f"{env['gateway_url']}/predict", features),
            "gw-1worker": (f"http://{HOST}:{one_port}/predict", features),
            "gw-nobatch": (f"http://{HOST}:{nobatch_port}/predict", features),
            "mlflow": (
                f"http://{HOST}:{mlflow_port}/invocations",
                json.dumps(
                    {"dataframe_split": {"columns": env["columns"], "data": [row]}}
                ).encode(),
            ),
            "floor": (f"http://{HOST}:{floor_port}/predict", features),
        }
        for name, (url, body) in servers.items():
            r = httpx.post(url, content=body, headers={"content-type": "application/json"})
            r.raise_for_status()
            progress(f"{name} answers: {r.text[:160]}")
        before = httpx.get(f"{env['gateway_url']}/health").json()["prediction_log"]["written"]
        cells: list[Cell] = []
        for url, body in servers.values():
            load(url, body, 1, 1.0, work)  # warm-up
        # Interleaved: each concurrency on every server in turn, in rounds (the order turned
        # each round), so that a burst of the machine's background load hits every server
        # alike; each figure is the median over the rounds.
        for c in levels:
            rounds: dict[str, list[Cell]] = {name: [] for name in servers}
            names = list(servers)
            for r in range(args.rounds):
                for name in names[r % len(names) :] + names[: r % len(names)]:
                    url, body = servers[name]
                    cell = load(url, body, c, args.seconds, work)
                    rounds[name].append(cell)
                    progress(
                        f"{name:10} c={c:<3} round {r + 1}/{args.rounds} {cell.rps:>9,.0f} req/s  "
                        f"p50 {cell.p50_ms:7.3f} ms  p99 {cell.p99_ms:8.3f} ms  errors {cell.errors}"
                    )
            cells += [median_cell(name, c, got) for name, got in rounds.items()]
        time.sleep(1.5)  # one more flush interval of the prediction log
        health = httpx.get(f"{env['gateway_url']}/health").json()
        report(
            cells,
            levels,
            health,
            before,
            env["optimizer"],
            opts,
            args.seconds,
            "wrk" if load is run_wrk else "python",
            args.rounds,
        )
    finally:
        for proc in procs:
            stop(proc)
        if rt is not None:
            rt.services.deployments.stop_gateway(MODEL)
        shutil.rmtree(work, ignore_errors=True)


def report(
    cells: list[Cell],
    levels: list[int],
    health: dict,
    logged_before: int,
    optimizer: dict,
    opts: dict,
    seconds: float,
    tool: str,
    rounds: int = 1,
) -> None:
    by = {(c.server, c.concurrency): c for c in cells}
    print()
    print(
        f"Serving benchmark: 100-tree random forest, single-row JSON, {tool} on 127.0.0.1, "
        f"{seconds:g} s per cell (median of {rounds} rounds), {os.cpu_count()} CPUs, uvicorn http={opts['http']} loop={opts['loop']}"
    )
    print(f"gateway (default start): {len(health.get('workers') or [None])} worker process(es)")
    header = f"{'server':<10} {'conc':>4} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>9} {'errors':>7}"
    print(header)
    print("-" * len(header))
    for c in sorted(cells, key=lambda c: (SERVERS.index(c.server), c.concurrency)):
        print(
            f"{c.server:<10} {c.concurrency:>4} {c.rps:>10,.0f} {c.p50_ms:>8.3f} {c.p99_ms:>9.3f} {c.errors:>7}"
        )
    print()
    print(
        f"{'conc':>4} {'gateway/mlflow':>15} {'gateway/floor':>14} {'1 worker/floor':>16} "
        f"{'nobatch/floor':>14} {'p99 gw/floor':>13} {'p99 1w/floor':>13} "
        f"{'p50 gw/nobatch':>15} {'batching on/off':>16}"
    )
    for c in levels:
        g, w, n, m, f = (by[(s, c)] for s in SERVERS)
        print(
            f"{c:>4} {g.rps / m.rps:>14,.1f}x {g.rps / f.rps:>13.2f}x {w.rps / f.rps:>15.2f}x "
            f"{n.rps / f.rps:>13.2f}x {g.p99_ms / f.p99_ms:>12.2f}x {w.p99_ms / f.p99_ms:>12.2f}x "
            f"{g.p50_ms / n.p50_ms:>14.2f}x {g.rps / n.rps:>15.2f}x"
        )
    log = health["prediction_log"]
    gw_requests = sum(c.requests for c in cells if c.server == "gateway")
    print()
    print(
        f"gateway prediction log: {log['written'] - logged_before:,} rows written during the run "
        f"for ~{gw_requests:,} measured requests (plus warm-up), dropped {log['dropped']}, "
        f"flush errors {log['flush_errors']}; honesty compliant: {health['honesty_compliant']}"
    )
    print(f"optimizer: {optimizer['reason']}")
    if 8 in levels:
        g, m, f = by[("gateway", 8)], by[("mlflow", 8)], by[("floor", 8)]
        checks = [
            (
                f"throughput at c=8 >= {TARGET_VS_MLFLOW:g}x mlflow",
                g.rps / m.rps >= TARGET_VS_MLFLOW,
            ),
            (f"throughput at c=8 >= {TARGET_VS_FLOOR:g}x floor", g.rps / f.rps >= TARGET_VS_FLOOR),
            (f"p99 at c=8 < {TARGET_P99_MS:g} ms", g.p99_ms < TARGET_P99_MS),
            (
                "no failed gateway request",
                all(
                    c.errors == 0
                    for c in cells
                    if c.server.startswith("gw") or c.server == "gateway"
                ),
            ),
        ]
        for label, ok in checks:
            print(f"  {'PASS' if ok else 'FAIL'}  {label}")
    for label, ok in batching_checks(by, levels):
        print(f"  {'PASS' if ok else 'FAIL'}  {label}")
    batching = health.get("batching") or {}
    if batching.get("batches"):
        print(
            f"micro-batching: {batching['rows']:,} rows in {batching['batches']:,} model calls "
            f"({batching['rows'] / batching['batches']:.2f} rows per call)"
        )
    if 32 in levels:
        g, w, f = by[("gateway", 32)], by[("gw-1worker", 32)], by[("floor", 32)]
        print(f"c=32 gateway/floor {g.rps / f.rps:.2f}x (1 worker: {w.rps / f.rps:.2f}x)")


def batching_checks(by: dict, levels: list[int]) -> list[tuple[str, bool]]:
    """The micro-batching targets for the concurrency levels that were run."""
    checks = []
    for c in (c for c in (32, 64) if c in levels):
        g, f = by[("gateway", c)], by[("floor", c)]
        checks.append(
            (
                f"throughput at c={c} >= {TARGET_HIGH_C_VS_FLOOR:g}x floor",
                g.rps / f.rps >= TARGET_HIGH_C_VS_FLOOR,
            )
        )
        checks.append(
            (
                f"p99 at c={c} <= {TARGET_HIGH_C_P99_VS_FLOOR:g}x floor",
                g.p99_ms <= TARGET_HIGH_C_P99_VS_FLOOR * f.p99_ms,
            )
        )
    if 8 in levels:
        g, f = by[("gateway", 8)], by[("floor", 8)]
        checks.append(
            (
                f"throughput at c=8 >= {TARGET_C8_VS_FLOOR:g}x floor",
                g.rps / f.rps >= TARGET_C8_VS_FLOOR,
            )
        )
    if 1 in levels:
        g, n = by[("gateway", 1)], by[("gw-nobatch", 1)]
        checks.append(
            (
                "p50 at c=1 within 10% of batching off",
                g.p50_ms <= TARGET_C1_P50_VS_NOBATCH * n.p50_ms,
            )
        )
    return checks


if __name__ == "__main__":
    main()
