"""The audit head kept outside the state DB: an append-only text file, one ``seq hash`` line
per committed audit entry, so whoever rewrites the database consistently (every hash and the
head row) still disagrees with a file they cannot write.

A line is written only after the row's transaction commits. SQLAlchemy's ``commit`` connection
event fires *before* the DBAPI commit (``Connection._commit_impl``), so a line written there
could name a row that then fails to commit, and the next append would reuse its seq under
another hash: a false alarm forever. So ``install`` wraps the engine's dialect methods
(``do_commit`` is called with the pooled connection, whose ``info`` is ``conn.info``): lines
stashed in ``conn.info`` are written once the DBAPI commit returned, and dropped when it
raised, on a rollback (including a pool reset) and on a rollback to a savepoint. One mechanism
for own transactions (``append()``) and for a caller's (``append(..., conn=conn)``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection, Engine

from policies.audit_check import Scan

log = logging.getLogger(__name__)

_PENDING = "modelops_audit_anchor_pending"
_SAVEPOINTS = "modelops_audit_anchor_savepoints"
_INSTALLED = "_modelops_audit_anchor"


def stash(conn: Connection, path: Path, seq: int, digest: str) -> None:
    """Queue the line for ``seq`` on this connection; it is written when the row commits."""
    conn.info.setdefault(_PENDING, []).append((path, f"{seq} {digest}\n"))


def install(engine: Engine) -> None:
    """Write stashed lines after each successful commit on ``engine`` (once per engine)."""
    dialect = engine.dialect
    if getattr(dialect, _INSTALLED, False):
        return
    commit, rollback = dialect.do_commit, dialect.do_rollback
    savepoint, release = dialect.do_savepoint, dialect.do_release_savepoint
    rollback_to = dialect.do_rollback_to_savepoint

    def do_commit(dbapi_connection: Any) -> None:
        info = getattr(dbapi_connection, "info", None)
        try:
            commit(dbapi_connection)
        except BaseException:
            _drop(info)
            raise
        pending = info.pop(_PENDING, None) if info is not None else None
        _drop(info)
        if pending:
            _write_lines(pending)

    def do_rollback(dbapi_connection: Any) -> None:
        # Connection.rollback() and the pool's reset of a returned connection both end here.
        _drop(getattr(dbapi_connection, "info", None))
        rollback(dbapi_connection)

    # Savepoints nest (LIFO): a stack of pending-line counts, one per open savepoint.
    def do_savepoint(conn: Connection, name: str) -> None:
        savepoint(conn, name)
        conn.info.setdefault(_SAVEPOINTS, []).append(len(conn.info.get(_PENDING, [])))

    def do_rollback_to_savepoint(conn: Connection, name: str) -> None:
        rollback_to(conn, name)
        marks = conn.info.get(_SAVEPOINTS)
        if marks:
            del conn.info.get(_PENDING, [])[marks.pop() :]

    def do_release_savepoint(conn: Connection, name: str) -> None:
        release(conn, name)
        marks = conn.info.get(_SAVEPOINTS)
        if marks:
            marks.pop()

    # Wrapping the dialect, not listening to connection events: any connection event puts
    # every execute on SQLAlchemy's event-dispatching path (measured: ~40 us more CPU per
    # audited append), and the commit event fires before the DBAPI commit anyway.
    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
    dialect.do_savepoint = do_savepoint  # type: ignore[method-assign]
    dialect.do_rollback_to_savepoint = do_rollback_to_savepoint  # type: ignore[method-assign]
    dialect.do_release_savepoint = do_release_savepoint  # type: ignore[method-assign]
    setattr(dialect, _INSTALLED, True)


def _drop(info: dict[str, Any] | None) -> None:
    if info is not None:
        info.pop(_PENDING, None)
        info.pop(_SAVEPOINTS, None)


def _write_lines(pending: list[tuple[Path, str]]) -> None:
    by_path: dict[Path, list[str]] = {}
    for path, line in pending:
        by_path.setdefault(path, []).append(line)
    for path, lines in by_path.items():
        # No O_CREAT: once anchoring started, a missing file is reported by verify, never
        # silently replaced by a fresh one. One write per commit (O_APPEND: atomic for a few
        # lines), no fsync: the row itself is already durable in the database.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            # The row is committed; failing the caller now would misreport it as not done.
            log.warning(
                "audit anchor %s not written: %s (agent audit verify reports it)", path, exc
            )
            continue
        try:
            os.write(fd, "".join(lines).encode())
        finally:
            os.close(fd)


@contextlib.contextmanager
def creating(path: Path) -> Iterator[bool]:
    """Create the anchor file if needed and hold an exclusive lock on it while anchoring
    starts; yields True when the file is empty (nothing anchored yet)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield os.fstat(fd).st_size == 0
    finally:
        os.close(fd)


