"""Which model, version and approval an audit entry is about.

Entries written by services carry ``detail["model"]``/``detail["version"]`` (and
``detail["from_version"]`` for a change that leaves a version) and ``detail["approval_id"]``; entries written by the tool dispatcher carry the call's arguments
as a JSON string in ``detail["args"]`` (``name``/``version``/``to_version``, ``model_id`` such
as ``NAME/3`` or ``NAME@champion``, ``approval_id``), cut at 2000 characters.
"""

from __future__ import annotations

import json
import re
from typing import Any

_MODEL_ID = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127})"
    r"(?:@(?P<alias>[A-Za-z0-9_-]{1,64})|/(?P<version>[0-9]{1,9}))$"
)
_ARG_KEYS = ("name", "version", "to_version", "model_id", "approval_id")
_ARG_FIELD = re.compile(r'"(' + "|".join(_ARG_KEYS) + r')"\s*:\s*"([^"\\]{1,256})"')


def detail_refs(detail: Any) -> tuple[list[tuple[str, str | None]], set[str]]:
    """The (model, version-or-alias-or-None) pairs and approval ids an entry's detail names."""
    refs: list[tuple[str, str | None]] = []
    approvals: set[str] = set()
    if not isinstance(detail, dict):
        return refs, approvals
    if isinstance(detail.get("model"), str):
        refs.append((detail["model"], _text(detail.get("version"))))
        if _text(detail.get("from_version")):  # a rollback names the version it leaves
            refs.append((detail["model"], _text(detail.get("from_version"))))
    if isinstance(detail.get("approval_id"), str):
        approvals.add(detail["approval_id"])
    args = detail.get("args")
    if isinstance(args, str):
        args = _parse_args(args)
    if isinstance(args, dict):
        name = args.get("name")
        if isinstance(name, str):
            refs.append((name, _text(args.get("version"))))
            if _text(args.get("to_version")):
                refs.append((name, _text(args.get("to_version"))))
        mid = args.get("model_id")
        m = _MODEL_ID.match(mid) if isinstance(mid, str) else None
        if m:
            refs.append((m["name"], m["version"] or m["alias"]))
        if isinstance(args.get("approval_id"), str):
            approvals.add(args["approval_id"])
    return refs, approvals


def matches(
    detail: Any,
    model: str | None,
    version: str | None,
    approval_id: str | None,
    model_level: bool,
) -> bool:
    refs, approvals = detail_refs(detail)
    if approval_id is not None and approval_id not in approvals:
        return False
    if model is None and version is None:
        return True
    for name, ver in refs:
        if model is not None and name != model:
            continue
        if version is None or ver == version:
            return True
        if model_level and model is not None and (ver is None or not ver.isdigit()):
            return True
    return False


def _parse_args(raw: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw)
    except ValueError:
        # The dispatcher keeps the first 2000 characters: read the fields we know by pattern.
        found: dict[str, Any] = {}
        for key, value in _ARG_FIELD.findall(raw):
            found.setdefault(key, value)
        return found
    return parsed if isinstance(parsed, dict) else None


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)
