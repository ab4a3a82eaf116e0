"""The policy in force belongs to the home: a pinned copy of roles.yaml and thresholds.yaml.

On first use the bundled files are copied into ``<home>/policy/`` and ``pin.json`` records
their text, SHA-256 and the policy digest. From then on the policy is loaded from the pinned
copy only; a pinned file edited by hand no longer matches ``pin.json`` and is refused.
Nothing ambient (``MODELOPS_POLICIES_DIR``, ``policies_dir`` in a ``modelops.toml``) swaps it:
a configured directory must hold the same policy, or it is refused. The only way to change the
policy in force is ``agent policy apply``: an audited admin action with a diff and a new digest.

``pin.json`` is the commit point: it is replaced atomically, and the readable copies next to it
are rewritten from it under the same lock, so a crash leaves either the old or the new policy
(or a mismatch that refuses everything until an admin re-runs the apply).

A missing pin is not "use the default": only a home with no history gets the bundled policy
(audited as ``policy.pin``). Every pinned policy's texts are kept in the state DB
(policies/policy_history.py); a home whose audit log records a pin and that lost ``pin.json``
refuses to run until an admin of that policy restores it with ``agent policy repin``.

Cheap to import (no pydantic): ``agents.profiles`` reads the pinned roles through
``pinned_texts`` without building a ``Policy``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from policies.thresholds_schema import validate_thresholds

if TYPE_CHECKING:
    from policies.audit import AuditLog
    from policies.rbac import Actor, Policy

BUNDLED_DIR = Path(__file__).resolve().parent
PIN_DIRNAME = "policy"
PIN_FILE = "pin.json"
ROLES, THRESHOLDS = "roles.yaml", "thresholds.yaml"
POLICY_FILES = (ROLES, THRESHOLDS)
ADMIN_HINT = "Only a person listed under `admins:` may do this; see `agent policy show`."
_TAMPER_HINT = (
    "Do not edit the pinned copy. An admin changes the policy with `agent policy apply FILE` "
    "(review it first with `agent policy diff FILE`)."
)


def pin_dir(home: Path) -> Path:
    return Path(home) / PIN_DIRNAME


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def policy_digest(policy: Policy, thresholds: Mapping[str, Any]) -> str:
    """The digest of the policy in force: roles (``Policy.digest``) and thresholds together.

    Semantic: comments and key order do not change it. This is the value recorded in every
    approval's evidence and in every ``policy.apply`` audit row.
    """
    canon = json.dumps(
        {"roles": policy.digest, "thresholds": thresholds},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canon.encode()).hexdigest()


# Reading a candidate policy ----------------------------------------------------------------
@dataclass(frozen=True)
class PolicySet:
    """Roles and thresholds parsed strictly, with the texts they came from and their digest."""

    policy: Policy
    thresholds: dict[str, Any]
    texts: dict[str, str]
    digest: str


def parse_texts(texts: Mapping[str, str], source: str) -> PolicySet:
    from policies.rbac import Policy

    try:
        roles_data = yaml.safe_load(texts[ROLES])
        thr_data = yaml.safe_load(texts[THRESHOLDS])
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: not valid YAML: {exc}") from exc
    policy = Policy.from_mapping(roles_data, f"{source}/{ROLES}")
    thresholds = validate_thresholds(thr_data, f"{source}/{THRESHOLDS}")
    return PolicySet(policy, thresholds, dict(texts), policy_digest(policy, thresholds))


def read_source(path: Path, fallback_thresholds: str | None = None) -> PolicySet:
    """A policy to compare or apply: a directory with roles.yaml and thresholds.yaml, or a
    roles file alone (its thresholds are then ``fallback_thresholds``, the pinned ones)."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = {name: path / name for name in POLICY_FILES}
        missing = [n for n, p in files.items() if not p.is_file()]
        if missing:
            raise NotFound(f"{path} has no {', '.join(missing)}")
    elif path.is_file():
        files = {ROLES: path}
    else:
        raise NotFound(f"no policy file or directory at {path}")
    try:
        texts = {name: p.read_text() for name, p in files.items()}
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    if THRESHOLDS not in texts:
        if fallback_thresholds is None:
            raise InvalidInput(f"{path}: a thresholds.yaml is needed next to the roles")
        texts[THRESHOLDS] = fallback_thresholds
    return parse_texts(texts, str(path))


