"""The offline planner's answers: plain sentences over the results of the tool calls it made."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.planner_rules import OPTIMIZE_TOOL, Plan
from agents.role_agent import DRY_RUN  # the error code of a writing call a dry run did not make

HEADLINE = ("accuracy", "precision", "recall", "f1", "auc_roc")


@dataclass
class Done:
    """One tool call of this request and its result (as the model saw it)."""

    phase: str
    name: str
    args: dict[str, Any]
    result: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.result.get("ok"))

    @property
    def code(self) -> str:
        return (self.result.get("error") or {}).get("code", "")

    @property
    def output(self) -> dict[str, Any]:
        return self.result.get("output") or {}


def load_result(content: str) -> dict[str, Any]:
    try:
        value = json.loads(content)
    except json.JSONDecodeError:
        return {"ok": False, "error": {"code": "unreadable", "message": content[:300]}}
    return value if isinstance(value, dict) else {"ok": False, "error": {"message": str(value)}}


def args_text(args: dict[str, Any]) -> str:
    return json.dumps(args, default=str)[:300]


# Whole answers ------------------------------------------------------------------------------
def summarize(plan: Plan, done: list[Done]) -> str:
    """The answer over the calls that carried out the plan (existence checks left out)."""
    work = [d for d in done if d.phase not in ("check", "known")]
    planned = [d for d in work if d.code == DRY_RUN]
    if planned:
        return dry_run_answer(plan, work)
    if plan.intent == "review":
        return review_answer(work)
    if plan.intent == "deployment_status":
        return status_answer(work)
    lines = [describe(d.name, d.result) for d in work]
    if plan.intent == "compare" and len(work) == 2 and all(d.ok for d in work):
        lines.append(comparison(work[0].output, work[1].output))
    return "\n".join(lines)


def dry_run_answer(plan: Plan, work: list[Done]) -> str:
    lines = ["Dry run: nothing that writes was called. The plan:"]
    for n, d in enumerate(work, 1):
        if d.code == DRY_RUN:
            lines.append(f"  {n}. would call {d.name} {args_text(d.args)}")
        else:
            lines.append(f"  {n}. read {d.name}: {describe(d.name, d.result)}")
    if plan.promote_if_better is not None:
        lines.append(
            f"  {len(work) + 1}. then request_promotion {args_text(plan.promote_if_better)}, "
            "only if the evaluation says it beats the champion (or there is none)"
        )
    return "\n".join(lines)


def unknown_model_answer(plan: Plan, done: list[Done]) -> str:
    """A named model or version does not exist: say so, list what does, run nothing more."""
    missing = next(d for d in done if d.name == "get_model" and d.code == "not_found")
    name = missing.args.get("name", "")
    known = next((d for d in done if d.name == "list_models" and d.ok), None)
    models = (known.output.get("models") if known else None) or []
    listing = "; ".join(f"{m['name']} (v1..v{m['latest_version']})" for m in models)
    wrote = " and nothing that writes was called" if plan.model else ""
    err = missing.result.get("error", {}).get("message", "not found")
    if any(m["name"] == name for m in models):
        return f"Refused: {err}, so nothing was run{wrote}. Known models: {listing}."
    if not models:
        return f"Refused: {err}, so nothing was run{wrote}. No models are registered yet."
    return f"Refused: no model named {name!r} is registered{wrote}. Known models: {listing}."


def check_failed_answer(plan: Plan, failed: list[Done]) -> str:
    if plan.production and any(d.name == "get_deployment" for d in failed):
        name = plan.model
        return (
            f"Nothing to roll back: {name} has no production deployment, so no rollback was "
            f"requested and nothing was changed. See 'deployment status of {name}'."
        )
    reasons = "; ".join(describe(d.name, d.result) for d in failed)
    return f"Refused before any write: {reasons}. Nothing that writes was called."


def promotion_decision(done: list[Done]) -> str | None:
    """None when the evaluation says the candidate beats the champion (or there is none);
    otherwise why no promotion is requested."""
    ev = next((d for d in done if d.name == "evaluate_model"), None)
    if ev is None or not ev.ok:
        return "Not requesting promotion: the evaluation failed."
    out = ev.output
    comparison_ = out.get("comparison")
    if comparison_ is None or comparison_.get("verdict") == "better":
        return None
    return (
        f"Not requesting promotion: v{out['version']} does not beat champion "
        f"v{out['champion_version']} ({comparison_['verdict']}: {comparison_['reason']})."
    )


def promotion_reason(done: list[Done]) -> str:
    ev = next(d for d in done if d.name == "evaluate_model")
    out = ev.output
    if out.get("comparison") is None:
        return f"There is no champion yet, so v{out['version']} has nothing to beat"
    return f"v{out['version']} beats champion v{out['champion_version']}"


def status_answer(work: list[Done]) -> str:
    model = next((d for d in work if d.name == "get_model"), None)
    if model is None or not model.ok:
        return describe("get_model", model.result) if model else "No model information."
    name = model.output["name"]
    versions = model.output.get("versions", [])
    aliases = [f"{a}=v{v['version']}" for v in versions for a in v.get("aliases", [])]
    lines = [
        f"{name}: registered versions "
        + (", ".join(f"v{v['version']}" for v in versions) or "none")
        + (f" (aliases {', '.join(aliases)})" if aliases else "")
    ]
    deployment = next((d for d in work if d.name == "get_deployment"), None)
    if deployment is not None:
        lines.append("Deployment: " + describe("get_deployment", deployment.result))
    else:
        lines.append("Deployment: none (no gateway serves it on any target)")
    lines.append("Pending approvals: " + _approvals_for(name, None, work))
    return "\n".join(lines)


def review_answer(work: list[Done]) -> str:
    model = next((d for d in work if d.name == "get_model"), None)
    if model is None or not model.ok:
        return describe("get_model", model.result) if model else "No model information."
    name = model.output["name"]
    lines = [f"Review of {name} (read-only; nothing was changed):"]
    for v in model.output.get("versions", []):
        lines.extend(_review_version(name, v, work))
    return "\n".join(lines)


def _evidence_for(version: str, work: list[Done]) -> tuple[str, dict[str, Any]] | None:
    """The newest promotion request's evidence for this version: (approval id, evidence)."""
    for d in work:
        if d.name != "get_approval" or not d.ok:
            continue
        approval = d.output.get("approval") or {}
        evidence = approval.get("evidence") or {}
        if evidence.get("candidate", {}).get("version") == version:
            return approval["id"], evidence
    return None


