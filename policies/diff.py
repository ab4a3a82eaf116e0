"""A semantic diff between two policies: people, roles, permissions, approvers, admins,
identity mode, governance rules and thresholds, each change with its path."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policies.pinned import PolicySet

Change = dict[str, Any]


def _comparable(ps: PolicySet) -> dict[str, Any]:
    data = ps.policy.model_dump(mode="json", exclude={"source"})
    for section in ("roles", "profiles", "people"):
        for entry in data.get(section, {}).values():
            entry.pop("name", None)  # the key already names it
    # Derived, so a reviewer sees who gains or loses the right to approve at a glance.
    data["approvers"] = ps.policy.approvers()
    data["thresholds"] = ps.thresholds
    return data


def _scalars(values: list[Any]) -> bool:
    return all(isinstance(v, str | int | float | bool) or v is None for v in values)


def _walk(path: str, old: Any, new: Any, out: list[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append({"change": "added", "path": sub, "new": new[key]})
            elif key not in new:
                out.append({"change": "removed", "path": sub, "old": old[key]})
            else:
                _walk(sub, old[key], new[key], out)
    elif isinstance(old, list) and isinstance(new, list) and _scalars(old + new):
        # Permissions, admins, approvers: sets, order carries no meaning.
        for value in sorted(set(new) - set(old), key=str):
            out.append({"change": "added", "path": path, "new": value})
        for value in sorted(set(old) - set(new), key=str):
            out.append({"change": "removed", "path": path, "old": value})
    elif old != new or type(old) is not type(new):
        out.append({"change": "changed", "path": path, "old": old, "new": new})


def diff_policies(old: PolicySet, new: PolicySet) -> list[Change]:
    """Every difference from ``old`` to ``new``; empty when their digests are equal."""
    out: list[Change] = []
    _walk("", _comparable(old), _comparable(new), out)
    return out


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def render_diff(changes: list[Change]) -> list[str]:
    """One line per change: ``+`` added, ``-`` removed, ``~`` changed."""
    lines = []
    for c in changes:
        if c["change"] == "added":
            lines.append(f"+ {c['path']}: {_show(c['new'])}")
        elif c["change"] == "removed":
            lines.append(f"- {c['path']}: {_show(c['old'])}")
        else:
            lines.append(f"~ {c['path']}: {_show(c['old'])} -> {_show(c['new'])}")
    return lines
