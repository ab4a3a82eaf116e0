"""Change the policy in force the way an admin does (``agent policy apply``): audited, pinned."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml


def apply_policy_change(
    rt: Any,
    *,
    thresholds: Callable[[dict], None] | None = None,
    roles: Callable[[dict], None] | None = None,
    by: str = "alice",
) -> str:
    """Edit the pinned roles/thresholds with the callbacks, apply as admin ``by``, and make
    the runtime read the new policy; returns the new digest."""
    from policies.pinned import apply_policy, parse_texts

    services = rt.services
    pinned = services.pinned
    texts = dict(pinned.current.texts)
    for name, edit in (("thresholds.yaml", thresholds), ("roles.yaml", roles)):
        if edit is not None:
            data = yaml.safe_load(texts[name])
            edit(data)
            texts[name] = yaml.safe_dump(data, sort_keys=False)
    new = parse_texts(texts, "test")
    apply_policy(
        services.home_dir,
        new,
        actor=services.policy.human(by),
        audit=services.audit,
        expected_digest=pinned.digest,
    )
    services.forget_policy()
    return new.digest


def enable_auto_rollback(rt: Any, **rules: Any) -> str:
    """Turn the monitoring policy's automatic rollback on (it is off in the bundled policy)."""

    def edit(th: dict) -> None:
        th["monitoring"]["auto_rollback"].update({"enabled": True, **rules})

    return apply_policy_change(rt, thresholds=edit)
