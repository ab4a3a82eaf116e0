"""A spinner with elapsed time on stderr while a step runs (not with --json, not in a pipe)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def working(what: str, as_json: bool = False) -> Iterator[None]:
    if as_json or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(f"{what}…", spinner="dots"):
        yield
