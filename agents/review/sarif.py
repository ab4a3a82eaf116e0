"""SARIF 2.1.0 for GitHub code scanning: one run, the rule catalog as ``tool.driver.rules``,
stable ``ruleId``s and ``partialFingerprints`` (so an alert keeps its identity across runs),
and the upload payload (gzip + base64) within GitHub's limits."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

from agents.review.findings import RULES, SEVERITY_RANK, Finding, fingerprints

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
TOOL_NAME = "modelops-review"
TOOL_VERSION = "1"
# GitHub code scanning's limits for one upload.
MAX_RESULTS_PER_RUN = 25_000
MAX_GZIP_BYTES = 10 * 1024 * 1024
_LEVEL = {"error": "error", "warning": "warning", "note": "note"}
_SECURITY = {"MO401", "MO501", "MO601", "MO201", "MO202"}


def _rule(rule_id: str) -> dict[str, Any]:
    r = RULES[rule_id]
    tags = ["modelops", "security" if rule_id in _SECURITY else "ml"]
    out: dict[str, Any] = {
        "id": r.id,
        "name": "".join(w.capitalize() for w in r.name.split("-")),
        "shortDescription": {"text": r.summary},
        "fullDescription": {"text": r.summary},
        "help": {"text": r.hint, "markdown": f"**Fix:** {r.hint}"},
        "defaultConfiguration": {"level": _LEVEL[r.severity]},
        "properties": {"tags": tags, "precision": "high"},
    }
    if rule_id in _SECURITY:
        out["properties"]["security-severity"] = "8.0" if r.severity == "error" else "5.0"
    return out


def build_sarif(findings: list[Finding], *, notes: list[str] | None = None) -> dict[str, Any]:
    """Deterministic findings only: LLM-written ones are not code-scanning alerts."""
    det = sorted(
        (f for f in findings if f.deterministic and f.rule in RULES),
        key=lambda f: (f.path, f.line, f.rule, f.message),
    )
    pairs = list(zip(det, fingerprints(det), strict=True))
    # Over the limit, keep the most severe results.
    pairs.sort(key=lambda p: (-SEVERITY_RANK[p[0].level], p[0].path, p[0].line, p[0].rule))
    truncated = max(0, len(pairs) - MAX_RESULTS_PER_RUN)
    pairs = pairs[:MAX_RESULTS_PER_RUN]
    rule_ids = sorted(RULES)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    results = []
    for f, fp in pairs:
        results.append(
            {
                "ruleId": f.rule,
                "ruleIndex": index[f.rule],
                "level": _LEVEL[f.level],
                "message": {"text": f"{f.message}. Fix: {f.hint}"},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                            "region": {"startLine": max(1, f.line)},
                        }
                    }
                ],
                "partialFingerprints": {
                    "primaryLocationLineHash": f"{fp[:16]}:1",
                    "modelopsFinding/v1": fp,
                },
            }
        )
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": TOOL_NAME,
                "version": TOOL_VERSION,
                "rules": [_rule(rid) for rid in rule_ids],
            }
        },
        "automationDetails": {"id": f"{TOOL_NAME}/"},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    props: dict[str, Any] = {}
    if truncated:
        props["truncatedResults"] = truncated
    if notes:
        props["notes"] = notes[:50]
    if props:
        run["properties"] = props
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def dumps(sarif: dict[str, Any]) -> str:
    return json.dumps(sarif, indent=2, sort_keys=False)


def upload_payload(sarif: dict[str, Any]) -> str:
    """gzip + base64 of the SARIF, dropping the lowest-severity results until it fits
    GitHub's 10 MB (gzipped) limit."""
    data = dict(sarif)
    run = dict(data["runs"][0])
    results = list(run["results"])
    while True:
        run["results"] = results
        data["runs"] = [run]
        raw = gzip.compress(json.dumps(data, separators=(",", ":")).encode(), mtime=0)
        if len(raw) <= MAX_GZIP_BYTES or not results:
            return base64.b64encode(raw).decode()
        dropped = max(1, len(results) // 10)
        results = results[:-dropped]
        props = dict(run.get("properties") or {})
        props["truncatedResults"] = int(props.get("truncatedResults", 0)) + dropped
        run["properties"] = props