def _review_version(name: str, v: dict[str, Any], work: list[Done]) -> list[str]:
    ver, honesty, lineage = v["version"], v.get("honesty", {}), v.get("lineage", {})
    missing = v.get("missing_honesty") or []
    digest = v.get("artifact_sha256") or ""
    aliases = ", ".join(v.get("aliases") or []) or "none"
    head = f"v{ver}: aliases {aliases}" + (f"; {v['description']}" if v.get("description") else "")
    lines = [
        head,
        f"  Honesty: {honesty.get('implementation_status', 'missing')}, "
        f"{honesty.get('honesty_warning', 'missing')}"
        + (f"; missing {', '.join(missing)}" if missing else "; complete")
        + f". Claimed (at registration, not measured): {honesty.get('accuracy_claim', 'none')}."
        f" Method: {honesty.get('validation_method', 'none')}.",
        f"  Lineage: run {lineage.get('run_id', v.get('run_id') or 'unknown')}, data "
        f"{lineage.get('dataset_name', 'unknown')} (digest {lineage.get('dataset_digest', '?')}), "
        f"git {str(lineage.get('git_commit', 'unknown'))[:12]}, artifact sha256 "
        f"{digest[:16] + '…' if digest else 'none recorded'}",
    ]
    found = _evidence_for(ver, work)
    aid, ev = found if found else ("", None)
    listed = next(
        (d for d in work if d.name == "list_validations" and d.ok and d.args.get("version") == ver),
        None,
    )
    records = listed.output.get("validations", []) if listed else None
    evaluation = next(
        (
            d
            for d in work
            if d.name == "get_evaluation" and d.ok and d.output.get("model_version") == ver
        ),
        None,
    )
    if ev is not None:
        ds = ev.get("dataset", {})
        lines.append(
            f"  Metrics (measured for approval {aid} on {Path(str(ds.get('path', '?'))).name}, "
            f"{ds.get('rows', '?')} rows): {metrics_text(ev.get('metrics') or {})}"
        )
    elif records:
        r = records[0]
        lines.append(
            f"  Metrics (measured by validation {r['validation_id']}'s re-evaluation): "
            f"{metrics_text(r.get('metrics') or {})}"
        )
    elif evaluation is not None:
        report = evaluation.output.get("report") or {}
        lines.append(
            f"  Metrics (measured, evaluation {evaluation.output['evaluation_id']}): "
            f"{metrics_text(report.get('metrics') or {})}"
        )
    else:
        lines.append("  Metrics: none measured on record here (the claim above is only claimed)")
    lines.append("  Validation: " + _validation(name, v, ev, records))
    if ev is not None:
        gates = ev.get("gates") or {}
        failed = [c["message"] for c in gates.get("checks", []) if not c.get("passed")]
        lines.append(
            "  Gates: " + ("all passed" if gates.get("passed") else "failed: " + "; ".join(failed))
        )
    lines.append(f"  Approvals: {_approvals_for(name, ver, work)}")
    return lines


