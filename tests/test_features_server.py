"""The feature store through a real `chroma run` server on 127.0.0.1 (HttpClient)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import ExternalServiceError
from core.features import FeatureStore
from tests.fakes.openai_server import unused_local_port

pytestmark = pytest.mark.slow


def _chroma_bin() -> str:
    found = Path(sys.executable).with_name("chroma")
    return str(found) if found.exists() else (shutil.which("chroma") or "chroma")


def test_store_through_a_chroma_server(tmp_path: Path) -> None:
    port = unused_local_port()
    proc = subprocess.Popen(
        [
            _chroma_bin(),
            "run",
            "--path",
            str(tmp_path / "db"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                store = FeatureStore(url=url)
                break
            except ExternalServiceError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.3)
        store.push_features("a", {"x": 1.0}, "cust", "1", "2024-01-01")
        store.push_features("a", {"x": 2.0}, "cust", "1", "2024-05-01")
        store.push_features("b", {"x": 1.2}, "cust", "1", "2024-01-02")
        # A second client (another process would do the same): no lock in server mode.
        other = FeatureStore(url=url)
        assert other.get_features(["a"], "cust", as_of="2024-02-01")["a"].features == {"x": 1.0}
        assert [n.entity_id for n in other.nearest("cust", entity_id="a", k=1)] == ["b"]
        assert other.describe("cust")[0].rows == 3
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(ExternalServiceError, match="cannot reach the Chroma server"):
        FeatureStore(url=f"http://127.0.0.1:{unused_local_port()}")