def bundled_texts() -> dict[str, str]:
    return {name: (BUNDLED_DIR / name).read_text() for name in POLICY_FILES}


# The pin -----------------------------------------------------------------------------------
@contextlib.contextmanager
def locked(home: Path, exclusive: bool) -> Iterator[None]:
    d = pin_dir(home)
    if exclusive:
        d.mkdir(parents=True, exist_ok=True)
    elif not d.is_dir():
        yield
        return
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str, mode: int = 0o444) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def pin_stamp(home: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime in ns) of the pin file, None if there is none: the pin is
    replaced whole (written, then renamed) on every apply, so any change shows here."""
    try:
        st = (pin_dir(home) / PIN_FILE).stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read_pin(home: Path) -> dict[str, Any] | None:
    path = pin_dir(home) / PIN_FILE
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    try:
        pin = json.loads(raw)
        files = pin["files"]
        for name in POLICY_FILES:
            text = files[name]["text"]
            if _sha256(text) != files[name]["sha256"]:
                raise ValueError(f"{name} snapshot does not match its SHA-256")
        str(pin["digest"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Conflict(
            f"the policy pin {path} is damaged: {exc}",
            hint="pin.json records the policy in force; restore it from a backup of the home.",
        ) from exc
    return pin


def changed_copies(home: Path, pin: dict[str, Any]) -> list[str]:
    """Names of the readable pinned copies whose bytes no longer match the pin."""
    changed = []
    for name in POLICY_FILES:
        try:
            on_disk = (pin_dir(home) / name).read_text()
        except (OSError, UnicodeDecodeError):
            on_disk = None
        if on_disk is None or _sha256(on_disk) != pin["files"][name]["sha256"]:
            changed.append(name)
    return changed


def _check_copies(home: Path, pin: dict[str, Any]) -> None:
    changed = changed_copies(home, pin)
    if changed:
        raise Conflict(
            f"the pinned policy file {pin_dir(home) / changed[0]} was changed outside "
            f"`agent policy apply` (it no longer matches the pin {str(pin['digest'])[:12]}); "
            "refusing to use it",
            hint=_TAMPER_HINT,
        )


def pinned_texts(home: Path) -> dict[str, str] | None:
    """The pinned texts (each copy checked against the pin), or None when nothing is pinned.

    No pydantic: this is what ``agent agents list`` reads."""
    with locked(home, exclusive=False):
        pin = read_pin(home)
        if pin is None:
            return None
        _check_copies(home, pin)
        return {name: pin["files"][name]["text"] for name in POLICY_FILES}


def write_pin(home: Path, new: PolicySet, *, by: str | None, previous: str | None) -> None:
    """Commit ``new`` as the pinned policy (caller holds the exclusive lock)."""
    d = pin_dir(home)
    pin = {
        "format": 1,
        "digest": new.digest,
        "previous_digest": previous,
        "pinned_at": datetime.now(UTC).isoformat(),
        "pinned_by": by,
        "files": {
            name: {"sha256": _sha256(new.texts[name]), "text": new.texts[name]}
            for name in POLICY_FILES
        },
    }
    _write_atomic(d / PIN_FILE, json.dumps(pin, indent=1, sort_keys=True))
    for name in POLICY_FILES:
        _write_atomic(d / name, new.texts[name])


@dataclass(frozen=True)
class PinnedPolicy:
    """The policy in force in one home."""

    home: Path
    current: PolicySet
    pinned_at: str
    pinned_by: str | None
    previous_digest: str | None
    # Readable copies edited by hand (only when loaded with verify_copies=False).
    changed_copies: tuple[str, ...] = ()

    @property
    def policy(self) -> Policy:
        return self.current.policy

    @property
    def thresholds(self) -> dict[str, Any]:
        return self.current.thresholds

    @property
    def digest(self) -> str:
        return self.current.digest

    def describe(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "previous_digest": self.previous_digest,
            "pinned_at": self.pinned_at,
            "pinned_by": self.pinned_by,
            "location": str(pin_dir(self.home)),
            "changed_copies": list(self.changed_copies),
            "identity": self.policy.identity,
            "admins": list(self.policy.admins),
            "approvers": self.policy.approvers(),
            "people": {
                n: {"role": p.role, "approver": p.approver}
                for n, p in sorted(self.policy.people.items())
            },
            "roles": {
                n: {"grants": r.grants, "trust": r.trust, "permissions": sorted(r.permissions)}
                for n, r in sorted(self.policy.roles.items())
            },
            "profiles": {n: p.role for n, p in sorted(self.policy.profiles.items())},
            "approvals": self.policy.approvals.model_dump(),
            "validation": self.policy.validation.model_dump(),
            "rollout": self.policy.rollout.model_dump(),
            "thresholds": self.thresholds,
        }


def _from_pin(home: Path, pin: dict[str, Any]) -> PinnedPolicy:
    texts = {name: pin["files"][name]["text"] for name in POLICY_FILES}
    current = parse_texts(texts, str(pin_dir(home)))
    if current.digest != pin["digest"]:
        raise Conflict(
            f"the pinned policy's digest {current.digest[:12]} is not the one recorded "
            f"({str(pin['digest'])[:12]})",
            hint=_TAMPER_HINT,
        )
    return PinnedPolicy(
        home,
        current,
        pin.get("pinned_at", ""),
        pin.get("pinned_by"),
        pin.get("previous_digest"),
        tuple(changed_copies(home, pin)),
    )


def load_pinned(
    home: Path,
    policies_dir: Path | None = None,
    *,
    audit: AuditLog,
    verify_copies: bool = True,
) -> PinnedPolicy:
    """The policy in force in ``home``; a home with no history pins the bundled policy.

    ``audit`` is the home's audit log: the first pin is audited there, and a missing pin in a
    home whose log records one is refused (``_first_pin``), never replaced by the bundled one.
    ``policies_dir`` (from settings) is only accepted when it holds the same policy.
    ``verify_copies=False`` is for the ``agent policy`` commands only: they read the pin itself
    (the record of the policy in force), so an admin can repair a hand-edited copy by applying.
    """
    home = Path(home)
    with locked(home, exclusive=False):
        pin = read_pin(home)
        if pin is not None and verify_copies:
            _check_copies(home, pin)
    if pin is None:
        with locked(home, exclusive=True):
            pin = read_pin(home)  # another process may have pinned meanwhile
            if pin is None:
                _first_pin(home, audit)
                pin = read_pin(home)
            assert pin is not None
            if verify_copies:
                _check_copies(home, pin)
    pinned = _from_pin(home, pin)
    _remember(home, pinned, audit)
    if policies_dir is not None:
        configured = read_source(Path(policies_dir))
        if configured.digest != pinned.digest:
            raise Conflict(
                f"the configured policies directory {policies_dir} (MODELOPS_POLICIES_DIR or "
                "policies_dir in modelops.toml) differs from the policy pinned in this home; "
                "it does not take effect",
                hint=f"Review it with `agent policy diff {policies_dir}`; an admin makes it the "
                f"policy in force with `agent policy apply {policies_dir}`. Otherwise unset it.",
            )
    return pinned


def _missing_pin(home: Path) -> str:
    return f"the policy pin {pin_dir(home) / PIN_FILE} is missing"


def _first_pin(home: Path, audit: AuditLog) -> None:
    """Pin the bundled policy, only in a home with no history (caller holds the lock).

    The audit row and the history row commit before ``pin.json`` is written: a crash between
    leaves a home whose log names a pin it lacks, which refuses and is repinned, never one
    that pinned silently."""
    from policies import policy_history as history

    last = history.last_pinned(audit)
    if last is not None:
        raise Conflict(
            f"{_missing_pin(home)}, but this home pinned policy {last['digest']} (audit entry "
            f"{last['seq']}, {last['action']}); refusing to fall back to the bundled policy",
            hint=f"An admin of that policy restores it: `agent policy repin --digest "
            f"{last['digest']} --as ADMIN`.",
        )
    problem = audit.anchor_disowns()
    if problem is not None:
        raise Conflict(
            f"{_missing_pin(home)} and {problem}: this state DB is not the one this home "
            "recorded, so which policy was in force is unknown; refusing to pin the bundled one",
            hint="Restore pin.json and state.db from a backup of the home, then run "
            "`agent audit verify`.",
        )
    new = parse_texts(bundled_texts(), "bundled")
    history.ensure(audit.engine)
    _record_pin(
        audit,
        new,
        by=None,
        source="bundled",
        reason="first use of a new home: the bundled policy is pinned (no person acted)",
    )
    write_pin(home, new, by=None, previous=None)


def _record_pin(
    audit: AuditLog, policy_set: PolicySet, *, by: str | None, source: str, reason: str
) -> None:
    """The policy's texts in the history and its ``policy.pin`` audit row, in one transaction."""
    from policies import policy_history as history
    from policies.rbac import ADMIN_PERMISSION, system_actor

    with audit.engine.begin() as conn:
        history.record(conn, policy_set, by=by)
        audit.append(
            system_actor("policy-pin"),
            "policy.pin",
            ADMIN_PERMISSION,
            decision="allowed",
            outcome="ok",
            detail={"digest": policy_set.digest, "source": source},
            reason=reason,
            conn=conn,
        )


