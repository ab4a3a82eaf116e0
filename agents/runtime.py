"""Wires settings, services, the dispatcher and the promotion workflow together."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from core.settings import Settings
from policies.approvals import PROMOTE
from policies.rbac import Actor
from tools.context import Services
from tools.dispatcher import Dispatcher

if TYPE_CHECKING:
    from agents.promotion import PromotionWorkflow


@dataclass
class Runtime:
    settings: Settings
    services: Services
    dispatcher: Dispatcher

    @cached_property
    def promotion(self) -> PromotionWorkflow:
        from agents.promotion import PromotionWorkflow

        return PromotionWorkflow(self.services, self.dispatcher, self.settings.resolved_graphs_db)

    def run_decided(self, approval_id: str, decider: Actor) -> dict[str, Any]:
        """What follows a person's approval: a promotion's workflow continues to its executor;
        an approved rollback request runs under the approval-executor principal for them."""
        req = self.services.approvals.get(approval_id)
        if req.action == PROMOTE:
            return self.promotion.resume(approval_id, decider, after_decision=True)
        if req.status.value != "approved":
            return {"status": req.status.value, "message": f"{approval_id} is {req.status.value}"}
        executor = self.services.policy.workflow("approval-executor", decider)
        out = self.dispatcher.call_or_raise(
            executor,
            "rollback_deployment",
            {
                "name": req.model_name,
                "to_version": req.version,
                "approval_id": req.id,
                "reason": f"approved rollback {req.id}",
            },
        )
        return {
            "status": "rolled_back",
            "message": f"production of {req.model_name} now serves "
            + ", ".join(f"v{v}" for v in out["live_versions"]),
            "execution": out,
            "log": [f"{executor.describe()}: rolled back to v{req.version}"],
        }


def build_runtime(settings: Settings) -> Runtime:
    services = Services(settings)
    rt = Runtime(settings, services, Dispatcher(services))
    services.promotion_runner = lambda actor, name, version, dataset, label_column, plan=None: (
        rt.promotion.start(actor, name, version, dataset, label_column, plan)
    )
    return rt
