"""The static tool index (tools/index.py) agrees with the imported catalog, and the dispatcher
imports only the called tool's module while still authorizing and auditing the call."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tools.base import INTERNAL, load_catalog
from tools.index import tool_modules

ROOT = Path(__file__).resolve().parent.parent


def test_index_names_the_module_of_every_catalog_and_internal_tool():
    catalog = dict(load_catalog())
    everything = {**catalog, **INTERNAL}
    index = tool_modules()
    assert set(index) == set(everything)
    for name, tool in everything.items():
        assert index[name] == tool.func.__module__, name


def test_a_call_imports_only_its_tool_module_and_is_still_authorized_and_audited(home):
    code = (
        "import sys\n"
        "from agents.runtime import build_runtime\n"
        "from core.settings import load_settings\n"
        "rt = build_runtime(load_settings())\n"
        "carol = rt.services.policy.human('carol')\n"
        "ok = rt.dispatcher.call(carol, 'list_approvals', {})\n"
        "denied = rt.dispatcher.call(carol, 'rollback_deployment', {'name': 'm'})\n"
        "internal = rt.dispatcher.call(carol, 'open_approval_request', {})\n"
        "print(ok.ok, denied.error.code, internal.error.code)\n"
        "print(','.join(sorted(m for m in sys.modules if m.endswith('_tools'))))\n"
        "print(sorted({(e['action'], e['outcome']) for e in rt.services.audit.entries()}))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    first, modules, audited = res.stdout.strip().splitlines()
    assert first == "True permission_denied unknown_tool"
    # The unknown (internal) name loads the whole catalog for its hint; before it, only the
    # modules of the two tools called.
    assert "tools.promotion_tools" in modules and "tools.deployment_tools" in modules
    assert "('list_approvals', 'ok')" in audited
    assert "('rollback_deployment', 'permission_denied')" in audited
    assert "('open_approval_request', 'unknown_tool')" in audited


def test_a_read_loads_no_other_tool_module(home):
    code = (
        "import sys\n"
        "from agents.runtime import build_runtime\n"
        "from core.settings import load_settings\n"
        "rt = build_runtime(load_settings())\n"
        "assert rt.dispatcher.call(rt.services.policy.human('carol'), 'list_models').ok\n"
        "print(','.join(sorted(m for m in sys.modules if m.endswith('_tools'))))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "tools.registry_tools"
