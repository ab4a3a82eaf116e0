"""A/B test tools: plan (power, sample size), start, analyze, stop.

An A/B split is a production traffic change, so it is never made here: the arm that is not
yet live reaches production through an approved promotion whose plan is a canary whose first
step is that arm's share (the executor runs it; the split holds until someone advances or
aborts the rollout). ``start_ab_test`` only records an experiment on a split that exists
exactly so, and analysis reads only predictions served on that revision.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from core.errors import ApprovalRequired, Conflict, InvalidInput
from core.names import ModelName
from policies.approvals import ApprovalStatus
from tools.base import ToolInput, tool
from tools.context import CallContext, Services

METRIC = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


class PlanInput(ToolInput):
    control_percent: float = Field(default=50, gt=0, lt=100)
    baseline_rate: float | None = Field(
        default=None, gt=0, lt=1, description="Rate metrics: the control's expected rate."
    )
    minimum_detectable_effect: float | None = Field(
        default=None, gt=0, lt=1, description="Absolute lift to detect (rates)."
    )
    min_sample_size: int | None = Field(
        default=None, ge=2, le=100_000_000, description="Units per arm you plan to collect."
    )
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1)


class PlanOutput(BaseModel):
    plan: dict[str, Any]


def make_plan(args: PlanInput) -> dict[str, Any]:
    from core.abtest import stats

    ratio = (100 - args.control_percent) / args.control_percent
    out: dict[str, Any] = {
        "alpha": args.alpha,
        "power": args.power,
        "ratio_treatment_to_control": ratio,
    }
    if args.baseline_rate is not None and args.minimum_detectable_effect is not None:
        if args.baseline_rate + args.minimum_detectable_effect >= 1:
            raise InvalidInput("baseline_rate + minimum_detectable_effect must stay below 1")
        n = stats.sample_size_proportions(
            args.baseline_rate, args.minimum_detectable_effect, args.alpha, args.power, ratio
        )
        out["required_per_arm"] = {"control": n, "treatment": int(n * ratio + 0.999)}
        if args.min_sample_size:
            out["power_at_min_sample_size"] = stats.power_proportions(
                args.baseline_rate,
                args.minimum_detectable_effect,
                args.min_sample_size,
                args.alpha,
                ratio,
            )
    if args.min_sample_size:
        h = stats.detectable_effect(args.min_sample_size, args.alpha, args.power, ratio)
        out["detectable_standardized_effect"] = h
        out["note"] = (
            f"{args.min_sample_size} units per arm detect a standardized effect (Cohen's h or d) of {h:.4f} with {args.power:.0%} power at alpha {args.alpha}"
        )
    return out


@tool(permission="deploy:read", side_effect="read")
def plan_ab_test(call: CallContext, args: PlanInput) -> PlanOutput:
    """Power and sample size of an A/B test (two-proportion or standardized effect, statsmodels)."""
    return PlanOutput(plan=make_plan(args))


class StartInput(ToolInput):
    experiment_name: str = Field(min_length=1, max_length=128)
    name: ModelName
    control_version: str = Field(pattern=r"^[0-9]{1,9}$")
    treatment_version: str = Field(pattern=r"^[0-9]{1,9}$")
    control_percent: float = Field(default=50, gt=0, lt=100)
    primary_metric: str = Field(default="conversion_rate", pattern=METRIC)
    duration_days: float = Field(default=14, gt=0, le=365)
    min_sample_size: int = Field(default=1000, ge=2, le=100_000_000, description="Units per arm.")
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0.5, lt=1)

    @model_validator(mode="after")
    def _arms(self) -> StartInput:
        if self.control_version == self.treatment_version:
            raise ValueError("control and treatment must be different versions")
        return self


class ExperimentOutput(BaseModel):
    experiment: dict[str, Any]
    analysis: dict[str, Any] | None = None


def approved_split(
    services: Services, name: str, control: str, treatment: str, control_percent: float
) -> tuple[int, str]:
    """(revision, approval id) of a production split that an executed approval made exactly
    so; otherwise ApprovalRequired saying which promotion would make it."""
    deployments = services.deployments
    current = deployments.current(name, "production")
    want = {control: control_percent, treatment: 100 - control_percent}
    live = current.weights() if current else {}
    rollout = deployments.rollouts.active(name, "production")
    if (
        current is None
        or set(live) != set(want)
        or any(abs(live[v] - w) > 0.05 for v, w in want.items())
        or rollout is None
    ):
        serving = ", ".join(f"v{v} {w:g}%" for v, w in live.items()) or "nothing"
        newcomer = treatment if control in live else control
        share = want[newcomer]
        raise ApprovalRequired(
            f"production serves {serving}; the A/B split v{control} {control_percent:g}% / v{treatment} {100 - control_percent:g}% is not live",
            hint=f"Request a promotion of v{newcomer} with the plan canary steps [{share:g}, 100] (`request_promotion`, or `agent workflow run ml-ab-testing`), have it approved; approving runs the canary at {share:g}%.",
        )
    cand = rollout.candidate.version
    req = services.approvals.get(rollout.approval_id) if rollout.approval_id else None
    if req is None or req.status != ApprovalStatus.EXECUTED or req.version != cand:
        raise ApprovalRequired(
            f"the split on revision {current.revision} carries no executed approval of v{cand}"
        )
    info = services.registry_reader.get(name, cand)
    if info.artifact_sha256 != rollout.candidate.artifact_sha256:
        raise Conflict(f"{name} v{cand}'s artifact differs from the one the approval put live")
    return current.revision, req.id


@tool(permission="abtest:run", side_effect="write")
def start_ab_test(call: CallContext, args: StartInput) -> ExperimentOutput:
    """Start an A/B test on a production split that an approved canary already runs (it never moves traffic itself)."""
    from core.abtest.experiment import ExperimentStore

    services = call.services
    revision, approval_id = approved_split(
        services, args.name, args.control_version, args.treatment_version, args.control_percent
    )
    plan = args.model_dump(
        include={
            "primary_metric",
            "duration_days",
            "min_sample_size",
            "alpha",
            "power",
            "control_percent",
        }
    )
    exp = ExperimentStore(services.engine).start(
        name=args.experiment_name, model_name=args.name, control=args.control_version,
        treatment=args.treatment_version, share_control=args.control_percent / 100, revision=revision,
        approval_id=approval_id, plan=plan, actor=call.actor.describe(),
    )  # fmt: skip
    return ExperimentOutput(experiment=exp)


class ExperimentInput(ToolInput):
    experiment_id: str = Field(pattern=r"^ab-[0-9a-f]{8}$")


@tool(permission="deploy:read", side_effect="read")
def analyze_ab_test(call: CallContext, args: ExperimentInput) -> ExperimentOutput:
    """Analyze an A/B test: SRM check, z or Welch test with CIs, CUPED, Holm across secondary metrics, sequential CI and peeking warning, and a decision."""
    from core.abtest.experiment import ExperimentStore, analyze, collect_units

    engine = call.services.engine
    exp = ExperimentStore(engine).get(args.experiment_id)
    return ExperimentOutput(experiment=exp, analysis=analyze(collect_units(engine, exp), exp))


@tool(permission="abtest:run", side_effect="write")
def stop_ab_test(call: CallContext, args: ExperimentInput) -> ExperimentOutput:
    """Stop an A/B test and record its decision (traffic stays as it is: advance or abort the canary to act on it)."""
    from core.abtest.experiment import RUNNING, ExperimentStore, analyze, collect_units

    store = ExperimentStore(call.services.engine)
    exp = store.get(args.experiment_id)
    if exp["state"] != RUNNING:
        raise Conflict(f"{exp['id']} is already {exp['state']}")
    analysis = analyze(collect_units(call.services.engine, exp), exp)
    return ExperimentOutput(experiment=store.stop(exp["id"], analysis), analysis=analysis)
