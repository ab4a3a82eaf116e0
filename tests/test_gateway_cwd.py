"""A gateway runs in an empty working directory of its own (never the checkout or the
caller's folder), so nothing a relative path names is within its reach."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from core.errors import Conflict
from core.serving.process import GATEWAY_CWD, gateway_cwd, gateway_dir, read_gateway
from tests.test_serving_helpers import MODEL, env, serving_env, wait_for_revision

__all__ = ["env", "serving_env"]
CHECKOUT = Path(__file__).resolve().parents[1]


def test_the_working_directory_is_created_empty_and_refused_once_something_is_in_it(tmp_path):
    gdir = tmp_path / "gateways" / "m"
    gdir.mkdir(parents=True)
    cwd = gateway_cwd(gdir)
    assert cwd == gdir / GATEWAY_CWD and cwd.is_dir() and not any(cwd.iterdir())
    assert gateway_cwd(gdir) == cwd  # empty: reused
    (cwd / "w.bin").write_bytes(b"weights")
    with pytest.raises(Conflict, match="not empty"):
        gateway_cwd(gdir)


@pytest.mark.slow
def test_a_started_gateway_runs_in_its_own_empty_folder_not_the_checkout(env):
    import psutil

    rt = env.runtime("cwd")
    dana = rt.services.policy.human("dana")
    out = rt.dispatcher.call_or_raise(
        dana, "deploy_to_staging", {"name": MODEL, "version": env.versions["rf_onnx"]}
    )
    wait_for_revision(out["gateway_url"], out["revision"])
    home = rt.services.settings.home_dir
    expected = gateway_dir(home, MODEL, "staging") / GATEWAY_CWD
    pids = {read_gateway(home, MODEL, "staging")["pid"]}
    pids.add(httpx.get(f"{out['gateway_url']}/health").json()["pid"])  # the answering worker
    for pid in pids:
        cwd = Path(psutil.Process(pid).cwd())
        assert cwd == expected.resolve() and cwd != CHECKOUT and cwd != Path.cwd()
    assert not any(expected.iterdir())
    # ... and it still serves (it imported this checkout through PYTHONPATH)
    r = httpx.post(f"{out['gateway_url']}/predict", json={"features": env.row})
    assert r.status_code == 200 and r.json()["model_version"] == str(env.versions["rf_onnx"])
