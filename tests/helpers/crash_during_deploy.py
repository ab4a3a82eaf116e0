"""Run `agent approvals approve` but kill the process (os._exit) at a chosen point of the
executor, as a power cut would: used by the idempotency test."""

from __future__ import annotations

import os
import sys

import core.deployment as deployment
import core.registry as registry

POINT = os.environ["CRASH_AT"]  # after_alias | after_revision


def _die(*_a, **_k):
    sys.stdout.flush()
    os._exit(137)


if POINT == "after_alias":
    original = registry.ModelRegistry.set_alias

    def set_alias_then_die(self, *a, **k):
        original(self, *a, **k)
        _die()

    registry.ModelRegistry.set_alias = set_alias_then_die
elif POINT == "after_revision":
    deployment.DeploymentService.ensure_gateway = _die
else:
    raise SystemExit(f"unknown CRASH_AT {POINT}")

from agents.cli.main import main  # noqa: E402

main(sys.argv[1:])
