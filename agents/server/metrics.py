"""Prometheus metrics of the control plane: requests, latency, tool calls by outcome,
approvals by state (read from the state DB at scrape time), auth failures and rate limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from tools.context import Services

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ApprovalStates:
    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Any:
        from sqlalchemy import func, select

        from policies.approvals import ApprovalRow, ApprovalStatus

        family = GaugeMetricFamily(
            "modelops_approvals", "Approval requests by state.", labels=["state"]
        )
        self.services.approvals  # noqa: B018  (creates the table on a fresh home)
        query = select(ApprovalRow.status, func.count()).group_by(ApprovalRow.status)
        with self.services.engine.connect() as conn:
            counts = dict(conn.execute(query).all())
        for state in ApprovalStatus:
            family.add_metric([state.value], counts.get(state.value, 0))
        yield family


class ServerMetrics:
    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "modelops_api_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelops_api_request_duration_seconds",
            "Request latency by method and route.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.tool_calls = Counter(
            "modelops_api_tool_calls",
            "Tool calls made for API callers, by tool and outcome (ok or the error code).",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "modelops_api_auth_failures",
            "Refused credentials (401) and CSRF failures.",
            ["reason"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "modelops_api_rate_limited",
            "Chat requests refused by the per-token rate limit.",
            registry=self.registry,
        )
        self.registry.register(_ApprovalStates(services))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
