"""Agent profiles as data: who each profile is, its role and trust, and which tools it may call.

Read straight from ``roles.yaml`` and from the tool modules' source (``ast``), without importing
the tool modules, pydantic-settings or mlflow, so ``agent agents list`` starts in a fraction of
a second. Tests check this view against ``Policy`` and ``load_catalog()``.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# policies.rights is plain constants; policies.rbac would pull in pydantic (~0.2 s).
from policies.rights import AGENT_NEVER

TRUST_RANK = {"UNTRUSTED": 0, "OBSERVED": 1, "TRUSTED": 2}
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_POLICIES_DIR = _PACKAGE_ROOT / "policies"
_TOOLS_DIR = _PACKAGE_ROOT / "tools"


def trust_rank(trust: str) -> int:
    return TRUST_RANK.get(trust, 0)


def may_delegate(from_trust: str, to_trust: str) -> bool:
    """A hand-off (or a person launching an agent) may never reach a more trusted role:
    an OBSERVED architect cannot get a TRUSTED engineer to act for it."""
    return trust_rank(to_trust) <= trust_rank(from_trust)


@dataclass(frozen=True)
class ToolSummary:
    name: str
    permission: str
    side_effect: str
    description: str
    # Refused to agents by the dispatcher whatever their role (``@tool(people_only=True)``).
    # A tool's argument-dependent ``also_requires`` is code, not read here: listings go by the
    # base permission, as ``Dispatcher.tools_for`` does.
    people_only: bool = False


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    role: str
    grants: str
    trust: str
    persona: str
    tools: list[str] = field(default_factory=list)
    hands_off_to: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.name,
            "role": self.role,
            "grants": self.grants,
            "trust": self.trust,
            "persona": self.persona,
            "tools": self.tools,
            "hands_off_to": self.hands_off_to,
        }


def resolve_home(home: str | Path | None = None) -> Path:
    """The home the settings resolver would pick (``--home`` / ``MODELOPS_HOME`` / the config
    file / ``./.modelops``), skipping pydantic-settings (~0.3 s) unless a config file exists."""
    if home:
        return Path(home).expanduser().resolve()
    config = Path(os.environ.get("MODELOPS_CONFIG", "modelops.toml"))
    if config.exists():
        from core.settings import load_settings

        return load_settings().home_dir
    env = next((v for k, v in os.environ.items() if k.upper() == "MODELOPS_HOME" and v), None)
    return Path(env or ".modelops").expanduser().resolve()


def read_roles(
    policies_dir: Path | None = None, *, home: str | Path | None = None
) -> dict[str, Any]:
    """roles.yaml of ``policies_dir`` if given, else of the policy in force: the home's pinned
    copy (policies/pinned.py; refused if edited by hand), or the bundled one it would pin.
    ``MODELOPS_POLICIES_DIR`` never changes this view, as it never changes the policy."""
    if policies_dir is None:
        from policies.pinned import ROLES, pinned_texts

        texts = pinned_texts(resolve_home(home))
        if texts is not None:
            return yaml.safe_load(texts[ROLES]) or {}
        policies_dir = _DEFAULT_POLICIES_DIR
    return yaml.safe_load((policies_dir / "roles.yaml").read_text()) or {}


def _tool_modules() -> list[str]:
    """The module names ``tools.base.load_catalog`` imports, read from its source."""
    tree = ast.parse((_TOOLS_DIR / "base.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "load_catalog":
            return [
                alias.name
                for stmt in ast.walk(node)
                if isinstance(stmt, ast.ImportFrom) and stmt.module == "tools"
                for alias in stmt.names
            ]
    raise RuntimeError("tools/base.py has no load_catalog(); cannot list tools statically")


def _decorator_kwargs(func: ast.FunctionDef) -> dict[str, Any] | None:
    for dec in func.decorator_list:
        if isinstance(dec, ast.Call) and isinstance(dec.func, ast.Name) and dec.func.id == "tool":
            return {
                kw.arg: kw.value.value
                for kw in dec.keywords
                if kw.arg and isinstance(kw.value, ast.Constant)
            }
    return None


def static_catalog() -> dict[str, ToolSummary]:
    """Every ``@tool`` function's name, permission, side effect and description, from source."""
    catalog: dict[str, ToolSummary] = {}
    for module in _tool_modules():
        tree = ast.parse((_TOOLS_DIR / f"{module}.py").read_text())
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef):
                continue
            kwargs = _decorator_kwargs(node)
            if kwargs is None or kwargs.get("internal") is True:
                continue
            doc = ast.get_docstring(node) or ""
            catalog[node.name] = ToolSummary(
                name=node.name,
                permission=kwargs["permission"],
                side_effect=kwargs["side_effect"],
                description=doc.splitlines()[0] if doc else node.name,
                people_only=kwargs.get("people_only") is True,
            )
    return catalog


def role_may(role: dict[str, Any], permission: str) -> bool:
    """The most an agent of this role may hold (``Policy.permissions`` further intersects it
    with the person's rights): never a right in ``AGENT_NEVER``."""
    return permission not in AGENT_NEVER and permission in (role.get("permissions") or [])


def list_profiles(
    roles_data: dict[str, Any] | None = None,
    catalog: dict[str, ToolSummary] | None = None,
) -> list[ProfileInfo]:
    data = roles_data if roles_data is not None else read_roles()
    tools = catalog if catalog is not None else static_catalog()
    roles = data.get("roles") or {}
    profiles = data.get("profiles") or {}
    out = []
    for name, prof in sorted(profiles.items()):
        role = roles.get(prof["role"], {})
        trust = role.get("trust", "OBSERVED")
        targets = [
            other
            for other, p in sorted(profiles.items())
            if other != name
            and may_delegate(trust, (roles.get(p["role"]) or {}).get("trust", "OBSERVED"))
        ]
        out.append(
            ProfileInfo(
                name=name,
                role=prof["role"],
                grants=role.get("grants", ""),
                trust=trust,
                persona=prof.get("persona", ""),
                tools=sorted(t.name for t in tools.values() if role_may(role, t.permission)),
                hands_off_to=targets,
            )
        )
    return out
