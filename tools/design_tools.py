"""Design drafting tools (permission ``design:write``): files for a person to review.

They read the installation's state and write Markdown/YAML into an output folder the caller
names (default under MODELOPS_HOME/drafts/); they never deploy, approve or change a policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from core.errors import InvalidInput, NotFound
from core.names import ModelName
from core.owned_files import Plan, apply, kept_message, plan_writes
from tools.base import ToolInput, tool
from tools.context import CallContext, Services

OUT_DIR = Field(
    default=None,
    min_length=1,
    max_length=1024,
    description="Folder to write into (new or empty unless force; under the working "
    "directory or MODELOPS_HOME). Default: MODELOPS_HOME/drafts/...",
)


def draft_dir(services: Services, out_dir: str | None, kind: str, slug: str, force: bool) -> Path:
    """The folder a draft goes to: the one the caller named (checked by resolve_output_dir:
    inside the allowed roots, new or empty unless ``force``), else the first free one of
    ``MODELOPS_HOME/drafts/KIND/SLUG``, ``SLUG-2``, ... so a second draft never overwrites
    the first and never fails for want of a name."""
    if out_dir is not None or force:
        default = services.settings.home_dir / "drafts" / kind / slug
        return services.resolve_output_dir(out_dir, default=str(default), force=force)
    base = services.settings.home_dir / "drafts" / kind
    for n in range(1, 1000):
        candidate = base / (slug if n == 1 else f"{slug}-{n}")
        if not candidate.exists() or (candidate.is_dir() and not any(candidate.iterdir())):
            return services.resolve_output_dir(str(candidate), default="")
    raise InvalidInput(f"{base} holds 999 drafts of {slug}", hint="Name a folder with out_dir.")


class DraftRunbookInput(ToolInput):
    kind: Literal["rollback", "promotion", "incident"]
    model_name: ModelName | None = Field(
        default=None, description="Write the commands for this model (default: NAME)."
    )
    notes: str = Field(
        default="", max_length=20_000, description="Extra prose to include (e.g. from an LLM)."
    )
    out_dir: str | None = OUT_DIR
    force: bool = Field(
        default=False,
        description="Overwrite this runbook's file if an earlier draft wrote it and it is unchanged.",
    )


# Every draft output lists what it left alone in the folder (not ours, or changed since).
KEPT = Field(default_factory=list, description="Files in the folder left as they are.")


class DraftOutput(BaseModel):
    path: str
    kind: str
    commands: list[str]
    deployments: list[str]
    kept: list[str] = KEPT
    message: str


DRAFT_HINT = (
    "Choose a new folder (out_dir), or leave it out for a fresh default one: a file we did "
    "not write, or one changed since we wrote it, is never overwritten, not even with force."
)


def write_drafts(out: Path, files: dict[str, str | bytes], *, force: bool) -> Plan:
    """Write a draft's files into ``out`` under the rule of ``core.owned_files``, checked as a
    whole before any is written: a file an earlier draft wrote there, unchanged since, is
    overwritten only with ``force``; any other file in the way (a person's, an edited one, a
    symlink) refuses the draft. Nothing is removed; the folder's other files are listed."""
    data = {rel: v.encode("utf-8") if isinstance(v, str) else v for rel, v in files.items()}
    plan = plan_writes(out, data)
    if plan.overwrite and not force:
        raise InvalidInput(
            f"{', '.join(sorted(plan.overwrite))} already exist(s) in {out}",
            hint="Pass force=true (--force) to overwrite what an earlier draft wrote there, or "
            "choose another folder.",
        )
    return apply(plan, hint=DRAFT_HINT, error=InvalidInput)


def with_kept(message: str, plan: Plan) -> str:
    """The tool's message, plus what it left alone in the folder (if anything)."""
    note = kept_message(plan)
    return f"{message} Note: {note}." if note else message


