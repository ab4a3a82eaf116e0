"""What the console shows for an approval request, shaped for the templates: candidate vs
champion metrics with confidence intervals, gates, QA verdicts, fairness, the QA report's
plots, honesty, policy digest and the validation/decision state. Pure functions over the
tool outputs; nothing here reads a store."""

from __future__ import annotations

from typing import Any

HEADLINE = ("accuracy", "precision", "recall", "f1", "auc_roc")


def metric_rows(evidence: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(headline rows, other rows): candidate value, difference to the champion with its CI."""
    metrics = evidence.get("metrics") or {}
    champion = evidence.get("champion") or {}
    per_metric = (champion.get("comparison") or {}).get("per_metric") or {}
    rows = []
    for name in sorted(
        metrics, key=lambda k: (k not in HEADLINE, HEADLINE.index(k) if k in HEADLINE else 0, k)
    ):
        comp = per_metric.get(name) or {}
        value = metrics[name]
        rows.append(
            {
                "name": name,
                "value": _num(value),
                "champion": _num(value - comp["difference"])
                if isinstance(value, int | float)
                and isinstance(comp.get("difference"), int | float)
                else None,
                "difference": _num(comp.get("difference"), signed=True),
                "ci": f"[{_num(comp.get('ci_low'), signed=True)}, {_num(comp.get('ci_high'), signed=True)}]"
                if comp.get("ci_low") is not None
                else None,
                "verdict": comp.get("verdict"),
                "headline": name in HEADLINE,
            }
        )
    return [r for r in rows if r["headline"]], [r for r in rows if not r["headline"]]


def _num(value: Any, *, signed: bool = False) -> str | None:
    if not isinstance(value, int | float):
        return None if value is None else str(value)
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def fairness_view(report: dict[str, Any] | None) -> dict[str, Any]:
    """The QA evaluation's fairness section as a table, or why there is none."""
    if report is None:
        return {"available": False, "why": "the QA evaluation report could not be read"}
    fairness = report.get("fairness")
    if not fairness:
        return {
            "available": False,
            "why": "not measured: the evaluation was given no sensitive-feature columns",
        }
    groups = fairness.get("groups") or []
    columns: list[str] = []
    for g in groups if isinstance(groups, list) else []:
        for k in g:
            if k not in columns and not isinstance(g[k], dict | list):
                columns.append(k)
    return {
        "available": True,
        "sensitive_columns": fairness.get("sensitive_columns") or [],
        "metrics": {
            k: _num(v) if isinstance(v, int | float) else v
            for k, v in (fairness.get("metrics") or {}).items()
            if not isinstance(v, dict | list)
        },
        "columns": columns,
        "groups": [
            {c: (_num(g.get(c)) if isinstance(g.get(c), float) else g.get(c)) for c in columns}
            for g in (groups if isinstance(groups, list) else [])
        ],
        "unavailable": fairness.get("unavailable") or {},
    }


def plot_names(evaluation: dict[str, Any] | None) -> list[str]:
    if not evaluation:
        return []
    names = [a.rsplit("/", 1)[-1] for a in evaluation.get("artifacts", [])]
    return sorted(n for n in names if n.endswith(".png"))


def gate_rows(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each gate as it reads: a pass that carries a warning (a HEURISTIC model's own, lower
    thresholds) is a "pass with warning", styled as a warning, never as a plain pass."""
    rows = []
    for g in checks:
        if not g.get("passed"):
            state, css = "FAIL", "bad"
        elif g.get("warning"):
            state, css = "pass with warning", "warn"
        else:
            state, css = "pass", "ok"
        rows.append({**g, "state": state, "css": css})
    return rows


def honesty_line(ev: dict[str, Any], *, require_human: bool, is_rollback: bool) -> dict[str, Any]:
    """One sentence from the facts: the QA verdicts (measured now), what the policy requires,
    and the registrant's labels and claim beside the evaluator's measured numbers. Labels set
    at registration are named as such, so they never read as the current verdict."""
    if is_rollback:
        return {"css": "ok", "text": "a rollback returns to an earlier approved version: "
                "no new QA or validation is required by the policy"}  # fmt: skip
    validation = ev.get("validation") or {}
    human = ev.get("human_validation") or {}
    honesty = (ev.get("candidate") or {}).get("honesty") or {}
    qa, hv = validation.get("verdict"), human.get("verdict")
    parts = [f"automated QA {qa}" if qa else "no automated QA on record"]
    if require_human:
        parts.append(
            f"human validation {hv} ({human.get('validator')})"
            if hv
            else "human validation required by the policy and not given yet: approval waits"
        )
    else:
        parts.append("human validation not required by the policy")
    status, label = honesty.get("implementation_status"), honesty.get("honesty_warning")
    if status or label:
        parts.append(
            f"registered as {status or '?'} / {label or '?'} (labels the registrant set; "
            "they do not change with a QA verdict)"
        )
    metrics = ev.get("metrics") or {}
    measured = ", ".join(f"{k} {_num(metrics[k])}" for k in HEADLINE if k in metrics)
    rows = (ev.get("dataset") or {}).get("rows")
    claim = honesty.get("accuracy_claim")
    parts.append(
        f"claimed: {claim or 'nothing'}; measured by the evaluator"
        + (f" on {rows} rows" if rows else "")
        + f": {measured or 'nothing'}"
    )
    if qa == "FAILED" or hv == "FAILED":
        css = "bad"
    elif status == "HEURISTIC" or (require_human and hv != "PASSED") or not qa:
        css = "warn"
    else:
        css = "ok"
    return {"css": css, "text": "; ".join(parts)}


def outcome_view(
    approval: dict[str, Any],
    deployment: dict[str, Any] | None,
    failure: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """What actually happened after the decision, from the approval's ``execution`` and the
    deployment record (its revisions and rollouts), not from what the form expected."""
    a, status = approval, approval["status"]
    who = a.get("decided_by") or "?"
    if status == "pending":
        return None
    if status == "rejected":
        return {"css": "bad", "state": "rejected",
                "text": f"rejected by {who}: {a.get('reason') or 'no reason'}; nothing was deployed"}  # fmt: skip
    if status == "expired":
        return {"css": "bad", "state": "expired", "text": "expired before it was executed; "
                "nothing was deployed"}  # fmt: skip
    ex = a.get("execution") or {}
    dep = deployment or {}
    if status == "approved":
        why = (failure or {}).get("reason") or "the execution has not run or did not finish"
        return {"css": "bad", "state": "failed" if failure else "approved, not executed",
                "text": f"approved by {who}, not executed: {why}"}  # fmt: skip
    strategy = ex.get("strategy", "direct")
    rollout = next((r for r in dep.get("rollouts") or [] if r.get("approval_id") == a["id"]), None)
    live = ", ".join(f"v{v} {w:g} %" for v, w in (dep.get("weights") or {}).items()) or "nothing"
    if strategy == "direct":
        text = f"deployed by {a.get('executed_by')}: revision {ex.get('revision')} routes 100 % to v{a['version']}"
        state = "deployed"
    elif rollout is not None:
        text = (
            f"{rollout['strategy']} rollout #{rollout['id']} step {rollout['step']}/"
            f"{len(rollout['steps'])} at {rollout['weight']:g} %: {rollout['now']} "
            f"(rollout {rollout['state']})"
        )
        state = f"rollout step {rollout['step']} at {rollout['weight']:g} %"
    else:
        text, state = f"executed as {strategy} (revision {ex.get('revision')})", "executed"
    if status == "superseded":
        state, text = "superseded", f"{text}; since superseded by a later change"
    return {"css": "ok" if status == "executed" else "warn", "state": state,
            "text": f"{text}. Production now serves {live}."}  # fmt: skip


def approval_view(
    approval: dict[str, Any],
    *,
    approvers: list[str],
    require_human: bool,
    policy_digest: str,
    qa_evaluation: dict[str, Any] | None,
    qa_error: str | None = None,
    refusals: dict[str, str | None] | None = None,
    deployment: dict[str, Any] | None = None,
    failure: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything an approver needs for one request, at a glance. ``refusals``: why the viewer
    may not approve / reject (``ApprovalService.refusal``, the rule ``decide`` applies), None
    where they may; a control is drawn only where they may."""
    from tools.authorship import review_evidence

    ev = approval.get("evidence") or {}
    rollback = ev.get("rollback")
    reviews, self_reviews = review_evidence(ev, approval["requested_by"])
    headline, other = metric_rows(ev) if not rollback else ([], [])
    human = ev.get("human_validation")
    validation = ev.get("validation")
    deciders = [a for a in approvers if a != approval["requested_by"]]
    if approval["action"] == "rollback_production" or not require_human:
        validation_state = "no human validation required by the policy"
        ready = True
    elif human and human.get("verdict") == "PASSED":
        validation_state = f"human QA PASSED ({human.get('validator')})"
        ready = True
    else:
        verdict = human.get("verdict") if human else "none yet"
        validation_state = f"waits for a human QATester's PASSED validation (now: {verdict})"
        ready = False
    plan = approval.get("plan") or {}
    steps = plan.get("steps")
    return {
        "a": approval,
        "is_rollback": bool(rollback),
        "rollback": rollback,
        "candidate": ev.get("candidate") or {},
        "dataset": ev.get("dataset") or {},
        "headline": headline,
        "other_metrics": other,
        "champion": ev.get("champion"),
        "gates": gate_rows((ev.get("gates") or {}).get("checks", [])),
        "gates_warned": any(
            g.get("passed") and g.get("warning") for g in (ev.get("gates") or {}).get("checks", [])
        ),
        "honesty_line": honesty_line(ev, require_human=require_human, is_rollback=bool(rollback)),
        "gates_passed": (ev.get("gates") or {}).get("passed"),
        "validation": validation,
        "human_validation": human,
        # A review by the requester (or the registrant) is shown apart, never as evidence.
        "design_reviews": reviews,
        "self_reviews": self_reviews,
        "fairness": fairness_view(qa_evaluation.get("report") if qa_evaluation else None)
        if validation
        else {"available": False, "why": "no QA evaluation on record"},
        "qa_error": qa_error,
        "plots": plot_names(qa_evaluation),
        "qa_evaluation_id": (validation or {}).get("evaluation_id"),
        "plan_text": plan.get("strategy", "direct")
        + (" " + " → ".join(f"{s:g}%" for s in steps) if steps else ""),
        "policy_digest": approval.get("policy_digest") or ev.get("policy_digest") or "",
        "policy_current": (approval.get("policy_digest") or ev.get("policy_digest"))
        == policy_digest,
        "deciders": deciders,
        "quorum": f"1 decision by a listed approver other than the requester "
        f"{approval['requested_by']}: {', '.join(deciders) or 'none listed'}",
        "validation_state": validation_state,
        "ready": ready,
        "pending": approval["status"] == "pending",
        "refusals": refusals or {},
        "may_approve": refusals is not None and refusals.get("approve") is None,
        "may_reject": refusals is not None and refusals.get("reject") is None,
        "outcome": outcome_view(approval, deployment, failure),
    }
