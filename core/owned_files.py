"""The one rule for writing into a folder the user chose: we replace or remove a file only if it
lies inside the folder (a plain relative path, no symlink on the way) and its bytes still match
the SHA-256 we recorded in the folder's marker when we wrote it. The marker is data to check,
never an instruction: an entry that is not a plain path inside the folder is ignored, unread."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import Conflict, InvalidInput, ModelOpsError

MARKER = ".modelops-owned.json"  # the draft tools' marker; a bundle has its own name
FORMAT = "modelops-owned/1"
_MAX_MARKER_BYTES = 16 * 1024 * 1024
_MAX_LISTED = 20  # names shown in a message; the tool output carries the full lists
_MAX_WALK = 200_000  # entries listed as kept; a folder holding more is reported as such
_SHA = frozenset("0123456789abcdef")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class _Unsafe(Exception):
    """A symlink, or something that is not a folder, on the way to a path."""


def plain_relpath(rel: object) -> bool:
    """A relative path with '/' separators and no absolute start, '..', '.', empty part, NUL or
    backslash: the only kind of name that can stand for a file inside a folder."""
    if not isinstance(rel, str) or not rel or len(rel) > 4096 or "\0" in rel or "\\" in rel:
        return False
    parts = rel.split("/")
    return all(p and p not in (".", "..") and len(p) <= 255 for p in parts)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_sha(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and set(value) <= _SHA


@dataclass
class Plan:
    """What writing ``files`` into ``root`` would do; nothing is touched until ``apply``."""

    root: Path
    marker: str
    files: dict[str, bytes]
    prune: bool
    new: list[str] = field(default_factory=list)
    overwrite: list[str] = field(default_factory=list)  # ours, bytes unchanged since we wrote
    conflicts: dict[str, str] = field(default_factory=dict)  # needed write -> why refused
    stale: dict[str, str] = field(default_factory=dict)  # ours, unchanged, not needed: removed
    carried: dict[str, str] = field(default_factory=dict)  # ours, unchanged, left (no prune)
    kept: list[str] = field(default_factory=list)  # not ours, or changed since: never touched
    ignored: list[str] = field(default_factory=list)  # marker entries that are not plain paths
    marker_note: str = ""  # why the marker proves nothing (old format, unreadable), if so
    removed: list[str] = field(default_factory=list)  # set by apply
    previous: dict[str, str] = field(default_factory=dict)  # ours-unchanged rel -> its digest

    @property
    def written(self) -> list[Path]:
        return [self.root / rel for rel in self.files]


# Walking a path without following a symlink ------------------------------------------------
def _open_dir(root_fd: int, parts: list[str], *, create: bool) -> int | None:
    """A descriptor of the folder ``parts`` under ``root_fd``, each step opened with
    O_NOFOLLOW (a symlink on the way raises _Unsafe); None if missing and not ``create``."""
    if any(p in ("", ".", "..") for p in parts):  # a second guard: never step out of root
        raise _Unsafe("/".join(parts))
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(part, 0o777, dir_fd=fd)
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise _Unsafe(part) from exc
                raise
            os.close(fd)
            fd = nfd
        out, fd = fd, -1
        return out
    finally:
        if fd >= 0:
            os.close(fd)


def _read_here(dir_fd: int, name: str, limit: int | None = None) -> bytes | None:
    """The bytes of regular file ``name`` in ``dir_fd`` (never through a symlink), else None."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (limit is not None and st.st_size > limit):
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


def _state(root_fd: int | None, rel: str) -> tuple[str, str | None]:
    """("missing" | "file" | "symlink" | "unsafe" | "other", sha256 of a regular file)."""
    if root_fd is None:
        return "missing", None
    *parents, name = rel.split("/")
    if name in ("", ".", ".."):
        return "unsafe", None
    try:
        pfd = _open_dir(root_fd, parents, create=False)
    except _Unsafe:
        return "unsafe", None
    if pfd is None:
        return "missing", None
    try:
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return "missing", None
        if stat.S_ISLNK(st.st_mode):
            return "symlink", None
        if not stat.S_ISREG(st.st_mode):
            return "other", None
        data = _read_here(pfd, name)
        return ("file", sha256(data)) if data is not None else ("other", None)
    finally:
        os.close(pfd)


