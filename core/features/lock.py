"""One process at a time on an embedded Chroma directory.

Chroma's embedded client is thread-safe but not process-safe: a second process on the same
directory can hang for minutes, read stale data, or (two writers) corrupt it. The store takes
an exclusive ``flock`` on a file inside the directory for as long as it is open; the lock
file names the holder's pid so the refusal can say who holds it. The kernel drops the lock
when the holder exits, however it exits, so a crash never leaves the store locked.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

from core.errors import Conflict

LOCK_FILE = ".modelops-store.lock"
_held: dict[Path, int] = {}  # directory -> fd, for this process (re-entrant per process)
_guard = threading.Lock()


def acquire(directory: Path, *, timeout_s: float = 5.0) -> None:
    """Hold the directory's lock for this process (no-op when it already does), waiting at
    most ``timeout_s`` for another process to let go; Conflict if it does not."""
    directory = directory.resolve()
    with _guard:
        if directory in _held:
            return
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(fd)
                    os.close(fd)
                    raise Conflict(
                        f"the embedded feature store at {directory} is open in another process"
                        + (f" (pid {holder})" if holder else "")
                        + "; Chroma's embedded mode allows one process at a time",
                        hint="Wait for that command to finish, or share the store through a "
                        "Chroma server: `chroma run --path DIR --host 127.0.0.1 --port 8000` and "
                        "MODELOPS_CHROMA_URL=http://127.0.0.1:8000.",
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        _held[directory] = fd


def release(directory: Path) -> None:
    with _guard:
        fd = _held.pop(directory.resolve(), None)
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def held(directory: Path) -> bool:
    return directory.resolve() in _held


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode().strip()
    except OSError:
        return ""
