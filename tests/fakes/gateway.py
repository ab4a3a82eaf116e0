"""A stand-in for a model gateway's ``POST /predict`` on 127.0.0.1, for CLI tests that need an
answer in the gateway's format without training, registering and serving a model.

It answers like ``core.serving.app``: the honesty labels, then ``prediction`` (a value for one
row, a list for a batch) and ``probabilities``. Every request body is recorded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

LABELS = {
    "model_name": "fake-model",
    "model_version": "3",
    "implementation_status": "IMPLEMENTED",
    "accuracy_claim": "accuracy 0.95 on a 100-row holdout",
    "validation_status": "PASSED",
    "revision": 7,
}


class FakeGateway:
    def __init__(self) -> None:
        self.requests: list[Any] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.requests.append(body)
                feats = body["features"]
                if feats and isinstance(feats[0], list):
                    out = {
                        "prediction": [1] * len(feats),
                        "probabilities": [[0.25, 0.75]] * len(feats),
                    }
                else:
                    out = {"prediction": 1, "probabilities": [0.25, 0.75]}
                payload = json.dumps({**LABELS, **out}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGateway:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGateway]:
    """The fake gateway, and the predict tool pointed at it for any model name."""
    from tools import deployment_tools

    with FakeGateway() as gw:
        monkeypatch.setattr(deployment_tools, "gateway_url", lambda *a, **k: gw.url)
        yield gw
