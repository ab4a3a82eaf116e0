"""Progress lines go to stderr on a terminal only: never into --json output or a pipe."""

from __future__ import annotations

import io
import time

from agents.cli import progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_step_shows_progress_on_a_terminal_and_nothing_in_json_or_a_pipe(monkeypatch) -> None:
    tty = _Tty()
    monkeypatch.setattr("sys.stderr", tty)
    with progress.working("evaluating"):
        time.sleep(0.3)
    assert "evaluating" in tty.getvalue()

    quiet = _Tty()
    monkeypatch.setattr("sys.stderr", quiet)
    with progress.working("evaluating", as_json=True):
        pass
    assert quiet.getvalue() == ""

    pipe = io.StringIO()  # not a terminal
    monkeypatch.setattr("sys.stderr", pipe)
    with progress.working("evaluating"):
        pass
    assert pipe.getvalue() == ""
