"""A/B experiments: their record, the data (prediction log + feedback) and the decision.

Units are the gateway's sticky routing keys (logged as a hash with each prediction), so a
user stays in one arm; a prediction without a key is its own unit. Only predictions served
on the experiment's revision (the approved split) count. Per unit, a 0/1 metric is whether
it ever scored 1 (a conversion), any other metric the mean of its values; units with no
outcome count as 0 for a 0/1 metric and are left out of a mean.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import JSON, DateTime, Float, Integer, String, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.abtest import stats
from core.errors import Conflict, NotFound
from core.monitoring.feedback import read_feedback
from core.monitoring.window import read_window
from core.state import Base, aware, ensure_tables, utcnow

RUNNING, STOPPED = "running", "stopped"


class ExperimentRow(Base):
    __tablename__ = "ab_experiments"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    model_name: Mapped[str] = mapped_column(String(128))
    control: Mapped[str] = mapped_column(String(32))
    treatment: Mapped[str] = mapped_column(String(32))
    share_control: Mapped[float] = mapped_column(Float)
    revision: Mapped[int] = mapped_column(Integer)
    approval_id: Mapped[str] = mapped_column(String(64))
    plan: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=RUNNING)
    actor: Mapped[str] = mapped_column(String(128))
    started_at = mapped_column(DateTime(timezone=True), default=utcnow)
    ends_at = mapped_column(DateTime(timezone=True))
    decision: Mapped[dict | None] = mapped_column(JSON, nullable=True)


def _as_dict(r: ExperimentRow) -> dict[str, Any]:
    return {
        "id": r.id, "name": r.name, "model_name": r.model_name, "control": r.control,
        "treatment": r.treatment, "share_control": r.share_control, "revision": r.revision,
        "approval_id": r.approval_id, "plan": r.plan, "state": r.state, "actor": r.actor,
        "started_at": aware(r.started_at).isoformat(), "ends_at": aware(r.ends_at).isoformat(),
        "decision": r.decision,
    }  # fmt: skip


class ExperimentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, ExperimentRow)

    def start(self, *, name: str, model_name: str, control: str, treatment: str, share_control: float,
              revision: int, approval_id: str, plan: dict[str, Any], actor: str) -> dict[str, Any]:  # fmt: skip
        with Session(self.engine) as s, s.begin():
            running = s.scalar(
                select(ExperimentRow).where(
                    ExperimentRow.model_name == model_name, ExperimentRow.state == RUNNING
                )
            )
            if running is not None:
                if running.name == name and running.revision == revision:
                    return _as_dict(running)  # a rerun of the same start
                raise Conflict(
                    f"A/B test {running.id} ({running.name}) is still running on {model_name}",
                    hint="Stop it first.",
                )
            row = ExperimentRow(
                id=f"ab-{secrets.token_hex(4)}", name=name, model_name=model_name, control=control,
                treatment=treatment, share_control=share_control, revision=revision,
                approval_id=approval_id, plan=plan, actor=actor, state=RUNNING, started_at=utcnow(),
                ends_at=utcnow() + timedelta(days=float(plan.get("duration_days", 14))),
            )  # fmt: skip
            s.add(row)
            s.flush()
            return _as_dict(row)

    def get(self, experiment_id: str) -> dict[str, Any]:
        with Session(self.engine) as s:
            row = s.get(ExperimentRow, experiment_id)
            if row is None:
                raise NotFound(
                    f"no A/B test {experiment_id}", hint="See `agent workflow run ml-ab-testing`."
                )
            return _as_dict(row)

    def find(self, model_name: str, name: str | None = None) -> dict[str, Any] | None:
        q = (
            select(ExperimentRow)
            .where(ExperimentRow.model_name == model_name)
            .order_by(ExperimentRow.started_at.desc())
        )
        if name:
            q = q.where(ExperimentRow.name == name)
        with Session(self.engine) as s:
            row = s.scalars(q).first()
            return _as_dict(row) if row is not None else None

    def stop(self, experiment_id: str, decision: dict[str, Any]) -> dict[str, Any]:
        with Session(self.engine) as s, s.begin():
            row = s.get(ExperimentRow, experiment_id)
            if row is None:
                raise NotFound(f"no A/B test {experiment_id}")
            row.state, row.decision = STOPPED, decision
            return _as_dict(row)


# Data -------------------------------------------------------------------------------------
def collect_units(
    engine: Engine, exp: dict[str, Any], *, until: float | None = None
) -> dict[str, Any]:
    """Per arm: unit ids, per-unit metric values and covariates."""
    start = datetime.fromisoformat(exp["started_at"]).timestamp()
    end = time.time() if until is None else until
    window = read_window(
        engine,
        exp["model_name"],
        environment="production",
        seconds=max(end - start, 1.0),
        until=end,
        max_rows=500_000,
    )
    arms = {exp["control"]: "control", exp["treatment"]: "treatment"}
    unit_arm: dict[str, str] = {}
    pid_unit: dict[str, str] = {}
    both = set()
    keyless = 0
    for i in range(len(window)):
        if (
            window.revision[i] != exp["revision"]
            or window.status[i] != 200
            or window.role[i] == "shadow"
        ):
            continue
        arm = arms.get(window.version[i])
        if arm is None:
            continue
        out = window.output[i] or {}
        unit = out.get("routing_key_hash")
        if unit is None:
            keyless += 1
            unit = window.request_id[i]
        if unit_arm.setdefault(unit, arm) != arm:
            both.add(unit)
        pid_unit[window.request_id[i]] = unit
    values: dict[str, dict[str, list[float]]] = {}
    covariate: dict[str, list[float]] = {}
    unknown = 0
    for fb in read_feedback(engine, exp["model_name"], since=start):
        unit = pid_unit.get(fb["prediction_id"])
        if unit is None:
            unknown += 1
            continue
        for metric, v in (fb.get("metrics") or {}).items():
            values.setdefault(metric, {}).setdefault(unit, []).append(float(v))
        if fb.get("covariate") is not None:
            covariate.setdefault(unit, []).append(float(fb["covariate"]))
    units = {
        arm: sorted(u for u, a in unit_arm.items() if a == arm and u not in both)
        for arm in ("control", "treatment")
    }
    return {
        "units": units, "values": values, "covariate": covariate,
        "excluded_in_both_arms": len(both), "keyless_predictions": keyless,
        "unknown_feedback": unknown, "log_truncated": window.truncated,
    }  # fmt: skip


def metric_arrays(
    data: dict[str, Any], metric: str
) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray | None, np.ndarray | None]:
    """(control, treatment, is_binary, covariates...) for one metric."""
    per_unit = data["values"].get(metric, {})
    seen = [v for vs in per_unit.values() for v in vs]
    binary = bool(seen) and all(v in (0.0, 1.0) for v in seen)
    arrays, covs = [], []
    for arm in ("control", "treatment"):
        ys, xs = [], []
        for u in data["units"][arm]:
            vs = per_unit.get(u)
            if binary:
                ys.append(max(vs) if vs else 0.0)
            elif vs:
                ys.append(float(np.mean(vs)))
            else:
                continue
            c = data["covariate"].get(u)
            xs.append(float(np.mean(c)) if c else np.nan)
        arrays.append(np.array(ys))
        covs.append(np.array(xs))
    has_cov = all(len(c) and np.isfinite(c).all() for c in covs)
    return arrays[0], arrays[1], binary, covs[0] if has_cov else None, covs[1] if has_cov else None


# Analysis ---------------------------------------------------------------------------------
def analyze(data: dict[str, Any], exp: dict[str, Any]) -> dict[str, Any]:
    plan = exp["plan"]
    alpha, planned = float(plan.get("alpha", 0.05)), int(plan.get("min_sample_size", 0))
    primary = plan.get("primary_metric", "conversion_rate")
    n_c, n_t = len(data["units"]["control"]), len(data["units"]["treatment"])
    out: dict[str, Any] = {
        "experiment": exp["id"],
        "primary_metric": primary,
        "units": {"control": n_c, "treatment": n_t},
        "warnings": [],
    }
    out["srm"] = stats.srm(n_c, n_t, exp["share_control"])
    for key, what in (
        ("excluded_in_both_arms", "units seen in both arms were left out"),
        ("unknown_feedback", "feedback items name no prediction of this experiment (left out)"),
        (
            "keyless_predictions",
            "predictions carried no routing key (each counted as its own unit)",
        ),
    ):
        if data.get(key):
            out["warnings"].append(f"{data[key]} {what}")
    y_c, y_t, binary, x_c, x_t = metric_arrays(data, primary)
    if min(len(y_c), len(y_t)) < 2:
        out.update(
            decision="insufficient_data",
            message=f"{len(y_c)} control and {len(y_t)} treatment units with {primary!r}; nothing to compare yet",
        )
        return out
    out["primary"] = _compare(y_c, y_t, binary, x_c, x_t, alpha, planned)
    secondary = {
        m: _compare(*metric_arrays(data, m)[:3], None, None, alpha, planned)["p_value"]
        for m in data["values"]
        if m != primary and min(len(a) for a in metric_arrays(data, m)[:2]) >= 2
    }
    out["secondary"] = stats.holm(secondary, alpha)
    if out["srm"]["mismatch"]:
        out.update(
            decision="invalid",
            message=f"sample ratio mismatch (p = {out['srm']['p_value']:.2g} < {stats.SRM_P}): the split is broken; no decision",
        )
        return out
    res = out["primary"]
    early = planned and min(n_c, n_t) < planned
    if early:
        out["warnings"].append(
            f"peeking: {min(n_c, n_t)} of the planned {planned} units per arm; the fixed-horizon p-value ({res['p_value']:.3g}) is not valid yet; the decision uses the sequential CI"
        )
        seq = res["sequential"]
        if seq["excludes_zero"]:
            good = res["difference"] > 0
            out.update(
                decision="winner" if good else "stopped_for_harm",
                winner="treatment" if good else None,
            )
        else:
            out.update(decision="keep_running")
    elif res["p_value"] < alpha:
        good = res["difference"] > 0
        out.update(
            decision="winner" if good else "stopped_for_harm", winner="treatment" if good else None
        )
    else:
        out.update(decision="no_significant_difference")
    out["message"] = _message(out, res, primary)
    return out


def _compare(y_c, y_t, binary, x_c, x_t, alpha, planned) -> dict[str, Any]:  # noqa: ANN001
    if x_c is not None:
        adj, theta, reduction = stats.cuped(np.concatenate([y_c, y_t]), np.concatenate([x_c, x_t]))
        res = stats.welch(adj[: len(y_c)], adj[len(y_c) :], alpha)
        res["cuped"] = {"theta": theta, "variance_reduction": reduction}
    elif binary:
        res = stats.two_proportions(int(y_c.sum()), len(y_c), int(y_t.sum()), len(y_t), alpha)
    else:
        res = stats.welch(y_c, y_t, alpha)
    n_now = min(len(y_c), len(y_t))
    tau2 = res["se"] ** 2 * n_now / max(planned, n_now)  # the estimate's variance at the horizon
    res["sequential"] = stats.sequential_ci(res["difference"], res["se"], alpha, max(tau2, 1e-12))
    return res


def _message(out: dict[str, Any], res: dict[str, Any], primary: str) -> str:
    lo, hi = res["ci"]
    base = f"{primary}: control {res['control']:.4g}, treatment {res['treatment']:.4g}, difference {res['difference']:+.4g} (CI {lo:+.4g} to {hi:+.4g}, p = {res['p_value']:.3g})"
    return {
        "winner": f"treatment wins. {base}",
        "stopped_for_harm": f"stopped for harm: the treatment is worse. {base}",
        "keep_running": f"keep running: no conclusion yet at any look. {base}",
        "no_significant_difference": f"no significant difference. {base}",
    }.get(out["decision"], base)
