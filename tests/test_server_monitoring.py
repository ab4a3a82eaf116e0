"""The control plane shows the monitoring report: GET /models/{name}/monitoring returns what
the monitor_report tool (and `agent monitor report NAME --json`) returns, and the console
renders it; auth, unknown models, hostile names and bad windows are clear 4xx."""

from __future__ import annotations

import re

import pytest

from tests.test_monitoring_policy import _deploy_approved, _log
from tests.test_server_support import make_tokens

pytestmark = pytest.mark.slow  # trains and registers two models


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html)[1]


def test_monitoring_report_over_rest_and_in_the_console(registered) -> None:
    from fastapi.testclient import TestClient

    from agents.server.app import create_app

    rt = registered["rt"]
    name, (v1, _v2) = registered["name"], registered["versions"]
    _deploy_approved(rt, name, v1)
    _log(rt, name, v1, [registered["row"]] * 30)
    tokens = make_tokens(rt)
    dana = rt.services.policy.human("dana")
    direct = rt.dispatcher.call_or_raise(dana, "monitor_report", {"model_id": name})

    with TestClient(create_app(rt)) as c:
        auth = {"Authorization": f"Bearer {tokens['dana']}"}
        res = c.get(f"/models/{name}/monitoring", headers=auth)
        assert res.status_code == 200, res.text
        body = res.json()
        assert body["name"] == name and [v["version"] for v in body["report"]["versions"]] == [v1]
        got = body["report"]["versions"][0]["data_drift"]
        want = direct["report"]["versions"][0]["data_drift"]
        assert got["status"] == want["status"] == "measured"
        assert [c_["column"] for c_ in got["columns"]] == [c_["column"] for c_ in want["columns"]]
        assert got["current_rows"] == want["current_rows"] == 30

        assert c.get(f"/models/{name}/monitoring").status_code == 401
        bad = c.get(f"/models/{name}/monitoring", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        missing = c.get("/models/no-such-model/monitoring", headers=auth)
        assert missing.status_code == 404 and "no-such-model" in missing.text
        assert c.get("/models/..%2Fetc/monitoring", headers=auth).status_code in (404, 422)
        for window in ("0", "-5", "99999", "soon"):
            res = c.get(f"/models/{name}/monitoring?window_minutes={window}", headers=auth)
            assert res.status_code == 422, (window, res.text)

        page = c.get("/console/login")
        c.post(
            "/console/login",
            data={"csrf": _csrf(page.text), "token": tokens["carol"], "next": "/console/"},
            follow_redirects=False,
        )
        model = c.get(f"/console/models/{name}")
        assert f"/console/models/{name}/monitoring" in model.text
        html = c.get(f"/console/models/{name}/monitoring")
        assert html.status_code == 200, html.text
        assert f"v{v1}" in html.text and "features drifted" in html.text
        assert "HEURISTIC" in html.text and "agent monitor report" in html.text
        assert c.get("/console/models/no-such-model/monitoring").status_code == 404
        plots = c.get(f"/console/models/{name}/monitoring/report.html")
        assert plots.status_code == 200, plots.text
        assert 'src="data:image/png;base64,' in plots.text  # the plots, inline
        csp = plots.headers["content-security-policy"]
        assert "img-src data:" in csp and "script-src" not in csp and "default-src 'none'" in csp
        assert not list((rt.services.settings.home_dir / "console-reports").iterdir())
