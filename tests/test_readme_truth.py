"""The README and docs cannot drift from the CLI: every ``agent ...`` line in their shell
blocks is a command that exists with the options it shows, and every JSON ``--input`` given to
a tool or workflow validates against that tool's schema with today's field names (an old name
accepted for one release is an error here). The tour itself runs in
tests/test_cli.py::test_quickstart_non_interactive_then_approve_command_deploys_and_predict_answers.
"""

from __future__ import annotations

import json
import re
import shlex
import warnings
from pathlib import Path

import pytest

from tests.test_hints import HOLE, check_command

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```(\w*)\s*$")
_SHELL = {"", "bash", "sh", "console", "shell"}


def shell_commands(path: Path, raw: bool = False) -> list[tuple[int, str]]:
    """(line number, command) for each ``agent`` command in the file's shell blocks, with
    continuation lines joined and comments dropped (``raw``: the text as bash reads it)."""
    out: list[tuple[int, str]] = []
    lang: str | None = None
    pending, start = "", 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        fence = _FENCE.match(line.strip())
        if fence:
            lang = None if lang is not None else fence.group(1)
            pending = ""
            continue
        if lang is None or lang not in _SHELL:
            continue
        if not pending:
            start = n
            if not line.strip().startswith("agent "):
                continue
        text = pending + (" " if pending else "") + line.strip()
        if text.endswith("\\"):
            pending = text[:-1].rstrip()
            continue
        try:
            tokens = shlex.split(text, comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            pending = text
            continue
        pending = ""
        # (not a diagram that starts "agent /")
        if len(tokens) > 1 and re.match(r"^(?:[a-z][a-z-]*|--?[a-z-]+)$", tokens[1]):
            out.append((start, text if raw else shlex.join(tokens)))
    return out


CASES = [(f"{p.name}:{n}", cmd) for p in DOCS for n, cmd in shell_commands(p)]


def test_the_docs_show_commands() -> None:
    """The extractor finds the README's commands (a broken parser would pass vacuously)."""
    readme = [c for w, c in CASES if w.startswith("README.md")]
    assert len(readme) >= 20
    assert any(c.startswith("agent approvals approve") for c in readme)
    assert any(c.startswith("agent workflow run ml-model-evaluation") for c in readme)


def _checkable(command: str) -> str:
    """The command as check_command reads it: "[--to 1]" (an optional part) as if given,
    a ``$(...)`` value as a placeholder, and the group's own options (``--server URL``)
    dropped."""
    tokens = []
    for t in shlex.split(command):
        if t.startswith("[-"):
            t = t[1:]
        if t.endswith("]") and not t.startswith(("{", "[")) and t.count("[") < t.count("]"):
            t = t[:-1]
        if "$(" in t:
            t = HOLE
        if t.startswith("--") and "/--" in t:  # "--flag/--no-flag": either form
            t = t.split("/")[0]
        if t:
            tokens.append(t)
    while len(tokens) > 2 and tokens[1] in ("--server", "--home"):
        del tokens[1:3]
    while len(tokens) > 1 and tokens[1] == "--debug":
        del tokens[1]
    return shlex.join(tokens)


@pytest.mark.parametrize(("where", "command"), CASES, ids=[w for w, _ in CASES])
def test_every_documented_command_exists(where: str, command: str) -> None:
    assert check_command(_checkable(command)) == [], f"{where}: {command}"


def _input_of(tokens: list[str]) -> str | None:
    for i, tok in enumerate(tokens):
        if tok == "--input" and i + 1 < len(tokens):
            return tokens[i + 1]
        if tok.startswith("--input="):
            return tok.split("=", 1)[1]
    return None


def _schema_for(tokens: list[str]):  # noqa: ANN202
    """The input model a documented command's --input goes to (None: free text/untyped)."""
    from agents.cli.workflow_inputs import SCHEMA_SOURCES
    from tools.base import load_catalog

    words = [t for t in tokens if not t.startswith("-")]
    catalog = load_catalog()
    if words[1:3] == ["tool", "call"] and len(words) > 3:
        return catalog[words[3]].input_model
    if words[1:3] == ["eval", "run"]:
        return catalog["evaluate_model"].input_model
    if words[1:3] == ["workflow", "run"] and len(words) > 3:
        kind, target = SCHEMA_SOURCES.get(words[3], (None, None))
        if kind == "tool":
            return catalog[target].input_model
    return None


JSON_CASES = [
    (w, c)
    for w, c in CASES
    if _input_of(shlex.split(c)) is not None and "$(" not in (_input_of(shlex.split(c)) or "")
]


@pytest.mark.parametrize(("where", "command"), JSON_CASES, ids=[w for w, _ in JSON_CASES])
def test_documented_inputs_are_valid_json_with_current_names(where: str, command: str) -> None:
    tokens = shlex.split(command)
    raw = _input_of(tokens)
    if raw == "-" or raw.startswith("@"):
        pytest.skip(f"{where}: the input comes from stdin or a file")
    if "…" in raw or "..." in raw or re.fullmatch(r"[A-Z_|]+", raw):
        pytest.skip(f"{where}: a usage synopsis or an elided example, not a whole input")
    data = json.loads(raw)  # a documented input must at least be JSON
    model = _schema_for(tokens)
    if model is None:
        return
    if "ml-model-registry" in tokens:  # the seed's field names, mapped as the workflow does
        from tools.byom_tools import from_seed_input

        data = from_seed_input(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # an old field name is a doc bug
        model.model_validate(data)
