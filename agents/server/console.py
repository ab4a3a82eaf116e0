"""The approval console: server-rendered pages (Jinja2; one same-origin script, which
follows a decision's execution live) over the same operations as the REST API. Sign-in with a personal token gives a session cookie (HttpOnly,
SameSite=Strict, Secure over https); every form carries the session's CSRF token, and a
decision form carries the evidence hash it was rendered with, so an approver approves exactly
what they saw, through the CLI's decision path.
"""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from agents.server.auth import Principal, seconds_left
from agents.server.guards import ConsoleSession, same_secret
from agents.server.plane import AUDIT_READ, ControlPlane
from agents.server.responses import ApiError
from agents.server.views import approval_view

router = APIRouter(prefix="/console", include_in_schema=False)
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "modelops_session"
LOGIN_COOKIE = "modelops_login"
_PLOT = re.compile(r"^[a-z0-9_]{1,64}\.png$")
_APPROVAL = re.compile(r"^apr-[0-9a-f]{8}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_FORM_BYTES = 16_000
DECISION_ACTIONS = ("approvals.approve", "approvals.reject")  # other deciders' refusals
SECURITY_HEADERS = {
    # Scripts only from our own static files (no inline script, no eval); fetch only to us.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "script-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_env = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def mount_static(app: Any) -> None:
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")


def _cp(request: Request) -> ControlPlane:
    return request.app.state.control_plane


def render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    html = _env.get_template(template).render(
        request_id=getattr(request.state, "request_id", ""), **ctx
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def error_page(request: Request, exc: ApiError) -> Response:
    """Console errors as pages; a missing or ended session goes to sign-in."""
    if exc.status == 401:
        target = request.url.path if request.method == "GET" else "/console/"
        resp = RedirectResponse(f"/console/login?next={quote(target)}", status_code=303)
        resp.delete_cookie(SESSION_COOKIE, path="/console")
        return resp
    session = _cp(request).sessions.get(request.cookies.get(SESSION_COOKIE))
    return render(
        request,
        "error.html",
        exc.status,
        error=exc,
        who=session.person if session else None,
        csrf=session.csrf if session else "",
    )


def _secure(request: Request) -> bool:
    configured = _cp(request).config.secure_cookies
    return configured if configured is not None else request.url.scheme == "https"


def _user(request: Request) -> tuple[Principal, ConsoleSession]:
    cp = _cp(request)
    session = cp.sessions.get(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise ApiError(401, "unauthenticated", "sign in first")
    try:
        p = cp.auth.session_principal(session.person, session.token_id)
        request.state.person = p.name  # for the access log line (never the cookie)
        return p, session
    except ApiError:
        cp.sessions.end(session.sid)
        raise


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "payload_too_large", "the form is too large")
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(422, "invalid_input", f"unreadable form: {exc}") from exc
    return {k: v[0] for k, v in parsed.items()}


def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise ApiError(403, "csrf_failed", "this form was posted from another site")


def _require_csrf(
    request: Request, form: dict[str, str], expected: str, who: Principal | None
) -> None:
    _check_origin(request)
    if same_secret(form.get("csrf"), expected):
        return
    cp = _cp(request)
    cp.metrics.auth_failures.labels("csrf").inc()
    if who is not None:
        cp.services.audit.append(
            who.actor,
            "console.form",
            "console:post",
            decision="denied",
            outcome="csrf_failed",
            detail={"path": request.url.path[:200]},
            reason="form posted without this session's CSRF token",
        )
    raise ApiError(
        403,
        "csrf_failed",
        "the form's CSRF token is missing or wrong; nothing was changed",
        "Reload the page and submit the form again.",
    )


# Sign-in -----------------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request, next: str = "/console/") -> Response:
    nonce = secrets.token_urlsafe(24)
    resp = render(request, "login.html", csrf=nonce, next=_safe_next(next), error=None, who=None)
    resp.set_cookie(
        LOGIN_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/console/login",
        max_age=1800,
    )
    return resp


def _safe_next(target: str) -> str:
    return (
        target
        if target.startswith("/console/") and "//" not in target and "\\" not in target
        else "/console/"
    )


@router.post("/login")
async def login(request: Request) -> Response:
    cp = _cp(request)
    form = await _form(request)
    _check_origin(request)
    if not same_secret(form.get("csrf"), request.cookies.get(LOGIN_COOKIE, "")):
        cp.metrics.auth_failures.labels("csrf").inc()
        raise ApiError(
            403,
            "csrf_failed",
            "the sign-in form's CSRF token is missing or wrong",
            "Reload the sign-in page and try again.",
        )
    try:
        p = await run_in_threadpool(cp.auth.token, form.get("token", "").strip(), "the token")
    except ApiError as exc:
        cp.metrics.auth_failures.labels("console").inc()
        nonce = secrets.token_urlsafe(24)
        resp = render(
            request,
            "login.html",
            exc.status,
            csrf=nonce,
            next=_safe_next(form.get("next", "")),
            error=exc.message,
            who=None,
        )
        resp.set_cookie(
            LOGIN_COOKIE,
            nonce,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path="/console/login",
            max_age=1800,
        )
        return resp
    session = cp.sessions.create(p.name, p.token_id, seconds_left(p.token_expires_at))
    resp = RedirectResponse(_safe_next(form.get("next", "/console/")), status_code=303)
    resp.set_cookie(
        SESSION_COOKIE,
        session.sid,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/console",
        max_age=int(session.expires - time.time()),
    )
    resp.delete_cookie(LOGIN_COOKIE, path="/console/login")
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    cp = _cp(request)
    session = cp.sessions.get(request.cookies.get(SESSION_COOKIE))
    form = await _form(request)
    if session is not None:
        _require_csrf(request, form, session.csrf, None)
        cp.sessions.end(session.sid)
    resp = RedirectResponse("/console/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/console")
    return resp


# Approvals ---------------------------------------------------------------------------------
def _view(cp: ControlPlane, p: Principal, approval_id: str) -> dict[str, Any]:
    a = cp.tool(p, "get_approval", {"approval_id": approval_id})["approval"]
    qa, qa_error = None, None
    eid = ((a.get("evidence") or {}).get("validation") or {}).get("evaluation_id")
    if eid:
        try:
            qa = cp.tool(p, "get_evaluation", {"evaluation_id": eid})
        except ApiError as exc:
            qa_error = exc.message
    policy = cp.services.policy
    deployment, failure = _after_decision(cp, p, a)
    return approval_view(
        a,
        approvers=policy.approvers(),
        require_human=policy.validation.require_human,
        policy_digest=cp.services.policy_digest,
        qa_evaluation=qa,
        qa_error=qa_error,
        refusals=refusals(cp, p, approval_id),
        deployment=deployment,
        failure=failure,
    )


def refusals(cp: ControlPlane, p: Principal, approval_id: str) -> dict[str, str | None]:
    """Why this person may not approve / reject the request now (None where they may),
    from ``ApprovalService.refusal``: the rule the decision itself applies, read-only (the
    caller has already read the request through ``get_approval``)."""
    svc = cp.services.approvals
    req = svc.get(approval_id)
    out: dict[str, str | None] = {}
    for key, approve in (("approve", True), ("reject", False)):
        exc = svc.refusal(req, p.actor, approve=approve)
        out[key] = None if exc is None else exc.message
    return out


def _after_decision(
    cp: ControlPlane, p: Principal, a: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The deployment record and the latest failure the audit holds for a decided request."""
    if a["status"] == "pending":
        return None, None
    deployment = None
    try:
        deployment = cp.tool(p, "get_deployment", {"name": a["model_name"]})
    except ApiError as exc:
        if exc.status not in (403, 404):
            raise
    failure = None
    if a["status"] == "approved" and any(
        cp.services.policy.authorize(p.actor, perm).allowed for perm in AUDIT_READ
    ):
        failure = next(
            (
                e
                for e in cp.services.audit.entries(approval_id=a["id"], limit=50)
                if e["outcome"] != "ok" and e["action"] not in DECISION_ACTIONS
            ),
            None,
        )
    return deployment, failure


@router.get("/")
def inbox(request: Request) -> Response:
    p, session = _user(request)
    cp = _cp(request)
    pending = cp.tool(p, "list_approvals", {"status": "pending"})["approvals"]
    views = [_view(cp, p, a["id"]) for a in pending]
    recent = cp.tool(p, "list_approvals", {})["approvals"][:20]
    return render(
        request,
        "inbox.html",
        who=p.name,
        csrf=session.csrf,
        views=views,
        recent=recent,
        idem=secrets.token_hex(12),
    )


@router.get("/approvals/{approval_id}")
def approval_page(request: Request, approval_id: str) -> Response:
    p, session = _user(request)
    if not _APPROVAL.match(approval_id):
        raise ApiError(404, "not_found", f"no approval request {approval_id!r}")
    view = _view(_cp(request), p, approval_id)
    return render(
        request, "approval.html", who=p.name, csrf=session.csrf, v=view, idem=secrets.token_hex(12)
    )


@router.post("/approvals/{approval_id}/decide")
async def decide(request: Request, approval_id: str) -> Response:
    p, session = await run_in_threadpool(_user, request)
    form = await _form(request)
    _require_csrf(request, form, session.csrf, p)
    if not _APPROVAL.match(approval_id):
        raise ApiError(404, "not_found", f"no approval request {approval_id!r}")
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise ApiError(422, "invalid_input", "decision must be approve or reject")
    reason = form.get("reason", "").strip()
    if decision == "reject" and not reason:
        raise ApiError(
            422, "invalid_input", "a rejection needs a reason", "Say why, for the audit log."
        )
    evidence_hash = form.get("evidence_hash", "")
    if not re.fullmatch(r"[0-9a-f]{64}", evidence_hash):
        raise ApiError(
            422,
            "invalid_input",
            "the form carries no valid evidence hash",
            "Open the request again and decide from its page.",
        )
    cp = _cp(request)
    payload = {
        "approval_id": approval_id,
        "approve": decision == "approve",
        "evidence_hash": evidence_hash,
        "reason": reason,
    }

    def act() -> dict[str, Any]:
        return cp.decide(
            p,
            approval_id,
            approve=decision == "approve",
            evidence_hash=evidence_hash,
            reason=reason,
        )

    from agents.server.guards import fingerprint

    status, body, replayed = await run_in_threadpool(
        cp.idempotency.run,
        p.name,
        form.get("idempotency_key") or None,
        fingerprint("decide", payload),
        act,
    )
    if status != 200:
        err = body["error"]
        raise ApiError(status, err["code"], err["message"], err.get("hint", ""))
    view = await run_in_threadpool(_view, cp, p, approval_id)
    return render(
        request,
        "decided.html",
        who=p.name,
        csrf=session.csrf,
        approval=view["a"],
        recorded=view["outcome"],
        audit_head=body.get("audit_head"),
        job=await run_in_threadpool(cp.execution, p, approval_id),
        decision=decision,
        replayed=replayed,
    )


@router.get("/approvals/{approval_id}/execution")
def execution(request: Request, approval_id: str) -> Response:
    """The decided page's live view (polled by static/decided.js): the job's steps as JSON."""
    from fastapi.responses import JSONResponse

    p, _ = _user(request)
    if not _APPROVAL.match(approval_id):
        raise ApiError(404, "not_found", f"no approval request {approval_id!r}")
    return JSONResponse(_cp(request).execution(p, approval_id), headers=SECURITY_HEADERS)


@router.get("/evaluations/{evaluation_id}/plots/{file}")
def plot(request: Request, evaluation_id: str, file: str) -> Response:
    p, _ = _user(request)
    if not re.fullmatch(r"[0-9a-f]{32}", evaluation_id) or not _PLOT.match(file):
        raise ApiError(404, "not_found", "no such plot")
    evaluation = _cp(request).tool(p, "get_evaluation", {"evaluation_id": evaluation_id})
    path = next((a for a in evaluation["artifacts"] if a.rsplit("/", 1)[-1] == file), None)
    if path is None or not Path(path).is_file():
        raise ApiError(404, "not_found", f"evaluation {evaluation_id} has no plot {file}")
    return FileResponse(
        path, media_type="image/png", headers={"Cache-Control": "private, max-age=300"}
    )


# Audit (models and deployments: console_fleet.py) ---------------------------------------
@router.get("/audit/{name}/{version}")
def trail_page(request: Request, name: str, version: str) -> Response:
    p, session = _user(request)
    if not _NAME.match(name) or not re.fullmatch(r"[0-9]{1,9}", version):
        raise ApiError(404, "not_found", "no such model version")
    trail = _cp(request).audit_trail(p, name, version)
    return render(request, "trail.html", who=p.name, csrf=session.csrf, t=trail)


root_router = APIRouter(include_in_schema=False)


@root_router.get("/")
def root() -> Response:
    return RedirectResponse("/console/", status_code=307)
