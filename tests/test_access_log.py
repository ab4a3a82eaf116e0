"""Access logs: `agent serve` and the gateway write one structured line per request (time,
request id, person for the control plane, route, status, ms), as text or JSON, with no token
and no body."""

from __future__ import annotations

import io
import json
import logging

import pytest

from core.access_log import configure
from tests import test_server_support as support
from tests.test_server_support import bearer

app, client, tokens = support.app, support.client, support.tokens


@pytest.fixture
def access_stream(monkeypatch):
    """The server's access logger, configured as `agent serve --log-json` does, into a buffer."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    logger = configure("modelops.server.access", enabled=True, as_json=True)
    yield stream
    for h in list(logger.handlers):
        logger.removeHandler(h)
    logger.setLevel(logging.WARNING)


def test_serve_logs_one_json_line_per_request_without_the_token(client, tokens, access_stream):
    token = tokens["carol"]
    r = client.get("/models", headers=bearer(token))
    r2 = client.get("/models", headers=bearer("mo_wrong-token"))
    lines = [json.loads(x) for x in access_stream.getvalue().splitlines()]
    assert len(lines) == 2, lines
    first, second = lines
    assert first["person"] == "carol" and first["status"] == r.status_code
    assert first["request_id"] == r.headers["x-request-id"]
    assert first["route"].startswith("/") and first["method"] == "GET"
    assert isinstance(first["duration_ms"], float) and first["time"].endswith("Z")
    assert second["person"] is None and second["status"] == r2.status_code == 401
    text = access_stream.getvalue()
    assert token not in text and "mo_wrong-token" not in text and "Bearer" not in text


def test_serve_text_lines_and_switched_off(client, tokens, monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure("modelops.server.access", enabled=True, as_json=False)
    r = client.get("/models", headers=bearer(tokens["bob"]))
    line = stream.getvalue().strip()
    assert f" {r.headers['x-request-id']} bob GET " in line and line.endswith("ms"), line
    configure("modelops.server.access", enabled=False)
    client.get("/models", headers=bearer(tokens["bob"]))
    assert stream.getvalue().strip() == line  # --no-access-log: nothing more


def test_serve_has_the_log_flags():
    from agents.cli.serve import serve

    names = {o for p in serve.params for o in (*p.opts, *p.secondary_opts)}
    assert {"--log-level", "--log-json", "--access-log", "--no-access-log"} <= names


def test_gateway_access_line_has_the_fields_and_no_body(monkeypatch):
    """The gateway's line (core.serving.app._access) through its configured logger, and the
    gateway flags that switch it (off by default: it costs more than 2 % of a request)."""
    from core.serving import app as gateway_app
    from core.serving.gateway_cli import parser

    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure("modelops.gateway.access", enabled=True, as_json=True)
    try:
        gateway_app._access("gw1-7", 422, 0.0012)
        line = json.loads(stream.getvalue())
    finally:
        configure("modelops.gateway.access", enabled=False)
    assert line["request_id"] == "gw1-7" and line["route"] == "/predict"
    assert line["status"] == 422 and line["duration_ms"] == 1.2 and line["person"] is None
    assert set(line) == {"time", "request_id", "person", "method", "route", "status", "duration_ms"}
    monkeypatch.delenv("MODELOPS_GATEWAY_ACCESS_LOG", raising=False)
    assert parser().parse_args(["--model", "m"]).access_log is False
    on = parser().parse_args(["--model", "m", "--access-log", "--log-json"])
    assert on.access_log is True and on.log_json is True


@pytest.mark.slow
def test_a_started_gateway_writes_one_line_per_predict_to_its_log(registered, monkeypatch):
    import time

    import httpx

    monkeypatch.setenv("MODELOPS_GATEWAY_ACCESS_LOG", "1")  # inherited by the gateway process
    rt, name = registered["rt"], registered["name"]
    rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana"),
        "deploy_to_staging",
        {"name": name, "version": registered["versions"][0]},
    )
    info = rt.services.deployments.gateway_info(name, "staging")
    ok = httpx.post(f"{info['url']}/predict", json={"features": registered["row"]}, timeout=10)
    bad = httpx.post(f"{info['url']}/predict", json={"features": [1, 2]}, timeout=10)
    assert ok.status_code == 200 and bad.status_code == 422
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [x for x in open(info["log"]).read().splitlines() if " POST /predict " in x]
        if len(lines) >= 2:
            break
        time.sleep(0.1)
    assert len(lines) == 2, lines
    assert f" {ok.json()['prediction_id']} - POST /predict 200 " in lines[0]
    assert " POST /predict 422 " in lines[1]
    assert str(registered["row"][0]) not in "".join(lines)  # no body
