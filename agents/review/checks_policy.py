"""Policy loosening: both sides of ``policies/roles.yaml`` / ``policies/thresholds.yaml`` are
parsed strictly and compared with the semantic diff of ``policies.diff``; each change that
grants more (a permission, an approver, an admin, a person, a trust level, a lower threshold,
human validation or token identity switched off, a longer approval life) is a finding."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from agents.review.diff import ChangedFile
from agents.review.findings import Finding
from core.errors import InvalidInput

ROLES, THRESHOLDS = "roles.yaml", "thresholds.yaml"
_TRUST = {"UNTRUSTED": 0, "OBSERVED": 1, "TRUSTED": 2}


def is_policy_file(path: str) -> bool:
    p = PurePosixPath(path)
    return p.name in (ROLES, THRESHOLDS) and p.parent.name == "policies"


def _bundled(name: str) -> str:
    from policies.pinned import BUNDLED_DIR

    return (BUNDLED_DIR / name).read_text()


def check_policies(files: list[ChangedFile], new_text_of: Any) -> tuple[list[Finding], list[str]]:
    """Findings for every policies/ directory the diff touches. ``new_text_of(path)`` gives an
    unchanged sibling file's text (None when unknown: the bundled one stands in)."""
    by_dir: dict[str, dict[str, ChangedFile]] = {}
    for cf in files:
        if is_policy_file(cf.path):
            by_dir.setdefault(str(PurePosixPath(cf.path).parent), {})[
                PurePosixPath(cf.path).name
            ] = cf
    findings: list[Finding] = []
    notes: list[str] = []
    for directory, changed in sorted(by_dir.items()):
        f, n = _check_dir(directory, changed, new_text_of)
        findings += f
        notes += n
    return findings, notes