def _remember(home: Path, pinned: PinnedPolicy, audit: AuditLog) -> None:
    """A pin the state DB has no record of (a new state DB, a home pinned before the history
    existed) is recorded once, texts and audit row, so losing it later is caught too."""
    from policies import policy_history as history

    if history.known(audit.engine, pinned.digest):
        return
    with locked(home, exclusive=True):
        if history.known(audit.engine, pinned.digest):
            return
        _record_pin(
            audit,
            pinned.current,
            by=pinned.pinned_by,
            source="pin.json",
            reason="the pin in force was not recorded in this state DB; recorded as found",
        )


# Admin actions -----------------------------------------------------------------------------
def require_admin(
    policy: Policy, audit: AuditLog, actor: Actor, action: str, detail: dict[str, Any]
) -> None:
    """Allow admins only (``policy:admin``); a denial is audited, then raised."""
    from policies.rbac import ADMIN_PERMISSION

    decision = policy.authorize(actor, ADMIN_PERMISSION)
    if not decision.allowed:
        audit.append(
            actor,
            action,
            ADMIN_PERMISSION,
            decision="denied",
            outcome=PermissionDenied.code,
            detail=detail,
            reason=decision.reason,
        )
        raise PermissionDenied(
            f"{actor.describe()} may not {action}: {decision.reason}", hint=ADMIN_HINT
        )