def has_lines(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


@dataclass
class AnchorRead:
    """What the anchor file holds: seq -> hash (a seq seen twice with two hashes is kept as
    the pair that disagrees), and its line count."""

    path: Path
    exists: bool = False
    lines: int = 0
    hashes: dict[int, str] = field(default_factory=dict)
    malformed: int | None = None  # line number of the first line that is not ``seq hash``
    conflicting: int | None = None  # a seq recorded with two different hashes

    @property
    def newest(self) -> int | None:
        return max(self.hashes) if self.hashes else None


def read(path: Path) -> AnchorRead:
    """Every line of the anchor file, in any order (concurrent writers interleave)."""
    out = AnchorRead(path)
    try:
        fh = open(path, encoding="ascii", errors="replace")  # noqa: SIM115
    except FileNotFoundError:
        return out
    out.exists = True
    with fh:
        for n, raw in enumerate(fh, 1):
            if not raw.endswith("\n"):
                break  # a line being written right now
            out.lines += 1
            parts = raw.split()
            if len(parts) != 2 or not parts[0].isdigit() or len(parts[1]) != 64:
                out.malformed = out.malformed or n
                continue
            seq, digest = int(parts[0]), parts[1]
            if out.hashes.setdefault(seq, digest) != digest:
                out.conflicting = out.conflicting or seq
    return out


def edge_lines(path: Path) -> list[tuple[int, str]]:
    """The first and the last complete line of the anchor file, parsed (cheap: two short
    reads), for a quick "is this the database the anchor recorded?" check."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline()
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 512))
            tail = fh.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for raw in (first, tail[-1] if tail else b""):
        parts = raw.decode("ascii", "replace").split()
        if len(parts) == 2 and parts[0].isdigit() and len(parts[1]) == 64:
            out.append((int(parts[0]), parts[1]))
    return out


# In check() ------------------------------------------------------------------------------
def problem(a: AnchorRead, res: Scan) -> tuple[int, str] | None:
    """What the anchor file proves wrong once the chain itself verified (``res``)."""
    end = res.expected - 1
    if res.started_seq is not None and a.lines == 0:
        state = "empty" if a.exists else "missing"
        return (
            res.started_seq,
            f"the anchor file {a.path} is {state}, but this log started anchoring at entry "
            f"{res.started_seq}: the file was deleted or replaced (restore it from a backup, "
            "or point MODELOPS_AUDIT_ANCHOR back at it)",
        )
    if a.newest is not None and a.newest > end:
        return (
            end + 1,
            f"the anchor file {a.path} records entry {a.newest}, but the chain ends at entry "
            f"{end}: {_span_text(end + 1, a.newest)} deleted (and the head moved back)",
        )
    if a.conflicting is not None:
        return (
            a.conflicting,
            f"the anchor file {a.path} records two hashes for entry {a.conflicting}: lines "
            "from another database were mixed in, or the file was edited",
        )
    if a.malformed is not None:
        return (
            end + 1,
            f"line {a.malformed} of the anchor file {a.path} is not `SEQ HASH`: it was edited",
        )
    if res.started_seq is not None and res.started_seq not in a.hashes:
        return (
            res.started_seq,
            f"the anchor file {a.path} lacks the line of entry {res.started_seq}, where "
            "anchoring started: the file was truncated or replaced",
        )
    return None


def _span_text(first: int, last: int) -> str:
    return f"entry {first} was" if first == last else f"entries {first}..{last} were"


def compared(res: Scan, head_seq: int, a: AnchorRead | None, ok: bool) -> str:
    text = f"chain of {res.count} entries; head row seq {head_seq}"
    if a is None:
        text += "; no anchor file configured"
    elif not a.exists:
        text += f"; anchor file {a.path}: missing"
    else:
        text += f"; anchor file {a.path}: {a.lines} lines, newest seq {a.newest}"
    if ok:
        text += " — all match"
    if res.started_seq is not None and res.started_seq > 1:
        text += (
            f". Anchoring started at entry {res.started_seq}: the {res.started_seq - 1} "
            "entries before it predate the anchor file and rest on the chain and head alone"
        )
    return text
