"""Progress of a long side effect, reported to whoever started it (a job row, a terminal).

The code that does the work calls ``report(step, detail)``; the caller that wants to see it
installs a callback with ``reporting(callback)``. Without one, ``report`` does nothing, so the
work never depends on being watched. A context variable carries the callback through
LangGraph nodes and the dispatcher (they copy the caller's context into their threads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

Reporter = Callable[[str, dict[str, Any]], None]
_reporter: ContextVar[Reporter | None] = ContextVar("modelops_progress", default=None)


def report(step: str, **detail: Any) -> None:
    """Tell the watcher (if any) that ``step`` happened."""
    callback = _reporter.get()
    if callback is not None:
        callback(step, detail)


@contextmanager
def reporting(callback: Reporter) -> Iterator[None]:
    """Send every ``report`` made inside the block (in this context) to ``callback``."""
    token = _reporter.set(callback)
    try:
        yield
    finally:
        _reporter.reset(token)
