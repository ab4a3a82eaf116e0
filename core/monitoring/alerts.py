"""Stored monitoring alerts (``agent monitor alerts``) and the optional signed webhook.

The webhook body is the alert as JSON; ``X-ModelOps-Signature: sha256=<hex>`` is the
HMAC-SHA256 of ``<timestamp>.<body>`` under the shared secret, and ``X-ModelOps-Timestamp``
carries the timestamp, so a receiver can reject forged and replayed deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.state import Base, ensure_tables, utcnow

SIGNATURE_HEADER = "X-ModelOps-Signature"
TIMESTAMP_HEADER = "X-ModelOps-Timestamp"


class AlertRow(Base):
    __tablename__ = "monitoring_alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128))
    environment: Mapped[str] = mapped_column("target", String(32))  # column keeps its first name
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(64))  # data_drift | latency_p99 | error_rate | ...
    severity: Mapped[str] = mapped_column(String(16))  # warning | critical
    message: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    window_seconds: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(32), default="alert")  # alert | rollback | ...
    evidence: Mapped[dict] = mapped_column(JSON)
    delivery: Mapped[str] = mapped_column(String(256), default="stored")
    created_at = mapped_column(DateTime(timezone=True), default=utcnow)


class AlertStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        ensure_tables(engine, AlertRow)

    def add(self, alert: dict[str, Any]) -> dict[str, Any]:
        with Session(self.engine) as s, s.begin():
            row = AlertRow(
                model_name=alert["model_name"],
                environment=alert.get("environment", "production"),
                version=alert.get("version"),
                kind=alert["kind"],
                severity=alert.get("severity", "warning"),
                message=alert["message"][:4000],
                value=alert.get("value"),
                threshold=alert.get("threshold"),
                window_seconds=float(alert.get("window_seconds", 0.0)),
                action=alert.get("action", "alert"),
                evidence=json.loads(json.dumps(alert.get("evidence", {}), default=str)),
                delivery=alert.get("delivery", "stored")[:256],
            )
            s.add(row)
            s.flush()
            return _as_dict(row)

    def set_delivery(self, alert_id: int, delivery: str) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(AlertRow, alert_id)
            if row is not None:
                row.delivery = delivery[:256]

    def list(
        self,
        model_name: str | None = None,
        *,
        limit: int = 50,
        kind: str | None = None,
        environment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Stored alerts, newest first (optionally of one environment and time window)."""
        q = select(AlertRow).order_by(AlertRow.id.desc()).limit(limit)
        if model_name:
            q = q.where(AlertRow.model_name == model_name)
        if kind:
            q = q.where(AlertRow.kind == kind)
        if environment:
            q = q.where(AlertRow.environment == environment)
        if since is not None:
            q = q.where(AlertRow.created_at >= since)
        if until is not None:
            q = q.where(AlertRow.created_at <= until)
        with Session(self.engine) as s:
            return [_as_dict(r) for r in s.scalars(q)]


def _as_dict(row: AlertRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "model_name": row.model_name,
        "environment": row.environment,
        "version": row.version,
        "kind": row.kind,
        "severity": row.severity,
        "message": row.message,
        "value": row.value,
        "threshold": row.threshold,
        "window_seconds": row.window_seconds,
        "action": row.action,
        "evidence": row.evidence,
        "delivery": row.delivery,
        "created_at": row.created_at.isoformat() if row.created_at else "",
    }


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return (
        "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )


def verify(
    secret: bytes, timestamp: str, body: bytes, signature: str, *, max_age: float = 300
) -> bool:
    """What a receiver checks: the signature, and that the delivery is recent."""
    try:
        fresh = abs(time.time() - float(timestamp)) <= max_age
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def deliver(url: str, secret: bytes | None, alert: dict[str, Any], *, timeout: float = 3.0) -> str:
    """POST the alert to ``url``, signed; returns how it went (stored on the alert)."""
    import httpx

    if not url:
        return "stored"
    if not secret:
        return "not sent: no webhook secret set (the policy's webhook.secret_env)"
    body = json.dumps(alert, default=str, sort_keys=True).encode()
    ts = f"{time.time():.3f}"
    headers = {
        "content-type": "application/json",
        TIMESTAMP_HEADER: ts,
        SIGNATURE_HEADER: sign(secret, ts, body),
    }
    try:
        r = httpx.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"webhook failed: {type(exc).__name__}"
    return f"webhook HTTP {r.status_code}"
