"""Design review records: what an Architect found about a model version.

A record is canonical JSON with a SHA-256 digest. It is stored as a run artifact under
``design_reviews/`` (outside the model directory, so the model's manifest digest does not
change) and listed on the version by the reserved tags ``design_review`` (the latest:
recommendation + digest) and ``design_review_log`` (every digest, oldest first). Only records
whose digest the version's log names are shown: a run artifact alone is not a review.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

RECOMMENDATIONS = ("approve", "changes-requested", "reject")
ARTIFACT_DIR = "design_reviews"
TAG_LATEST = "design_review"
TAG_LOG = "design_review_log"


def build_record(
    *,
    name: str,
    version: str,
    artifact_sha256: str,
    reviewer: str,
    recommendation: str,
    summary: str,
    findings: list[str],
    risks: list[str],
) -> dict[str, Any]:
    if recommendation not in RECOMMENDATIONS:
        raise ValueError(f"recommendation must be one of {', '.join(RECOMMENDATIONS)}")
    return {
        "model": name,
        "version": str(version),
        "artifact_sha256": artifact_sha256,
        "reviewer": reviewer,
        "recommendation": recommendation,
        "summary": summary,
        "findings": list(findings),
        "risks": list(risks),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()[:16]


def markdown(record: dict[str, Any]) -> str:
    lines = [
        f"# Design review: {record['model']} v{record['version']}",
        "",
        f"- Reviewer: {record['reviewer']}",
        f"- Recommendation: **{record['recommendation']}**",
        f"- Recorded: {record['recorded_at']}",
        f"- Artifact: `{record['artifact_sha256']}`",
        "",
        "## Summary",
        "",
        record["summary"],
        "",
        "## Findings",
        "",
        *([f"- {f}" for f in record["findings"]] or ["- (none)"]),
        "",
        "## Risks",
        "",
        *([f"- {r}" for r in record["risks"]] or ["- (none)"]),
    ]
    return "\n".join(lines) + "\n"


def log_digests(tags: dict[str, str]) -> list[str]:
    return [d for d in (tags.get(TAG_LOG) or "").split() if d]
