"""Every error hint names a command that exists.

Collects each ``hint=`` string (literal, f-string, concatenation, or a name bound to one) and
each ``default_hint`` in core/, policies/, tools/ and agents/, takes every backticked
``agent ...`` command out of it, and checks against the click CLI that the command path
(group + subcommand) exists, that its flags are flags of that command, that it is given no
more positional arguments than the command takes, and that ``agent tool call NAME`` names a
catalog tool.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "policies", "tools", "agents")
HOLE = "\uf8ff"  # stands for an interpolated value ({name}, a variable's text)
COMMAND = re.compile(r"`(agent\s[^`]*)`")


@dataclass(frozen=True)
class Hint:
    where: str  # path:line
    text: str


def _strings(node: ast.AST, names: dict[str, list[ast.AST]], depth: int = 0) -> list[str]:
    """The texts a hint expression can take (interpolations become HOLE)."""
    if depth > 5:
        return []
    if isinstance(node, ast.Constant):
        return [node.value] if isinstance(node.value, str) else []
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value))
            else:
                parts.append(HOLE)
        return ["".join(parts)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _strings(node.left, names, depth + 1) or [HOLE]
        right = _strings(node.right, names, depth + 1) or [HOLE]
        return [a + b for a in left for b in right]
    if isinstance(node, ast.BoolOp):
        return [s for v in node.values for s in _strings(v, names, depth + 1)]
    if isinstance(node, ast.IfExp):
        return _strings(node.body, names, depth + 1) + _strings(node.orelse, names, depth + 1)
    if isinstance(node, ast.Name):
        return [s for v in names.get(node.id, []) for s in _strings(v, names, depth + 1)]
    return []


def collect_hints() -> list[Hint]:
    hints: list[Hint] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            # Names bound to a value anywhere in the file (hint = "...", _TAMPER_HINT = "...").
            names: dict[str, list[ast.AST]] = {}
            for n in ast.walk(tree):
                if isinstance(n, ast.Assign):
                    for t in n.targets:
                        if isinstance(t, ast.Name):
                            names.setdefault(t.id, []).append(n.value)
                elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.value:
                    names.setdefault(n.target.id, []).append(n.value)
            rel = path.relative_to(ROOT).as_posix()
            for n in ast.walk(tree):
                values: list[ast.AST] = []
                if isinstance(n, ast.keyword) and n.arg == "hint":
                    values.append(n.value)
                elif isinstance(n, ast.Assign | ast.AnnAssign) and n.value is not None:
                    targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                    if any(isinstance(t, ast.Name) and t.id == "default_hint" for t in targets):
                        values.append(n.value)
                for v in values:
                    for text in _strings(v, names):
                        hints.append(Hint(f"{rel}:{v.lineno}", text))
    return hints


def _commands() -> list[tuple[str, str]]:
    out = []
    for h in collect_hints():
        for cmd in COMMAND.findall(h.text):
            out.append((h.where, " ".join(cmd.split())))
    return sorted(set(out))


COMMANDS = _commands()


def _tokens(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def _takes_value(param: click.Parameter) -> bool:
    return isinstance(param, click.Option) and not param.is_flag and not param.count


def check_command(command: str) -> list[str]:
    """Problems with one ``agent ...`` command line (empty when it exists as written)."""
    from agents.cli.main import cli

    tokens = _tokens(command)
    assert tokens[0] == "agent"
    ctx = click.Context(cli, info_name="agent")
    cmd: click.Command = cli
    path = ["agent"]
    rest = tokens[1:]
    while isinstance(cmd, click.Group):
        if not rest or rest[0].startswith("-"):
            return [f"`{' '.join(path)}` is a group; name one of its commands"]
        word = rest.pop(0)
        if HOLE in word:
            return [f"`{' '.join(path)} {word}`: the subcommand is not written out"]
        sub = cmd.get_command(ctx, word)
        if sub is None:
            known = ", ".join(cmd.list_commands(ctx))
            return [f"`{' '.join(path)}` has no command {word!r} (it has: {known})"]
        path.append(word)
        ctx = click.Context(sub, info_name=word, parent=ctx)
        cmd = sub
    problems: list[str] = []
    opts: dict[str, click.Parameter] = {}
    for p in cmd.params:
        for o in (*p.opts, *p.secondary_opts):
            if o.startswith("-"):
                opts[o] = p
    opts.setdefault("--help", None)  # type: ignore[arg-type]
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    max_args = None if any(a.nargs == -1 for a in arguments) else sum(a.nargs for a in arguments)
    positional: list[str] = []
    i = 0
    while i < len(rest):
        tok = rest[i]
        i += 1
        if tok in ("…", "...", "[…]", "[...]"):
            continue
        if tok.startswith("-") and HOLE not in tok and len(tok) > 1:
            flag, eq, _ = tok.partition("=")
            param = opts.get(flag)
            if flag not in opts:
                problems.append(f"`{' '.join(path)}` has no option {flag}")
            elif param is not None and _takes_value(param) and not eq:
                i += 1  # its value
            continue
        positional.append(tok)
    if max_args is not None and len(positional) > max_args:
        problems.append(
            f"`{' '.join(path)}` takes {max_args} argument(s), the hint gives {positional}"
        )
    if path[1:] == ["tool", "call"] and positional and HOLE not in positional[0]:
        from tools.base import load_catalog

        if positional[0] not in load_catalog():
            problems.append(f"there is no tool named {positional[0]!r}")
    return problems


def test_hints_are_collected():
    """The collector sees the hints it is meant to check (a broken walk would pass vacuously)."""
    hints = collect_hints()
    where = {h.where.split(":")[0] for h in hints}
    assert {"core/errors.py", "tools/deployment_tools.py", "policies/approvals.py"} <= where
    assert len(COMMANDS) >= 20
    assert any(c == "agent approvals list" for _, c in COMMANDS)


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w} {c}" for w, c in COMMANDS])
def test_hint_names_an_existing_command(where: str, command: str):
    assert check_command(command) == [], f"{where}: `{command}`"


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("agent tool request_promotion", "has no command 'request_promotion'"),
        ("agent deploy rollout", "is a group"),
        ("agent deploy rollout advance NAME --min-request 5", "has no option --min-request"),
        ("agent approvals show ID EXTRA", "takes 1 argument"),
        ("agent tool call no_such_tool", "no tool named"),
        ("agent nosuch thing", "has no command 'nosuch'"),
    ],
)
def test_the_checker_catches_broken_commands(command: str, problem: str):
    assert any(problem in p for p in check_command(command)), check_command(command)


def test_the_checker_accepts_good_commands():
    for command in (
        "agent deploy rollout advance NAME --environment staging --min-requests 5",
        "agent approvals approve apr-1 --as bob --evidence-hash HASH",
        f"agent deploy stop {HOLE} --environment {HOLE}",
        'agent tool call request_promotion --input \'{"name": "m"}\'',
    ):
        assert check_command(command) == [], command


def test_report_outside_the_allowed_folders_hints_at_monitor_report(rt, tmp_path_factory):
    """`--html` outside the working directory and MODELOPS_HOME is refused with a hint that
    names the command the user ran (`agent monitor report ... --html`), not `deploy render`."""
    from policies.rbac import Actor, ActorKind

    outside = tmp_path_factory.mktemp("elsewhere") / "report.html"
    alice = Actor(name="alice", kind=ActorKind.HUMAN, role="Engineer")
    result = rt.dispatcher.call(
        alice, "monitor_report", {"model_id": "m", "html_path": str(outside)}
    )
    assert not result.ok and result.error.code == "invalid_input", result
    assert "outside the allowed directories" in result.error.message
    hint = result.error.hint
    assert "`agent monitor report NAME --html" in hint and "deploy render" not in hint
    for command in COMMAND.findall(hint):
        assert check_command(command) == [], command
    assert not outside.exists()
