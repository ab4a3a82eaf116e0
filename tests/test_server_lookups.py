"""Point reads (``ControlPlane.lookup``) run on the event loop when the stores are SQLite in
this process, and through the read threads otherwise; either way through the dispatcher
(RBAC, audit row), and a lookup that meets a held write lock waits for it and then answers."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest

from tests import test_server_support as support
from tests.test_server_support import bearer

app, client, tokens = support.app, support.client, support.tokens


def _record_loop(monkeypatch, rt) -> list[bool]:
    """Patch the dispatcher so each call notes whether it ran on the event loop's thread."""
    seen: list[bool] = []
    real = rt.dispatcher.call

    def call(*args, **kwargs):
        try:
            asyncio.get_running_loop()
            seen.append(True)
        except RuntimeError:
            seen.append(False)
        return real(*args, **kwargs)

    monkeypatch.setattr(rt.dispatcher, "call", call)
    return seen


def test_on_sqlite_point_reads_run_on_the_loop_and_are_audited(rt, client, tokens, monkeypatch):
    cp = client.app.state.control_plane
    assert cp.inline_lookups is True  # state DB and registry view are SQLite files
    seen = _record_loop(monkeypatch, rt)
    for path in ("/models", "/deployments"):
        assert client.get(path, headers=bearer(tokens["carol"])).status_code == 200
    assert seen == [True, True]
    # Reads whose cost grows with history (every approval ever) still go to the read threads.
    assert client.get("/approvals", headers=bearer(tokens["carol"])).status_code == 200
    assert seen == [True, True, False]
    r = client.get("/audit/verify", headers=bearer(tokens["alice"]))
    assert r.status_code == 200
    read = rt.services.audit.entries(action="list_models")[0]
    assert read["actor"] == "carol" and read["decision"] == "allowed" and read["outcome"] == "ok"


def test_with_inline_lookups_off_they_run_on_the_read_threads(rt, tokens, monkeypatch):
    from fastapi.testclient import TestClient

    from agents.server.app import create_app
    from agents.server.plane import ServerConfig

    seen = _record_loop(monkeypatch, rt)
    with TestClient(create_app(rt, ServerConfig(inline_lookups=False))) as c:
        assert c.get("/models", headers=bearer(tokens["carol"])).status_code == 200
    assert seen == [False]


def test_a_lookup_waits_for_a_held_write_lock_then_answers(rt, client, tokens):
    """Another process holds the state DB's write lock for a while: the read's audit row
    waits for it (SQLite's busy timeout), then the read answers 200 and its row is there."""
    db = rt.services.engine.url.database
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(10)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    before = len(rt.services.audit.entries(action="list_models"))
    threading.Timer(0.5, release.set).start()
    t0 = time.monotonic()
    r = client.get("/models", headers=bearer(tokens["carol"]))
    waited = time.monotonic() - t0
    holder.join(10)
    assert r.status_code == 200, r.text
    assert waited >= 0.4  # it waited for the lock rather than failing or skipping its row
    assert len(rt.services.audit.entries(action="list_models")) == before + 1


@pytest.mark.pg
def test_on_postgresql_point_reads_go_to_the_read_threads(home, pg_url, monkeypatch):
    """A network database has waits worth overlapping: no lookup runs on the loop."""
    from agents.runtime import build_runtime
    from agents.server.app import create_app
    from core.settings import load_settings

    monkeypatch.setenv("MODELOPS_STATE_DB_URL", pg_url)
    rt = build_runtime(load_settings())
    try:
        cp = create_app(rt).state.control_plane
        assert cp.inline_lookups is False
    finally:
        rt.services.engine.dispose()