def apply_policy(
    home: Path,
    new: PolicySet,
    *,
    actor: Actor,
    audit: AuditLog,
    expected_digest: str,
    source: str = "",
) -> dict[str, Any]:
    """Make ``new`` the policy in force. The caller has checked ``require_admin`` against the
    policy in force and shown the diff from ``expected_digest``; if the pin moved since, this
    refuses. An intent row (old/new digest and diff) is audited before the pin is replaced,
    and its outcome (``ok`` or ``error``) after."""
    from policies.diff import diff_policies
    from policies.rbac import ADMIN_PERMISSION

    with locked(home, exclusive=True):
        pin = read_pin(home)
        if pin is None:
            raise Conflict(
                "no policy is pinned in this home",
                hint="A new home pins on first use (`agent policy show`); a home that lost its "
                "pin is restored with `agent policy repin --digest DIGEST`.",
            )
        old_digest = str(pin["digest"])
        if old_digest != expected_digest:
            raise Conflict(
                f"the policy in force changed (now {old_digest[:12]}) since the diff was made",
                hint="Review again with `agent policy diff FILE`, then apply.",
            )
        old = parse_texts(
            {name: pin["files"][name]["text"] for name in POLICY_FILES}, str(pin_dir(home))
        )
        changes = diff_policies(old, new)
        detail = {
            "old_digest": old_digest,
            "new_digest": new.digest,
            "diff": changes,
            "source": source,
        }
        # The pin lives outside the state DB: an intent row before the change, its outcome
        # after. The new texts are kept with the intent, so the pin can always be restored.
        from policies import policy_history as history

        history.ensure(audit.engine)
        with audit.engine.begin() as conn:
            history.record(conn, new, by=actor.responsible_human)
            seq = audit.intent(actor, "policy.apply", ADMIN_PERMISSION, detail, conn=conn)
        try:
            write_pin(home, new, by=actor.responsible_human, previous=old_digest)
        except OSError as exc:
            audit.complete(
                seq, actor, "policy.apply", ADMIN_PERMISSION, "error", {**detail, "error": str(exc)}
            )
            raise
        audit.complete(seq, actor, "policy.apply", ADMIN_PERMISSION, "ok", detail)
    return detail