def _walk(root_fd: int, prefix: str = "", out: list[str] | None = None) -> list[str]:
    """Every file, symlink or other non-folder under ``root_fd`` (symlinks never followed)."""
    out = [] if out is None else out
    with os.scandir(root_fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if len(out) >= _MAX_WALK:
            return out
        rel = f"{prefix}{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            try:
                sub = _open_dir(root_fd, [entry.name], create=False)
            except (_Unsafe, OSError):
                out.append(rel)
                continue
            if sub is not None:
                try:
                    _walk(sub, f"{rel}/", out)
                finally:
                    os.close(sub)
        else:
            out.append(rel)
    return out


# The marker ----------------------------------------------------------------------------------
def _read_marker(root_fd: int | None, marker: str) -> tuple[dict[str, set[str]], list[str], str]:
    """(plain entries -> recorded digests, ignored entries, note). A digest may be a list of
    two while an apply is under way (old and new bytes are both ours until it ends)."""
    if root_fd is None:
        return {}, [], ""
    state, _ = _state(root_fd, marker)
    if state == "missing":
        return {}, [], ""
    raw = _read_here(root_fd, marker, _MAX_MARKER_BYTES) if state == "file" else None
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return {}, [], f"its marker {marker} is unreadable, so nothing in it is proven ours"
    files = data.get("files")
    if isinstance(files, list) or data.get("format") != FORMAT or not isinstance(files, dict):
        return (
            {},
            [],
            (
                f"its marker {marker} is of an older format that records no digests, so nothing "
                "in it is proven ours"
            ),
        )
    recorded: dict[str, set[str]] = {}
    ignored: list[str] = []
    for rel, digest in files.items():
        digests = digest if isinstance(digest, list) else [digest]
        if not plain_relpath(rel) or rel == marker:
            ignored.append(rel[:200])
        elif digests and len(digests) <= 2 and all(_is_sha(d) for d in digests):
            recorded[rel] = set(digests)
        else:
            ignored.append(rel)
    return recorded, sorted(ignored), ""


def _open_root(root: Path) -> int | None:
    try:
        return os.open(root, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidInput(f"{root} is not a folder we can write into ({exc.strerror})") from exc


# Planning and applying -----------------------------------------------------------------------
def plan_writes(
    root: str | Path, files: dict[str, bytes], *, prune: bool = False, marker: str = MARKER
) -> Plan:
    """What writing ``files`` (relative path -> bytes) into ``root`` means: each needed file
    is new, ours-and-unchanged (may be overwritten) or a conflict; with ``prune`` the files we
    wrote last time, still unchanged and no longer needed, are removed. Everything else in
    the folder is kept and listed. Reads only inside ``root``, never through a symlink."""
    root = Path(root).resolve()
    bad = [rel for rel in files if not plain_relpath(rel) or rel == marker]
    if bad:
        raise InvalidInput(f"refusing to write {bad[0]!r}: not a plain path inside {root}")
    plan = Plan(root=root, marker=marker, files=dict(files), prune=prune)
    root_fd = _open_root(root)
    try:
        recorded, plan.ignored, plan.marker_note = _read_marker(root_fd, marker)
        marker_state, _ = _state(root_fd, marker)
        if marker_state not in ("missing", "file"):  # we replace only a file by that name
            plan.conflicts[marker] = _why(marker_state, False, "")
        current: dict[str, tuple[str, str | None]] = {}
        for rel in sorted(set(recorded) | set(files)):
            current[rel] = _state(root_fd, rel)
        for rel, digests in recorded.items():
            state, digest = current[rel]
            if state == "file" and digest in digests:
                plan.previous[rel] = digest
            elif state in ("unsafe", "symlink"):  # fails (a): never followed, never ours
                plan.ignored.append(rel)
        plan.ignored.sort()
        for rel in files:
            state, _ = current[rel]
            if state == "missing":
                plan.new.append(rel)
            elif rel in plan.previous:
                plan.overwrite.append(rel)
            else:
                plan.conflicts[rel] = _why(state, rel in recorded, plan.marker_note)
        for rel in plan.previous.keys() - files.keys():
            target = plan.stale if prune else plan.carried
            target[rel] = plan.previous[rel]
        if root_fd is not None:
            leave = set(files) | set(plan.stale) | set(plan.carried) | {marker}
            plan.kept = [rel for rel in _walk(root_fd) if rel not in leave]
    finally:
        if root_fd is not None:
            os.close(root_fd)
    return plan


def _why(state: str, recorded: bool, note: str) -> str:
    if state == "unsafe":
        return "a symlink or a file on the way"
    if state == "symlink":
        return "a symlink"
    if state == "other":
        return "not a regular file"
    if recorded:
        return "changed since we wrote it"
    return "not written by us" + (f" ({note})" if note else "")


def apply(plan: Plan, *, hint: str, error: type[ModelOpsError] = Conflict) -> Plan:
    """Carry out ``plan``: refused as a whole (``error`` with the list and ``hint``) before
    anything is written if a needed file is in conflict. Stale files are removed only after
    their digest is checked again; each file is written to a fresh temporary name and renamed
    over; the marker (``{path: sha256}`` of what we wrote) is replaced atomically, last. A
    marker naming both old and new digests is written first, so a crash midway leaves a
    folder a rerun completes."""
    if plan.conflicts:
        raise error(conflict_message(plan), hint=hint)
    plan.root.mkdir(parents=True, exist_ok=True)
    root_fd = _open_root(plan.root)
    assert root_fd is not None
    try:
        final = {**plan.carried, **{rel: sha256(data) for rel, data in plan.files.items()}}
        pending: dict[str, list[str]] = {rel: [d] for rel, d in plan.previous.items()}
        for rel, digest in final.items():
            pending[rel] = sorted({*pending.get(rel, []), digest})
        _write_marker(root_fd, plan.marker, pending)
        for rel, digest in plan.stale.items():
            if _remove_if(root_fd, rel, digest):
                plan.removed.append(rel)
            else:
                plan.kept.append(rel)
        for rel, data in plan.files.items():
            state, digest = _state(root_fd, rel)
            if state != "missing" and not (state == "file" and digest == plan.previous.get(rel)):
                raise error(f"{rel} in {plan.root} changed while we were writing", hint=hint)
            *parents, name = rel.split("/")
            try:
                pfd = _open_dir(root_fd, parents, create=True)
            except _Unsafe as exc:
                raise error(f"{rel} in {plan.root}: a symlink on the way", hint=hint) from exc
            assert pfd is not None  # create=True makes every folder on the way
            try:
                _replace(pfd, name, data)
            finally:
                os.close(pfd)
        _write_marker(root_fd, plan.marker, final)
    finally:
        os.close(root_fd)
    plan.kept.sort()
    return plan


def _remove_if(root_fd: int, rel: str, digest: str) -> bool:
    *parents, name = rel.split("/")
    try:
        pfd = _open_dir(root_fd, parents, create=False)
    except _Unsafe:
        return False
    if pfd is None:
        return False
    try:
        data = _read_here(pfd, name)
        if data is None or sha256(data) != digest:
            return False
        os.unlink(name, dir_fd=pfd)
        return True
    finally:
        os.close(pfd)


def _replace(dir_fd: int, name: str, data: bytes, *, sync: bool = False) -> None:
    """Write ``data`` to a fresh, exclusive temporary name in ``dir_fd`` and rename it over
    ``name`` (a rename replaces a symlink itself, never its target)."""
    tmp = f".{name[:200]}.{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def _write_marker(root_fd: int, marker: str, files: dict[str, str] | dict[str, list[str]]) -> None:
    body = {"format": FORMAT, "files": dict(sorted(files.items()))}
    _replace(root_fd, marker, (json.dumps(body, indent=1) + "\n").encode(), sync=True)


# Messages ------------------------------------------------------------------------------------
def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def conflict_message(plan: Plan) -> str:
    items = [f"{rel} ({why})" for rel, why in sorted(plan.conflicts.items())]
    return (
        f"refusing to write into {plan.root}: {len(items)} file(s) in the way were not written "
        f"by us or changed since, and are never overwritten: {_names(items)}"
    )


def kept_message(plan: Plan) -> str:
    """'' or the sentence every caller shows (tool output, CLI) about what was left alone."""
    out = []
    if plan.kept:
        out.append(
            f"kept {len(plan.kept)} files we did not write or that changed since: "
            f"{_names(plan.kept)}"
        )
    if plan.ignored:
        out.append(
            f"ignored {len(plan.ignored)} marker entries that are not plain paths inside the "
            f"folder: {_names([repr(i) for i in plan.ignored])}"
        )
    return "; ".join(out)