def _side_texts(
    directory: str, changed: dict[str, ChangedFile], new_text_of: Any
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    old: dict[str, str] = {}
    new: dict[str, str] = {}
    notes = []
    for name in (ROLES, THRESHOLDS):
        cf = changed.get(name)
        if cf is None:
            text = new_text_of(f"{directory}/{name}") or _bundled(name)
            old[name] = new[name] = text
            continue
        if cf.status == "removed":
            notes.append(f"{cf.path} is deleted: the policy in force is unaffected until applied")
        new_text = cf.new_text if cf.status != "removed" else None
        old_text = cf.old_text if cf.status != "added" else _bundled(name)
        if cf.status == "added":
            notes.append(f"{cf.path} is new: compared with the bundled default policy")
        if new_text is None or old_text is None:
            if cf.status != "removed":
                notes.append(
                    f"{cf.path}: the whole file is not available, so the policy diff was skipped "
                    "(review with --git BASE..HEAD or inside the checked-out tree)"
                )
            return {}, {}, notes
        old[name], new[name] = old_text, new_text
    return old, new, notes


def _check_dir(
    directory: str, changed: dict[str, ChangedFile], new_text_of: Any
) -> tuple[list[Finding], list[str]]:
    from policies.diff import diff_policies
    from policies.pinned import parse_texts

    old_texts, new_texts, notes = _side_texts(directory, changed, new_text_of)
    if not new_texts:
        return [], notes
    try:
        new = parse_texts(new_texts, directory)
    except InvalidInput as exc:
        cf = changed.get(ROLES) or changed.get(THRESHOLDS)
        assert cf is not None
        line = min(cf.added) if cf.added else 1
        return [Finding("MO602", cf.path, line, exc.message, key="invalid")], notes
    try:
        old = parse_texts(old_texts, directory)
    except InvalidInput as exc:
        notes.append(f"{directory}: the old policy does not parse ({exc.message}); not compared")
        return [], notes
    lines = {name: _yaml_lines(text) for name, text in new_texts.items()}
    findings = []

    def add(message: str, severity: Any, file: str, ypath: str, key: str, facts: dict) -> None:
        cf = changed.get(file)
        touched = cf.touched if cf else set()
        line = _line_for(lines.get(file, {}), ypath) or (min(touched) if touched else 1)
        findings.append(
            Finding(
                "MO601",
                f"{directory}/{file}",
                line,
                message,
                severity=severity,
                key=key,
                facts=facts,
            )
        )

    changes = diff_policies(old, new)
    for change in changes:
        for message, severity, file, ypath in _loosening(change, old, new):
            key = f"{change['change']}:{change['path']}:{change.get('new', change.get('old'))}"
            add(message, severity, file, ypath, key, {"change": change})
    for message, ypath in _threshold_loosening(old, new, [c["path"] for c in changes]):
        add(message, None, THRESHOLDS, ypath, f"thresholds:{ypath}", {"thresholds": ypath})
    return findings, notes


def _perms(ps: Any, role: str | None) -> frozenset[str]:
    r = ps.policy.roles.get(role or "")
    return r.permissions if r else frozenset()


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _loosening(change: dict[str, Any], old: Any, new: Any) -> list[tuple[str, Any, str, str]]:
    """(message, severity or None, file, yaml path in that file) for a loosening change."""
    kind, path = change["change"], change["path"]
    parts = path.split(".")
    o, n = change.get("old"), change.get("new")
    if parts[0] == "thresholds":
        return []  # _threshold_loosening compares effective thresholds
    out: list[tuple[str, Any, str, str]] = []
    if parts[0] == "roles" and len(parts) == 3 and parts[2] == "permissions" and kind == "added":
        out.append((f"role {parts[1]} gains permission {n}", None, ROLES, f"{path}={n}"))
    elif parts[0] == "roles" and len(parts) == 3 and parts[2] == "trust" and kind == "changed":
        if _TRUST.get(n, 0) > _TRUST.get(o, 0):
            out.append((f"role {parts[1]} trust raised {o} -> {n}", None, ROLES, path))
    elif path == "approvers" and kind == "added":
        out.append((f"{n} becomes an approver", None, ROLES, f"people.{n}.approver"))
    elif path == "admins" and kind == "added":
        out.append((f"{n} becomes an admin (may change the policy)", None, ROLES, f"admins={n}"))
    elif parts[0] in ("people", "profiles") and len(parts) == 2 and kind == "added":
        role = (n or {}).get("role")
        what = "person" if parts[0] == "people" else "agent profile"
        out.append((f"new {what} {parts[1]} with role {role}", "warning", ROLES, path))
    elif parts[0] in ("people", "profiles") and len(parts) == 3 and parts[2] == "role":
        gained = _perms(new, n) - _perms(old, o)
        if gained:
            out.append(
                (
                    f"{parts[1]} moves from role {o} to {n}, gaining {', '.join(sorted(gained))}",
                    None,
                    ROLES,
                    path,
                )
            )
    elif path == "identity" and kind == "changed" and o == "token" and n != "token":
        out.append(
            (
                "identity switched from token to claimed: --as NAME is trusted again",
                None,
                ROLES,
                path,
            )
        )
    elif path == "validation.require_human" and o is True and n is not True:
        out.append(
            (
                "require_human switched off: approvers may decide without a human QATester",
                None,
                ROLES,
                path,
            )
        )
    elif (
        path in ("approvals.ttl_hours", "approvals.rollback_ttl_hours")
        and _num(o)
        and _num(n)
        and n > o
    ):
        out.append(
            (f"{path} raised {o} -> {n}: requests stay decidable longer", "warning", ROLES, path)
        )
    elif path == "rollout.min_requests_per_step" and _num(o) and _num(n) and n < o:
        out.append((f"{path} lowered {o} -> {n}", None, ROLES, path))
    return out


def _threshold_loosening(old: Any, new: Any, changed_paths: list[str]) -> list[tuple[str, str]]:
    """(message, yaml path in thresholds.yaml): what the default, and each model whose
    override changed, is held to (an override replaces whole sections, so compare effective
    values, not keys)."""
    from policies.gates import thresholds_for

    models = sorted(
        {
            p.split(".")[2]
            for p in changed_paths
            if p.startswith("thresholds.models.") and p.count(".") >= 2
        }
    )
    scopes = (
        [("*", "default", "default")]
        if any(p.startswith("thresholds.default") for p in changed_paths)
        else []
    )
    scopes += [(m, f"model {m}", f"models.{m}") for m in models]
    out = []
    for model, label, base in scopes:
        before = thresholds_for(old.thresholds, model)
        after = thresholds_for(new.thresholds, model)
        for task in _reviewed_tasks(old.thresholds, new.thresholds, model):
            out += _bounds_loosening(old.thresholds, new.thresholds, model, task, label, base)
        if before.get("block_inconclusive") is True and after.get("block_inconclusive") is not True:
            out.append((f"{label}: block_inconclusive switched off", f"{base}.block_inconclusive"))
    return out


def _reviewed_tasks(old: dict, new: dict, model: str) -> list[str]:
    """binary (the top-level keys) always; multiclass where a policy gives it its own section
    (else it equals binary); regression always (a policy without it has nothing to loosen)."""
    sections = [t.get("default") or {} for t in (old, new)]
    sections += [(t.get("models") or {}).get(model) or {} for t in (old, new)]
    multi = any("multiclass" in s for s in sections)
    return ["binary", *(["multiclass"] if multi else []), "regression"]


def _bounds_loosening(
    old: dict, new: dict, model: str, task: str, label: str, base: str
) -> list[tuple[str, str]]:
    """Minimums lowered or removed and maximums raised or removed, for one task."""
    from core.errors import GateFailed
    from policies.gates import limits_for_task

    try:
        before = limits_for_task(old, model, task)
    except GateFailed:
        return []  # nothing was enforced for this task before
    try:
        after = limits_for_task(new, model, task)
    except GateFailed:
        after = {"minimums": {}, "maximums": {}}
    where = label if task == "binary" else f"{label} ({task})"
    prefix = base if task == "binary" else f"{base}.{task}"
    out = []
    for kind, word, looser in (
        ("minimums", "minimum", lambda was, now: now < was),
        ("maximums", "maximum", lambda was, now: now > was),
    ):
        for status, limits in (before.get(kind) or {}).items():
            now = (after.get(kind) or {}).get(status, {})
            for metric, bound in (limits or {}).items():
                ypath = f"{prefix}.{kind}.{status}.{metric}"
                if metric not in now:
                    out.append((f"{where}: {word} {status}.{metric} ({bound}) removed", ypath))
                elif _num(now[metric]) and _num(bound) and looser(bound, now[metric]):
                    change = "lowered" if kind == "minimums" else "raised"
                    out.append(
                        (
                            f"{where}: {word} {status}.{metric} {change} {bound} -> {now[metric]}",
                            ypath,
                        )
                    )
    return out


def _yaml_lines(text: str) -> dict[str, int]:
    """Dotted key path (and ``path=value`` for list items) -> 1-based line."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    out: dict[str, int] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                sub = f"{path}.{k.value}" if path else str(k.value)
                out[sub] = k.start_mark.line + 1
                walk(v, sub)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                if isinstance(item, yaml.ScalarNode):
                    out[f"{path}={item.value}"] = item.start_mark.line + 1

    if root is not None:
        walk(root, "")
    return out


def _line_for(lines: dict[str, int], ypath: str) -> int | None:
    if ypath in lines:
        return lines[ypath]
    parts = ypath.split("=", 1)[0].split(".")
    while parts:
        key = ".".join(parts)
        if key in lines:
            return lines[key]
        parts.pop()
    return None