def _validation(
    name: str, v: dict[str, Any], ev: dict[str, Any] | None, records: list[dict] | None
) -> str:
    """The verdicts on record (state DB), newest first; else what an approval's evidence says;
    the MLflow tag mirror only as a note (a tag is data, never a verdict)."""
    ask = f"a QA tester can run: validate {name} v{v['version']} on logged:holdout"
    if records:
        r, digest = records[0], v.get("artifact_sha256") or ""
        artifact = "this artifact" if r["artifact_sha256"] == digest else "ANOTHER artifact"
        why = f" ({'; '.join(r['reasons'])})" if r.get("reasons") else ""
        earlier = f"; {len(records) - 1} earlier record(s)" if len(records) > 1 else ""
        return (
            f"{r['verdict']}{why} by {r['validated_by']} ({r['method']}) at {r.get('at', '?')}, "
            f"{r['validation_id']}, for {artifact} on dataset sha256 {r['dataset_sha256'][:12]}…"
            f"{earlier} (state-DB records)"
        )
    if ev is not None and ev.get("validation"):
        return f"{ev['validation']['statement']} (in the approval's evidence)"
    tags = v.get("tags") or {}
    note = (
        f" (the MLflow tag mirror says {tags['validation_status']}, which is not a record)"
        if tags.get("validation_status") and records is not None
        else _mirror(v)
    )
    return f"none on record{note}; {ask}"


def _mirror(v: dict[str, Any]) -> str:
    """The MLflow tag mirror's verdict, when no record could be read (a tag is data for the
    reader; promotion gates read the state-DB record, never the tag)."""
    tags = v.get("tags") or {}
    if not tags.get("validation_status"):
        return ""
    return (
        f" here; the MLflow tag mirror says {tags['validation_status']} by "
        f"{tags.get('validated_by')} at {tags.get('validated_at')} ({tags.get('validation_id')})"
    )


def _approvals_for(name: str, version: str | None, work: list[Done]) -> str:
    listed = next((d for d in work if d.name == "list_approvals" and d.ok), None)
    items = [
        a
        for a in (listed.output.get("approvals", []) if listed else [])
        if a["model_name"] == name and (version is None or a["version"] == version)
    ]
    if not items:
        return "none"
    return "; ".join(
        f"{a['id']} {_action(a)} v{a['version']} {a['status']} (requested by "
        f"{a['requested_by']}; see agent approvals show {a['id']})"
        for a in items
    )


def _action(a: dict[str, Any]) -> str:
    return "rollback to" if a.get("action") == "rollback_production" else "promote"


# One call -----------------------------------------------------------------------------------
def metrics_text(metrics: dict[str, float]) -> str:
    shown = {k: metrics[k] for k in HEADLINE if k in metrics} or metrics
    more = len(metrics) - len(shown)
    text = ", ".join(f"{k} {v:.4f}" for k, v in sorted(shown.items())) or "no metrics"
    return text + (f" (+{more} more)" if more else "")


def describe(tool: str, result: dict[str, Any]) -> str:
    if not result.get("ok"):
        err = result.get("error") or {}
        if err.get("code") == DRY_RUN:
            return f"{tool}: not called (dry run)"
        hint = f" Hint: {err['hint']}" if err.get("hint") else ""
        return f"{tool} failed ({err.get('code', 'error')}): {err.get('message', '')}{hint}"
    out = result.get("output") or {}
    try:
        return _describe_output(tool, out)
    except (KeyError, TypeError, AttributeError):
        # The tool's output changed shape: show it as it is rather than a wrong summary.
        return f"{tool}: " + json.dumps(out, default=str)[:800]