@tool(permission="design:write", side_effect="write")
def draft_runbook(call: CallContext, args: DraftRunbookInput) -> DraftOutput:
    """Draft a rollback, promotion or incident runbook (Markdown) from the installation's real deployments, approval policy and monitoring rules, with this CLI's exact commands."""
    from core.design.runbook import (
        commands_in,
        deployment_from_status,
        render_runbook,
        settings_from_policy,
    )
    from policies.monitoring_rules import monitoring_rules

    services = call.services
    slug = args.kind + (f"-{args.model_name}" if args.model_name else "")
    out = draft_dir(services, args.out_dir, "runbooks", slug, args.force)
    deps = services.deployments
    names = [args.model_name] if args.model_name else deps.list_deployments()
    statuses = []
    for name in names:
        for env in ("production", "staging"):
            try:
                st = deps.status(name, env)
            except NotFound:
                continue
            if st.revision is not None:
                statuses.append(deployment_from_status(st))
    text = render_runbook(
        args.kind,
        settings_from_policy(services.policy),
        monitoring_rules(services.thresholds, args.model_name),
        statuses,
        model_name=args.model_name,
        policy_digest=services.policy_digest,
        notes=args.notes,
    )
    path = out / f"{slug}-runbook.md"
    written = write_drafts(out, {path.name: text}, force=args.force)
    return DraftOutput(
        path=str(path),
        kind=args.kind,
        commands=commands_in(text),
        deployments=[f"{d.model_name}:{d.environment}" for d in statuses],
        kept=written.kept,
        message=with_kept(
            f"Drafted the {args.kind} runbook at {path}; review it before use.", written
        ),
    )


MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(@(champion|challenger)|/[0-9]{1,9})?$"


class DraftMonitoringInput(ToolInput):
    model_id: str = Field(
        pattern=MODEL_ID,
        description="NAME (its live version, else @champion, else the newest), NAME/3 or "
        "NAME@champion.",
    )
    environment: Literal["production", "staging"] = "production"
    out_dir: str | None = OUT_DIR
    force: bool = Field(
        default=False,
        description="Overwrite this draft's files if an earlier draft wrote them, unchanged.",
    )


class DraftMonitoringOutput(BaseModel):
    path: str
    sources_path: str
    version: str
    request: dict
    sources: dict[str, str]
    policy_proposals: dict[str, float]
    kept: list[str] = KEPT
    message: str


def _one_version(services, model_id: str, environment: str) -> tuple[str, str]:
    from tools.monitoring_tools import resolve_versions

    try:
        name, versions, _ = resolve_versions(services, model_id, environment)
        return name, versions[0]
    except NotFound:
        name = model_id
    reader = services.registry_reader
    champion = reader.alias_version(name, "champion")
    if champion:
        return name, str(champion)
    versions = reader.list_versions(name)
    if not versions:
        raise NotFound(f"model {name!r} has no registered version", hint="Register it first.")
    return name, str(max(int(v.version) for v in versions))


@tool(permission="design:write", side_effect="write")
def draft_monitoring_config(call: CallContext, args: DraftMonitoringInput) -> DraftMonitoringOutput:
    """Draft the ml-model-monitoring workflow input for a model version, thresholds proposed from its reference profile (bootstrap self-drift), its prediction log and its accuracy CI, each with its source."""
    import json

    from core.design.monitoring_draft import propose, to_yaml
    from core.serving.prediction_log import read_prediction_log
    from tools.monitoring_tools import monitoring_service, rules_for

    services = call.services
    name, version = _one_version(services, args.model_id, args.environment)
    info = services.registry_reader.get(name, version)
    profile, _note = monitoring_service(services).profile(info)
    rules = rules_for(services, name)
    log = read_prediction_log(services.engine, name, environment=args.environment, limit=5000)
    draft = propose(f"{name}/{version}", version, profile, rules, log)
    out = draft_dir(services, args.out_dir, "monitoring", f"{name}-v{version}", args.force)
    path = out / f"monitoring-{name}.yaml"
    sources = out / f"monitoring-{name}.sources.json"
    written = write_drafts(
        out,
        {
            path.name: to_yaml(draft),
            sources.name: json.dumps(draft, indent=2, sort_keys=True) + "\n",
        },
        force=args.force,
    )
    return DraftMonitoringOutput(
        path=str(path),
        sources_path=str(sources),
        version=version,
        request=draft["request"],
        sources=draft["sources"],
        policy_proposals=draft["policy_proposals"],
        kept=written.kept,
        message=with_kept(
            f"Drafted the monitoring config of {name} v{version} at {path}; review it, then "
            "run it with `agent workflow run ml-model-monitoring --input JSON`.",
            written,
        ),
    )


REVIEW_REF = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(@(champion|challenger)|/[0-9]{1,9})$"


class RecordReviewInput(ToolInput):
    model_ref: str = Field(pattern=REVIEW_REF, description="NAME/VERSION or NAME@champion.")
    recommendation: Literal["approve", "changes-requested", "reject"]
    summary: str = Field(min_length=1, max_length=5000)
    findings: list[str] = Field(default_factory=list, max_length=100)
    risks: list[str] = Field(default_factory=list, max_length=100)


class ReviewOutput(BaseModel):
    name: str
    version: str
    digest: str
    recommendation: str
    artifact: str
    message: str


