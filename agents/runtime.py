"""Wires settings, services, the dispatcher and the promotion workflow together."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from core.settings import Settings
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


def build_runtime(settings: Settings) -> Runtime:
    services = Services(settings)
    rt = Runtime(settings, services, Dispatcher(services))
    services.promotion_runner = lambda actor, name, version, dataset, target: rt.promotion.start(
        actor, name, version, dataset, target
    )
    return rt