def _describe_output(tool: str, out: dict[str, Any]) -> str:  # noqa: C901, PLR0911
    if tool == "list_models":
        models = out.get("models", [])
        if not models:
            return "No registered models."
        return f"{len(models)} registered model(s): " + "; ".join(
            f"{m['name']} (latest v{m['latest_version']}, {m['versions']} versions"
            + (f", aliases {m['aliases']}" if m.get("aliases") else "")
            + ")"
            for m in models
        )
    if tool == "get_model":
        return "; ".join(
            f"{out['name']} v{v['version']}: aliases {v['aliases'] or 'none'}, "
            f"{v['honesty'].get('implementation_status', 'no implementation_status')}, "
            f"validation {v['tags'].get('validation_status', 'none')}"
            for v in out.get("versions", [])
        )
    if tool == "evaluate_model":
        ds = out["dataset"]
        text = (
            f"{out['name']} v{out['version']} on {Path(ds['path']).name} ({out['n']} rows): "
            f"{metrics_text(out['metrics'])}"
        )
        cmp = out.get("comparison")
        if cmp:
            text += f"; vs champion v{out['champion_version']}: {cmp['verdict']} ({cmp['reason']})"
        return text
    if tool == "record_validation":
        why = f" ({'; '.join(out['reasons'])})" if out["reasons"] else ""
        return (
            f"QA verdict on {out['name']} v{out['version']}: {out['verdict']}{why}; "
            f"{metrics_text(out.get('metrics') or {})}; recorded as {out['validation_id']} by "
            f"{out['validated_by']}"
        )
    if tool == "request_promotion":
        failed = [g["message"] for g in out.get("gates", []) if not g.get("passed")]
        text = f"promotion {out['status']}: {out['message']}"
        if failed:
            text += " Failed gates: " + "; ".join(failed)
        if out.get("approve_command"):
            text += f" An approver runs: {out['approve_command']}"
        return text
    if tool == "request_rollback":
        who = " or ".join(out["approvers"]) or "a listed approver"
        first = out["approvers"][0] if out["approvers"] else "APPROVER"
        return (
            f"Rollback requested, not performed: approval {out['approval_id']} asks to return "
            f"{out['name']} in production to v{out['to_version']}. Agents request; people "
            f"decide: {who} must approve it (never the person who asked for it) before "
            f"anything changes; it expires at {out['expires_at']}. Review it with: "
            f"{out['show_command']} — then an approver decides with: agent approvals approve "
            f"{out['approval_id']} --as {first} --evidence-hash {out['evidence_hash']}"
        )
    if tool == "get_deployment":
        gw = out.get("gateway") or {}
        where = gw.get("url") if gw.get("running") else "gateway not running"
        return (
            f"{out['name']}: live versions {out['live_versions'] or 'none'}, revision "
            f"{out['revision']}, strategy {out['strategy']}, {where}"
        )
    if tool == "list_deployments":
        return "Deployments: " + (", ".join(out.get("deployments", [])) or "none")
    if tool == OPTIMIZE_TOOL:
        kept = f"registered as v{out['version']}" if out.get("registered") else "not registered"
        return (
            f"optimized {out['name']} v{out['source_version']}: adopted {out['adopted']} "
            f"({out['reason']}); {kept}"
        )
    if tool == "list_approvals":
        items = out.get("approvals", [])
        if not items:
            return "No approval requests."
        return f"{len(items)} approval request(s): " + "; ".join(
            f"{a['id']} {_action(a)} {a['model_name']} v{a['version']} {a['status']}" for a in items
        )
    return f"{tool}: " + json.dumps(out, default=str)[:800]


def comparison(a: dict[str, Any], b: dict[str, Any]) -> str:
    parts = []
    common = set(a["metrics"]) & set(b["metrics"])
    for metric in sorted(m for m in common if m in HEADLINE) or sorted(common):
        x, y = a["metrics"][metric], b["metrics"][metric]
        parts.append(f"{metric} v{a['version']} {x:.4f} vs v{b['version']} {y:.4f} ({y - x:+.4f})")
    if not parts:
        return "Comparison: no metric measured on both"
    # Lower is better for none of the headline metrics; the rest are shown, not judged.
    judged = [m for m in sorted(common) if m in HEADLINE]
    ahead_b = sum(b["metrics"][m] > a["metrics"][m] for m in judged)
    ahead_a = sum(a["metrics"][m] > b["metrics"][m] for m in judged)
    verdict = (
        f" — v{a['version']} higher on {ahead_a}, v{b['version']} higher on {ahead_b} of "
        f"{len(judged)} headline metrics (point estimates on one dataset)"
        if judged
        else ""
    )
    return "Comparison: " + "; ".join(parts) + verdict
