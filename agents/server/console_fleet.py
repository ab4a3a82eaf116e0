"""The console's models and deployments pages: per live version its traffic share, gateway
health, error rate and p99 latency (``get_deployment``'s ``serving``, the same numbers as
`agent deploy status --json`), the approval behind every revision, and per model version its
labels (aliases), the evaluator's measured metrics beside the registrant's claims."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from agents.server.console import _NAME, _cp, _user, render
from agents.server.console_monitoring import ms, num, pct
from agents.server.plane import ControlPlane
from agents.server.responses import ApiError

router = APIRouter(prefix="/console", include_in_schema=False)
ENVIRONMENTS = ("production", "staging")
HEADLINE = ("accuracy", "precision", "recall", "f1", "auc_roc")


def serving_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``serving`` block of get_deployment, formatted for reading."""
    rows = []
    for s in d.get("serving") or []:
        h = s.get("health")
        if h is None:
            health, css = "gateway not running", "bad"
        elif not h.get("loaded"):
            health, css = f"gateway {h.get('gateway_status')}, version not loaded", "bad"
        else:
            ok = h.get("gateway_status") == "ok" and h.get("honesty_compliant")
            health = f"gateway {h.get('gateway_status')}; honesty compliant: {h.get('honesty_compliant')}"
            css = "ok" if ok else "warn"
        rows.append(
            {
                "version": s["version"],
                "weight": f"{s['weight']:g} %",
                "health": health,
                "health_css": css,
                "requests": s["requests"],
                "error_rate": pct(s.get("error_rate")),
                "p99": ms(s.get("p99_ms")),
                "refused": s.get("refused_at_edge", 0),
                "window": num(s.get("window_minutes")),
            }
        )
    return rows


def _deployment(cp: ControlPlane, p: Any, name: str, environment: str) -> dict[str, Any]:
    d = cp.tool(p, "get_deployment", {"name": name, "environment": environment})
    d["serving_rows"] = serving_rows(d)
    return d


@router.get("/models")
def models_page(request: Request) -> Response:
    p, session = _user(request)
    models = _cp(request).tool(p, "list_models")["models"]
    return render(request, "models.html", who=p.name, csrf=session.csrf, models=models)


def version_rows(
    versions: list[dict[str, Any]], evaluations: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each version with its aliases, claimed metrics (registration) and the evaluator's
    latest measured metrics, side by side per metric."""
    latest: dict[str, dict[str, Any]] = {}
    for e in evaluations:  # newest first
        latest.setdefault(str(e.get("version")), e)
    rows = []
    for v in versions:
        claimed = v.get("claimed_metrics") or {}
        ev = latest.get(str(v["version"]))
        measured = (ev or {}).get("metrics") or {}
        names = [m for m in HEADLINE if m in claimed or m in measured]
        names += sorted(k for k in claimed if k not in names)
        rows.append(
            {
                **v,
                "evaluation": ev,
                "comparison": [
                    {
                        "metric": m,
                        "claimed": num(claimed.get(m)),
                        "measured": num(measured.get(m)),
                        "difference": num(measured[m] - claimed[m], 3)
                        if m in claimed and m in measured
                        else "–",
                    }
                    for m in names
                ],
            }
        )
    return rows


@router.get("/models/{name}")
def model_page(request: Request, name: str) -> Response:
    p, session = _user(request)
    if not _NAME.match(name):
        raise ApiError(404, "not_found", "no such model")
    cp = _cp(request)
    model = cp.tool(p, "get_model", {"name": name})
    try:
        evaluations = cp.tool(p, "list_evaluations", {"name": name, "limit": 200})["evaluations"]
        evaluations_error = None
    except ApiError as exc:
        if exc.status >= 500:
            raise
        evaluations, evaluations_error = [], exc.message
    return render(
        request,
        "model.html",
        who=p.name,
        csrf=session.csrf,
        model=model,
        versions=version_rows(model["versions"], evaluations),
        evaluations_error=evaluations_error,
        history=cp.alias_history(p, name),
    )


@router.get("/deployments")
def deployments_page(request: Request) -> Response:
    p, session = _user(request)
    cp = _cp(request)
    rows = []
    for environment in ENVIRONMENTS:
        for name in cp.tool(p, "list_deployments", {"environment": environment})["deployments"]:
            rows.append(_deployment(cp, p, name, environment))
    return render(request, "deployments.html", who=p.name, csrf=session.csrf, deployments=rows)


@router.get("/deployments/{name}")
def deployment_page(request: Request, name: str, environment: str = "production") -> Response:
    p, session = _user(request)
    if not _NAME.match(name) or environment not in ENVIRONMENTS:
        raise ApiError(404, "not_found", "no such deployment")
    d = _deployment(_cp(request), p, name, environment)
    return render(request, "deployment.html", who=p.name, csrf=session.csrf, d=d)
