"""A unified diff (parsed with unidiff) as changed files, each with the lines it added and the
full old/new text when a source can give it: a local git repository, the working tree a
patch was made against (checked against every hunk), or the GitHub API."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol

from core.errors import InvalidInput, NotFound

MAX_DIFF_BYTES = 20_000_000
# Files larger than this are reviewed from their hunks only.
MAX_FILE_BYTES = 2_000_000
Status = Literal["added", "modified", "removed", "renamed"]


@dataclass(frozen=True)
class HunkLine:
    kind: Literal["+", "-", " "]
    old_no: int | None
    new_no: int | None
    text: str


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_length: int
    new_start: int
    new_length: int
    lines: tuple[HunkLine, ...]

    def new_side(self) -> list[HunkLine]:
        return [ln for ln in self.lines if ln.kind != "-"]


@dataclass
class ChangedFile:
    path: str
    old_path: str | None
    status: Status
    binary: bool
    hunks: list[Hunk]
    patch: str = ""
    new_text: str | None = None
    old_text: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def added(self) -> set[int]:
        return {ln.new_no for h in self.hunks for ln in h.lines if ln.kind == "+" and ln.new_no}

    @property
    def touched(self) -> set[int]:
        """Added lines, plus the new-side line next to each deletion."""
        out = set(self.added)
        for h in self.hunks:
            for i, ln in enumerate(h.lines):
                if ln.kind != "-":
                    continue
                after = next((x.new_no for x in h.lines[i + 1 :] if x.new_no), None)
                before = next((x.new_no for x in reversed(h.lines[:i]) if x.new_no), None)
                out.add(after or before or max(1, h.new_start))
        return out

    @property
    def commentable(self) -> set[int]:
        """New-side lines that appear in the diff (GitHub takes inline comments only there)."""
        return {ln.new_no for h in self.hunks for ln in h.lines if ln.new_no}

    def span_touched(self, first: int, last: int) -> bool:
        return any(first <= n <= last for n in self.touched)


class Contents(Protocol):
    """Where the full text of a changed file comes from (None: not available)."""

    def new_text(self, path: str) -> str | None: ...

    def old_text(self, path: str) -> str | None: ...

    def new_listing(self, directory: str) -> list[str] | None: ...


def safe_repo_path(path: str) -> bool:
    """A relative path inside the repository: no absolute path, no ``..``, no NUL."""
    if not path or "\0" in path or "\\" in path:
        return False
    p = PurePosixPath(path)
    return not p.is_absolute() and ".." not in p.parts


def _strip_prefix(name: str | None) -> str | None:
    if name is None or name == "/dev/null":
        return None
    return name[2:] if name[:2] in ("a/", "b/") else name


def parse_diff(text: str, contents: Contents | None = None) -> list[ChangedFile]:
    """The changed files of a unified diff; ``contents`` fills in old and new texts."""
    from unidiff import PatchSet
    from unidiff.errors import UnidiffParseError

    if len(text.encode(errors="replace")) > MAX_DIFF_BYTES:
        raise InvalidInput(
            f"the diff is larger than {MAX_DIFF_BYTES // 1_000_000} MB",
            hint="Review a smaller range of commits.",
        )
    if not text.strip():
        return []
    try:
        patch = PatchSet(text)
    except UnidiffParseError as exc:
        raise InvalidInput(
            f"the input is not a valid unified diff: {exc}",
            hint="Give the output of `git diff` (or `git format-patch`), or use --git BASE..HEAD.",
        ) from exc
    if not len(patch):
        raise InvalidInput(
            "the input contains no file changes (not a unified diff?)",
            hint="Give the output of `git diff`, or use --git BASE..HEAD.",
        )
    files = []
    for pf in patch:
        new = _strip_prefix(pf.target_file)
        old = _strip_prefix(pf.source_file)
        status: Status = (
            "added"
            if pf.is_added_file
            else "removed"
            if pf.is_removed_file
            else "renamed"
            if pf.is_rename
            else "modified"
        )
        path = new or old or pf.path
        hunks = [
            Hunk(
                h.source_start,
                h.source_length,
                h.target_start,
                h.target_length,
                tuple(
                    HunkLine(
                        ln.line_type, ln.source_line_no, ln.target_line_no, ln.value.rstrip("\n")
                    )
                    for ln in h
                    if ln.line_type in ("+", "-", " ")
                ),
            )
            for h in pf
        ]
        cf = ChangedFile(
            path=path,
            old_path=old if old != path else None,
            status=status,
            binary=pf.is_binary_file,
            hunks=hunks,
            patch=str(pf),
        )
        if not safe_repo_path(path):
            cf.notes.append(f"{path}: path outside the repository; reviewed from the diff only")
        elif contents is not None and not cf.binary:
            _fill_texts(cf, contents)
        files.append(cf)
    return files


def _fill_texts(cf: ChangedFile, contents: Contents) -> None:
    if cf.status != "removed":
        new = contents.new_text(cf.path)
        if new is not None and len(new) <= MAX_FILE_BYTES:
            cf.new_text = new
    if cf.status != "added":
        old = contents.old_text(cf.old_path or cf.path)
        if old is not None and len(old) <= MAX_FILE_BYTES:
            cf.old_text = old
    if cf.old_text is None and cf.new_text is not None and cf.status != "added":
        cf.old_text = reverse_apply(cf.new_text, cf.hunks)


def hunks_match(text: str, hunks: list[Hunk]) -> bool:
    """True when every new-side line of every hunk is at its place in ``text``."""
    lines = text.splitlines()
    for h in hunks:
        for ln in h.new_side():
            if ln.new_no is None or ln.new_no > len(lines) or lines[ln.new_no - 1] != ln.text:
                return False
    return True


def reverse_apply(new_text: str, hunks: list[Hunk]) -> str:
    """The old text, rebuilt from the new text and the hunks (exact where the hunks match)."""
    new = new_text.splitlines()
    out: list[str] = []
    pos = 1
    for h in sorted(hunks, key=lambda h: h.new_start):
        first = h.new_start if h.new_length else h.new_start + 1
        out.extend(new[pos - 1 : first - 1])
        out.extend(ln.text for ln in h.lines if ln.kind != "+")
        pos = first + h.new_length
    out.extend(new[pos - 1 :])
    return "\n".join(out) + ("\n" if out else "")


# Sources ------------------------------------------------------------------------------------
class WorkingTreeContents:
    """A patch's new side from the files on disk under ``root``, used only when every hunk
    matches the file (otherwise the patch was not made against this tree)."""

    def __init__(self, root: Path, hunks_for: Callable[[str], list[Hunk]] | None = None) -> None:
        self.root = root.resolve()
        self._hunks_for = hunks_for

    def _file(self, path: str) -> Path | None:
        p = (self.root / path).resolve()
        if not p.is_relative_to(self.root) or not p.is_file():
            return None
        return p

    def new_text(self, path: str) -> str | None:
        p = self._file(path)
        if p is None or p.stat().st_size > MAX_FILE_BYTES:
            return None
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError):
            return None
        hunks = self._hunks_for(path) if self._hunks_for else []
        return text if hunks_match(text, hunks) else None

    def old_text(self, path: str) -> str | None:
        return None  # rebuilt from the new text and the hunks

    def new_listing(self, directory: str) -> list[str] | None:
        d = (self.root / directory).resolve()
        if not d.is_relative_to(self.root) or not d.is_dir():
            return None
        return sorted(p.name for p in d.iterdir())


def review_patch(text: str, root: Path | None) -> tuple[list[ChangedFile], Contents | None]:
    """Parse a patch; when ``root`` is given, fill in texts from the working tree there."""
    files = parse_diff(text)
    if root is None:
        return files, None
    by_path = {f.path: f.hunks for f in files}
    contents = WorkingTreeContents(root, lambda p: by_path.get(p, []))
    for cf in files:
        if safe_repo_path(cf.path) and not cf.binary:
            _fill_texts(cf, contents)
    return files, contents


class GitContents:
    """Old and new texts from two commits of a local repository (``git show``)."""

    def __init__(self, repo: Path, base: str, head: str) -> None:
        self.repo, self.base, self.head = repo, base, head

    def _show(self, rev: str, path: str) -> str | None:
        out = _git(self.repo, "cat-file", "blob", f"{rev}:{path}", check=False)
        if out is None:
            return None
        try:
            return out.decode()
        except UnicodeDecodeError:
            return None

    def new_text(self, path: str) -> str | None:
        return self._show(self.head, path)

    def old_text(self, path: str) -> str | None:
        return self._show(self.base, path)

    def new_listing(self, directory: str) -> list[str] | None:
        target = f"{self.head}:{directory}" if directory not in ("", ".") else f"{self.head}:"
        out = _git(self.repo, "ls-tree", "--name-only", target, check=False)
        return None if out is None else sorted(out.decode(errors="replace").splitlines())


def _git(repo: Path, *args: str, check: bool = True) -> bytes | None:
    cmd = ["git", "-C", str(repo), "-c", "core.quotepath=off", *args]
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=120)
    except FileNotFoundError as exc:
        raise NotFound("git is not installed", hint="Install git, or pass --diff FILE.") from exc
    if res.returncode != 0:
        if check:
            msg = res.stderr.decode(errors="replace").strip().splitlines()
            raise InvalidInput(
                f"git {args[0]} failed in {repo}: {msg[-1] if msg else 'exit ' + str(res.returncode)}",
                hint="Run inside a git repository (or pass --repo DIR) and name existing commits.",
            )
        return None
    return res.stdout


def _check_rev(repo: Path, rev: str) -> str:
    if not rev or rev.startswith("-") or any(c.isspace() or c in "\0:" for c in rev):
        raise InvalidInput(f"invalid revision {rev!r}", hint="Use e.g. --git main..feature.")
    out = _git(
        repo,
        "rev-parse",
        "--verify",
        "--quiet",
        "--end-of-options",
        f"{rev}^{{commit}}",
        check=False,
    )
    if not out:
        raise InvalidInput(
            f"{rev!r} is not a commit in {repo}",
            hint="Name existing branches or commits, e.g. --git main..HEAD.",
        )
    return out.decode().strip()


def git_range(repo: Path, spec: str) -> tuple[str, str, str]:
    """(diff text, base sha, head sha) for ``BASE..HEAD`` or ``BASE...HEAD`` (from the merge
    base, as a pull request shows it)."""
    if _git(repo, "rev-parse", "--git-dir", check=False) is None:
        raise InvalidInput(
            f"{repo} is not a git repository", hint="Run inside the repository or pass --repo DIR."
        )
    sep = "..." if "..." in spec else ".." if ".." in spec else None
    if sep is None:
        raise InvalidInput(
            f"--git expects BASE..HEAD or BASE...HEAD, got {spec!r}",
            hint="e.g. --git main..HEAD",
        )
    left, right = spec.split(sep, 1)
    base = _check_rev(repo, left or "HEAD")
    head = _check_rev(repo, right or "HEAD")
    if sep == "...":
        mb = _git(repo, "merge-base", base, head, check=False)
        if not mb:
            raise InvalidInput(f"{left} and {right} have no common ancestor")
        base = mb.decode().strip()
    diff = _git(
        repo,
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--src-prefix=a/",
        "--dst-prefix=b/",
        "-M",
        base,
        head,
        "--",
    )
    assert diff is not None
    return diff.decode(errors="replace"), base, head
