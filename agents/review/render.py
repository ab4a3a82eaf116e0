"""Markdown for people (the terminal, a PR review body, inline comments) and the hidden
markers that let a re-run find its own review and comments."""

from __future__ import annotations

import re
from collections.abc import Iterable

from agents.review.engine import ReviewResult
from agents.review.findings import RULES, Finding

REVIEW_MARKER = "<!-- modelops-review:v1 -->"
FOLLOWUP_MARKER = "<!-- modelops-review:v1:followup -->"
_FINDING_MARKER = "<!-- modelops-finding:{fp} -->"
FINDING_MARKER_RE = re.compile(r"<!-- modelops-finding:([0-9a-f]{32}) -->")
_ICON = {"error": "🛑", "warning": "⚠️", "note": "ℹ️"}


def untrusted(text: str, limit: int = 2000) -> str:
    """Text that came from a diff or an LLM, made inert in Markdown: no HTML comments (our
    markers), no raw HTML tags, no @-mentions that ping people."""
    text = text.replace("<!--", "&lt;!--").replace("-->", "--&gt;")
    text = re.sub(r"<(/?[A-Za-z][^>]*)>", r"&lt;\1&gt;", text)
    text = re.sub(r"(?<![\w`])@(?=[A-Za-z0-9-])", "@\u200b", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str) -> str:
    return untrusted(text, 600).replace("|", "\\|").replace("\n", " ")


def finding_marker(fp: str) -> str:
    return _FINDING_MARKER.format(fp=fp)


def summary_line(result: ReviewResult) -> str:
    c = result.counts()
    n = len(result.files)
    if not result.findings:
        return f"No findings in {n} changed file{'s' * (n != 1)} (deterministic checks)."
    parts = [f"{c[k]} {k}{'s' * (c[k] != 1)}" for k in ("error", "warning", "note") if c[k]]
    return f"**{', '.join(parts)}** in {n} changed file{'s' * (n != 1)} (deterministic checks)."


def findings_table(findings: Iterable[Finding]) -> list[str]:
    rows = ["| severity | rule | where | finding |", "|---|---|---|---|"]
    for f in findings:
        where = f"`{f.path}:{f.line}`" if f.line else f"`{f.path}`"
        rows.append(
            f"| {_ICON[f.level]} {f.level} | `{f.rule}` {f.rule_name} | {where} | {_cell(f.message)} |"
        )
    return rows


def registry_line(result: ReviewResult) -> str:
    reg = result.registry
    status = reg.get("status")
    if status == "checked":
        refs = reg.get("references") or []
        shown = ", ".join(f"`{r}`" for r in refs[:10]) or "none in the diff"
        return f"Registry: looked up as {reg['actor']} with read-only tools; references: {shown}."
    if status == "refused":
        return f"Registry: lookups refused for {reg.get('actor')}: {reg.get('message')}."
    return f"Registry: not consulted: {reg.get('message', 'not requested')}."


def llm_section(result: ReviewResult) -> list[str]:
    llm = result.llm
    if llm.get("status") != "done":
        return [f"LLM reviews: {llm.get('message', '')}"]
    out = []
    for rv in llm.get("reviews", []):
        out += [
            "",
            f"### {rv['title']} — LLM-written ({rv['model']})",
            "",
            untrusted(rv["summary"], 4000),
        ]
        mine = [f for f in result.llm_findings if f.source == rv["source"]]
        if mine:
            out += [""] + findings_table(mine)
    out += [
        "",
        "_LLM-written reviews are advice: they do not change the deterministic findings "
        "above, the SARIF, or the exit status._",
    ]
    return out


def hints(findings: Iterable[Finding]) -> list[str]:
    rules = sorted({f.rule for f in findings if f.rule in RULES})
    return [f"- `{r}` {RULES[r].name}: {RULES[r].hint}" for r in rules]


def markdown(result: ReviewResult, *, extra: list[str] | None = None) -> str:
    lines = ["## ModelOps review", "", summary_line(result)]
    if result.findings:
        lines += [""] + findings_table(result.findings)
        lines += ["", "<details><summary>How to fix</summary>", ""] + hints(result.findings)
        lines += ["", "</details>"]
    lines += ["", registry_line(result)]
    lines += llm_section(result)
    if extra:
        lines += [""] + extra
    if result.notes:
        lines += ["", "Notes:"] + [f"- {untrusted(n, 500)}" for n in result.notes[:30]]
    return "\n".join(lines) + "\n"


def comment_body(f: Finding, fp: str) -> str:
    if f.deterministic:
        head = f"{_ICON[f.level]} **`{f.rule}` {f.rule_name}** ({f.level})"
        body = f"{head}\n\n{untrusted(f.message)}\n\n**Fix:** {f.hint}"
    else:
        who = f.source.split(":", 1)[-1]
        body = (
            f"🤖 **LLM-written ({who})** ({f.level})\n\n{untrusted(f.message)}\n\n"
            "_Advice from an LLM reviewer; the deterministic checks decide._"
        )
    return f"{body}\n\n{finding_marker(fp)}"
