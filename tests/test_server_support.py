"""Shared pieces of the control-plane tests (no tests here): personal tokens for every person
in the policy, the app over a test runtime, and a live uvicorn server on 127.0.0.1 for
clients that need a real socket (the openai client, the CLI in server mode, the browser)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

PEOPLE = ("alice", "bob", "carol", "dana")


def make_tokens(rt: Any) -> dict[str, str]:
    """A fresh personal token for every listed person (created by the admin alice)."""
    from policies.tokens import create_token

    s = rt.services
    admin = s.policy.human("alice")
    return {who: create_token(s.tokens, s.policy, s.audit, admin, who)[0] for who in PEOPLE}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class LiveServer:
    """uvicorn serving ``app`` in a thread on an ephemeral loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the control plane did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@pytest.fixture
def tokens(rt) -> dict[str, str]:
    return make_tokens(rt)


@pytest.fixture
def app(rt):
    from agents.server.app import create_app

    return create_app(rt)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture
def live(app) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


def request_promotion(reg: dict[str, Any], version: str = "1") -> dict[str, Any]:
    """dana (not an approver) asks to promote VERSION; it stops at the approval."""
    rt = reg["rt"]
    out = rt.dispatcher.call_or_raise(
        rt.services.policy.human("dana", authenticated=True),
        "request_promotion",
        {"name": reg["name"], "version": version, "dataset": reg["holdout"]},
    )
    assert out["status"] == "pending_approval", out
    return out
