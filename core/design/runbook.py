"""Runbooks (rollback, promotion, incident) rendered from the installation's actual state.

Everything installation-specific comes from the arguments: the policy in force (approvers,
TTLs, human validation, canary minimum, identity mode), the monitoring rules of the pinned
thresholds and the deployments' status. Every command is a command of this CLI, written out
with the model name when one is given (placeholders in CAPITALS otherwise). Plain Python.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Literal

RunbookKind = Literal["rollback", "promotion", "incident"]
KINDS: tuple[str, ...] = ("rollback", "promotion", "incident")


@dataclass(frozen=True)
class Deployment:
    """What a runbook needs of one deployment (from ``DeploymentService.status``)."""

    model_name: str
    environment: str
    revision: int | None
    live: dict[str, float]
    previous: list[str] = field(default_factory=list)  # earlier primary versions, newest first
    gateway: str = ""


@dataclass(frozen=True)
class Settings:
    """The policy settings a runbook cites (from ``policies.rbac.Policy``)."""

    approvers: list[str]
    admins: list[str]
    ttl_hours: float
    rollback_ttl_hours: float
    require_human: bool
    min_requests_per_step: int
    identity: str
    qa_testers: list[str]


def settings_from_policy(policy: Any) -> Settings:
    people = policy.people
    return Settings(
        approvers=sorted(n for n, p in people.items() if p.approver),
        admins=sorted(policy.admins),
        ttl_hours=policy.approvals.ttl_hours,
        rollback_ttl_hours=policy.approvals.rollback_ttl_hours,
        require_human=policy.validation.require_human,
        min_requests_per_step=policy.rollout.min_requests_per_step,
        identity=policy.identity,
        qa_testers=sorted(n for n, p in people.items() if p.role == "QATester"),
    )


def deployment_from_status(status: Any) -> Deployment:
    rev = status.revision
    previous: list[str] = []
    for r in status.history:
        primary = r.primary
        if primary and primary.version not in previous:
            previous.append(primary.version)
    live = rev.weights() if rev else {}
    previous = [v for v in previous if v not in live]
    gw = status.gateway or {}
    return Deployment(
        model_name=status.model_name,
        environment=status.environment,
        revision=rev.revision if rev else None,
        live=live,
        previous=previous,
        gateway=("running" if gw.get("running") else "stopped") if gw else "",
    )


def _hours(h: float) -> str:
    return f"{h:g} hour" + ("" if h == 1 else "s")


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "(none listed — nobody can approve)"


def _as(s: Settings) -> str:
    """How a person is identified on the command line in this installation."""
    return "" if s.identity == "token" else " --as YOU"


def _identity_line(s: Settings) -> str:
    if s.identity == "token":
        return (
            "Identity mode is `token`: run every command with your personal token in "
            "`MODELOPS_TOKEN` (`--as` is refused)."
        )
    return (
        "Identity mode is `claimed`: name yourself with `--as NAME` (or `MODELOPS_USER`); "
        "consider `identity: token` for a shared installation."
    )


def _deployment_table(deps: list[Deployment]) -> list[str]:
    if not deps:
        return ["No deployments are recorded in this installation.", ""]
    lines = [
        "| Model | Environment | Revision | Live versions (weight) | Earlier versions | Gateway |",
        "|---|---|---|---|---|---|",
    ]
    for d in deps:
        live = ", ".join(f"v{v} ({w:g})" for v, w in d.live.items()) or "none"
        prev = ", ".join(f"v{v}" for v in d.previous) or "none"
        lines.append(
            f"| {d.model_name} | {d.environment} | {d.revision if d.revision is not None else '-'}"
            f" | {live} | {prev} | {d.gateway or '-'} |"
        )
    return [*lines, ""]


def _monitoring_lines(rules: dict[str, Any]) -> list[str]:
    slo = rules.get("slo", {})
    ar = rules.get("auto_rollback", {})
    est = rules.get("estimated_performance", {})
    lines = [
        f"- Report window: {rules.get('window_minutes')} minutes, at least "
        f"{rules.get('min_requests')} requests for a verdict.",
        f"- SLOs: latency p99 ≤ {slo.get('latency_p99_ms')} ms, error rate ≤ "
        f"{slo.get('error_rate')}.",
        f"- Estimated performance ({est.get('metric')}) alerts below {est.get('min')}.",
        f"- Dataset drift when at least {rules.get('drift', {}).get('drift_share')} of the "
        "features drifted (drift alone only alerts).",
    ]
    if ar.get("enabled"):
        lines.append(
            "- Automatic rollback is ON: a breach of "
            + ", ".join(ar.get("triggers", []))
            + f" over the last {ar.get('window_minutes')} minutes with at least "
            f"{ar.get('min_requests')} server outcomes of a live version rolls production "
            "back to the newest version a human approved that is not breaching, or nowhere "
            "(an alert says why). It acts only inside `agent monitor watch NAME` run by a "
            "person who holds deploy:rollback; requests refused at the edge never count."
        )
    else:
        lines.append("- Automatic rollback is OFF: a breach only raises an alert.")
    if not rules.get("declared", True):
        lines.append("- (The pinned policy has no `monitoring:` section; these are defaults.)")
    return lines


def _cmd(text: str) -> str:
    return f"    {text}"


def render_runbook(
    kind: str,
    settings: Settings,
    rules: dict[str, Any],
    deployments: list[Deployment],
    *,
    model_name: str | None = None,
    policy_digest: str = "",
    notes: str = "",
) -> str:
    """The runbook as Markdown. ``kind`` must be one of ``KINDS``."""
    if kind not in KINDS:
        raise ValueError(f"unknown runbook kind {kind!r} (one of {', '.join(KINDS)})")
    name = model_name or "NAME"
    q = shlex.quote(name) if model_name else name
    me = _as(settings)
    deps = [d for d in deployments if model_name is None or d.model_name == model_name]
    title = {"rollback": "Rollback", "promotion": "Promotion", "incident": "Incident response"}
    out = [
        f"# {title[kind]} runbook" + (f": {model_name}" if model_name else ""),
        "",
        "_Drafted from this installation's state"
        + (f" (policy digest `{policy_digest}`)" if policy_digest else "")
        + ". Review before relying on it; re-draft after a policy change._",
        "",
        "## Current deployments",
        "",
        *_deployment_table(deps),
        "## Policy in force",
        "",
        f"- Approvers: {_names(settings.approvers)} (an approver never decides their own request).",
        f"- Approval requests expire after {_hours(settings.ttl_hours)}; an agent's rollback "
        f"request after {_hours(settings.rollback_ttl_hours)} (one approver).",
        "- Human validation before approval: "
        + (
            f"REQUIRED (a QATester other than the requester: {_names(settings.qa_testers)})."
            if settings.require_human
            else "not required."
        ),
        f"- Canary steps must serve at least {settings.min_requests_per_step} candidate "
        "requests before advancing.",
        f"- {_identity_line(settings)}",
        f"- Policy changes: admins {_names(settings.admins)} with `agent policy apply FILE`.",
        "",
        "## Monitoring rules",
        "",
        *_monitoring_lines(rules),
        "",
    ]
    out += {"rollback": _rollback, "promotion": _promotion, "incident": _incident}[kind](
        q, me, settings, deps
    )
    if notes.strip():
        out += ["## Notes", "", notes.strip(), ""]
    return "\n".join(out).rstrip() + "\n"


def _rollback(q: str, me: str, s: Settings, deps: list[Deployment]) -> list[str]:
    target = next((d.previous[0] for d in deps if d.previous), "VERSION")
    return [
        "## Procedure",
        "",
        "1. See what is live and which versions were deployed before:",
        "",
        _cmd(f"agent deploy status {q}{me}"),
        "",
        "2. Check the alerts and the current report that justify the rollback:",
        "",
        _cmd(f"agent monitor alerts {q}{me}"),
        _cmd(f"agent monitor report {q}{me}"),
        "",
        f"3. Roll back (a person holding deploy:rollback; default target: the previous "
        f"version{'' if target == 'VERSION' else f', here v{target}'}):",
        "",
        _cmd(f"agent deploy rollback {q} --to {target} --reason 'WHY'{me}"),
        "",
        "   An agent cannot roll production back itself: it opens a rollback request that one "
        f"approver ({_names(s.approvers)}) decides within {_hours(s.rollback_ttl_hours)}:",
        "",
        _cmd(f"agent approvals list --status pending{me}"),
        _cmd(f"agent approvals show APPROVAL_ID{me}"),
        _cmd(f"agent approvals approve APPROVAL_ID --evidence-hash HASH --reason 'WHY'{me}"),
        "",
        "4. Confirm traffic moved and the gateway is healthy, then watch the next window:",
        "",
        _cmd(f"agent deploy status {q}{me}"),
        _cmd(f"agent monitor report {q} --window 30m{me}"),
        "",
        "5. Verify the audit trail of the rollback:",
        "",
        _cmd(f"agent audit verify{me}"),
        "",
    ]


def _promotion(q: str, me: str, s: Settings, deps: list[Deployment]) -> list[str]:
    steps = [
        "## Procedure",
        "",
        "1. Evaluate the candidate version against the promotion thresholds:",
        "",
        _cmd(
            "agent eval run --input "
            + shlex.quote(
                '{"model_id": "' + q.strip("'") + '/VERSION", "evaluation_dataset": "DATA.csv"}'
            )
            + me
        ),
        "",
        "2. Request the promotion (the gates run; nothing is deployed yet):",
        "",
        _cmd(
            "agent workflow run promotion --input "
            + shlex.quote(
                '{"name": "' + q.strip("'") + '", "version": "VERSION", "dataset": "DATA.csv"}'
            )
            + me
        ),
        "",
    ]
    n = 3
    if s.require_human:
        steps += [
            f"{n}. Human validation is required: a QATester ({_names(s.qa_testers)}), not the "
            "requester, re-evaluates and attaches the verdict:",
            "",
            _cmd(f"agent approvals validate APPROVAL_ID{me}"),
            "",
        ]
        n += 1
    steps += [
        f"{n}. An approver ({_names(s.approvers)}) reviews the evidence (gates, evaluation, "
        f"design reviews) and decides within {_hours(s.ttl_hours)}:",
        "",
        _cmd(f"agent approvals show APPROVAL_ID{me}"),
        _cmd(f"agent approvals approve APPROVAL_ID --evidence-hash HASH --reason 'WHY'{me}"),
        _cmd(f"agent approvals reject APPROVAL_ID --reason 'WHY'{me}"),
        "",
        f"{n + 1}. If the run was interrupted after the decision, finish it:",
        "",
        _cmd(f"agent approvals resume APPROVAL_ID{me}"),
        "",
        f"{n + 2}. Follow the rollout (canary steps need {s.min_requests_per_step} requests "
        "each) and the monitoring:",
        "",
        _cmd(f"agent deploy status {q}{me}"),
        _cmd(f"agent monitor report {q}{me}"),
        "",
    ]
    return steps


def _incident(q: str, me: str, s: Settings, deps: list[Deployment]) -> list[str]:
    return [
        "## Procedure",
        "",
        "1. Triage: what is live, what alerted, what the current window says:",
        "",
        _cmd(f"agent deploy status {q}{me}"),
        _cmd(f"agent monitor alerts {q}{me}"),
        _cmd(f"agent monitor report {q} --window 30m{me}"),
        "",
        "2. Mitigate. Bad version: roll back (see the rollback runbook). Broken gateway: stop "
        "and start it on its last revision:",
        "",
        _cmd(f"agent deploy rollback {q} --reason 'INCIDENT'{me}"),
        _cmd(f"agent deploy stop {q}{me}"),
        _cmd(f"agent deploy start {q}{me}"),
        "",
        "3. Check that nothing in the record was altered, and collect the trail:",
        "",
        _cmd(f"agent audit verify{me}"),
        _cmd(f"agent audit show{me}"),
        "",
        f"4. Follow up: open promotion requests expire after {_hours(s.ttl_hours)}; list them "
        "so no stale request is approved during the incident:",
        "",
        _cmd(f"agent approvals list --status pending{me}"),
        "",
    ]


def commands_in(markdown: str) -> list[str]:
    """The command lines of a rendered runbook (its indented ``agent ...`` lines)."""
    return [line.strip() for line in markdown.splitlines() if line.strip().startswith("agent ")]