class ListReviewsInput(ToolInput):
    model_ref: str = Field(pattern=REVIEW_REF, description="NAME/VERSION or NAME@champion.")


class ListReviewsOutput(BaseModel):
    name: str
    version: str
    reviews: list[dict]


def _ref(services, ref: str) -> tuple[str, str]:
    if "/" in ref:
        name, version = ref.split("/", 1)
        return name, version
    name, alias = ref.split("@", 1)
    return name, services.registry_reader.get(name, alias).version


def design_reviews(services, name: str, version: str) -> list[dict]:
    """The version's design reviews, oldest first: only records its reserved tag log names,
    each checked against its digest and against the audit log. A review counts only if
    ``record_design_review`` wrote it, i.e. an audit entry for this version names its digest
    (which covers the reviewer's name): a tag and an artifact set through MLflow's own client
    are not a review, and are reported as such."""
    import json

    from core.design.review_notes import ARTIFACT_DIR, digest, log_digests

    info = services.registry_reader.get(name, version)
    audited = {
        e["detail"].get("digest")
        for e in services.audit.entries(
            action="record_design_review", model=name, version=str(version)
        )
        if e["outcome"] == "ok"
    }
    out = []
    for d in log_digests(info.tags):
        if not info.run_id or len(d) != 16 or not d.isalnum():
            continue
        if d not in audited:
            out.append(
                {"digest": d, "error": "not recorded by record_design_review (no audit entry)"}
            )
            continue
        try:
            text = services.registry.client.download_artifacts(
                info.run_id, f"{ARTIFACT_DIR}/{d}.json"
            )
            record = json.loads(Path(text).read_text())
        except Exception as exc:  # noqa: BLE001 - reported, never silently dropped
            out.append({"digest": d, "error": f"review artifact unreadable: {exc}"})
            continue
        if digest(record) != d:
            out.append({"digest": d, "error": "review artifact does not match its digest"})
            continue
        out.append({**record, "digest": d})
    return out


def _self_review(call: CallContext, args: RecordReviewInput) -> str | None:
    """The dispatcher's guard of record_design_review: no review of a version by the person
    who registered it or asked to promote it (whoever's agent makes the call)."""
    from core.errors import ModelOpsError
    from tools.authorship import self_review_reason

    try:
        name, version = _ref(call.services, args.model_ref)
    except ModelOpsError:
        return None  # an unknown version: the tool itself reports it
    return self_review_reason(call.services, call.actor.responsible_human, name, version)


@tool(permission="design:write", side_effect="write", guard=_self_review)
def record_design_review(call: CallContext, args: RecordReviewInput) -> ReviewOutput:
    """Record a design review (findings, risks, recommendation) of a model version: a run artifact plus a reserved version tag, shown in the approval evidence; the model's artifact digest is untouched."""
    from core.design import review_notes as rn

    services = call.services
    name, version = _ref(services, args.model_ref)
    reg = services.registry
    info = reg.get(name, version)
    if not info.run_id:
        raise InvalidInput(
            f"{name} v{version} has no MLflow run to keep the review artifact with",
            hint="Design reviews need a version registered from a run.",
        )
    record = rn.build_record(
        name=name,
        version=version,
        artifact_sha256=info.artifact_sha256 or "",
        reviewer=call.actor.on_behalf_of or call.actor.name,
        recommendation=args.recommendation,
        summary=args.summary,
        findings=args.findings,
        risks=args.risks,
    )
    d = rn.digest(record)
    path = f"{rn.ARTIFACT_DIR}/{d}"
    reg.client.log_text(info.run_id, rn.canonical(record).decode(), f"{path}.json")
    reg.client.log_text(info.run_id, rn.markdown(record), f"{path}.md")
    log = [*rn.log_digests(info.tags), d]
    reg.set_tags(
        name,
        version,
        {rn.TAG_LATEST: f"{args.recommendation} {d}", rn.TAG_LOG: " ".join(log)},
    )
    return ReviewOutput(
        name=name,
        version=version,
        digest=d,
        recommendation=args.recommendation,
        artifact=f"{path}.json",
        message=f"Recorded a design review of {name} v{version}: {args.recommendation}.",
    )


@tool(permission="registry:read", side_effect="read")
def list_design_reviews(call: CallContext, args: ListReviewsInput) -> ListReviewsOutput:
    """List the design reviews recorded for a model version (oldest first)."""
    name, version = _ref(call.services, args.model_ref)
    return ListReviewsOutput(
        name=name, version=version, reviews=design_reviews(call.services, name, version)
    )
