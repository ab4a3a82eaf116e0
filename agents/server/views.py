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


def approval_view(
    approval: dict[str, Any],
    *,
    approvers: list[str],
    require_human: bool,
    policy_digest: str,
    qa_evaluation: dict[str, Any] | None,
    qa_error: str | None = None,
) -> dict[str, Any]:
    """Everything an approver needs for one request, at a glance."""
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
        "gates": (ev.get("gates") or {}).get("checks", []),
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
    }
