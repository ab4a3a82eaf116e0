"""Run the ``agent`` CLI in-process and capture (exit code, stdout, stderr)."""

from __future__ import annotations

from typing import Any

import pytest


def run_agent(capsys: Any, *args: str) -> tuple[int, str, str]:
    from agents.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(list(args))
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err
