"""Errors on the wire: one JSON envelope, an HTTP status per error code, OpenAPI models."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from pydantic import BaseModel

from core.errors import ModelOpsError

# The id of the request being served (set by the app's edge layer): an error envelope built
# anywhere while serving it (a worker thread included) names it.
REQUEST_ID: ContextVar[str | None] = ContextVar("modelops_request_id", default=None)

# The HTTP status for each error code (tool results and ModelOpsError carry codes).
STATUS_FOR_CODE: dict[str, int] = {
    "unauthenticated": 401,
    "permission_denied": 403,
    "csrf_failed": 403,
    "not_found": 404,
    "unknown_tool": 404,
    "conflict": 409,
    "gate_failed": 409,
    "approval_required": 409,
    "dry_run": 409,
    "payload_too_large": 413,
    "invalid_input": 422,
    "rate_limited": 429,
    "external_service_error": 502,
    "llm_not_configured": 502,
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    hint: str = ""
    # OpenAI's error envelope carries these; chat clients read ``message``.
    type: str = "modelops_error"
    param: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail
    request_id: str | None = None


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _doc("Missing, unknown, expired or revoked personal token."),
    403: _doc("The token's person may not do this (the refusal is audited)."),
    413: _doc("The request body is larger than the server accepts."),
}
READ_ERRORS = {**AUTH_ERRORS, 404: _doc("No such object.")}
WRITE_ERRORS = {
    **READ_ERRORS,
    409: _doc("The object's state forbids it (decided, expired, gate failed, …)."),
    422: _doc("Invalid input (schema, evidence hash, Idempotency-Key reuse)."),
}


class ApiError(Exception):
    """An error response: status, code, message and hint (and extra headers)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        hint: str = "",
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint
        self.headers = headers or {}

    @classmethod
    def from_error(cls, exc: ModelOpsError) -> ApiError:
        return cls(status_for(exc.code), exc.code, exc.message, exc.hint)

    @classmethod
    def from_result(cls, error: Any) -> ApiError:
        return cls(status_for(error.code), error.code, error.message, error.hint or "")

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "hint": self.hint,
                "type": _OPENAI_TYPES.get(self.status, "modelops_error"),
                "param": None,
            },
            "request_id": request_id or REQUEST_ID.get(),
        }


_OPENAI_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def status_for(code: str) -> int:
    # An error code we do not map is a ModelOpsError we did not expect here: a server fault.
    return STATUS_FOR_CODE.get(code, 500)


def unauthenticated(message: str, hint: str = "") -> ApiError:
    return ApiError(
        401,
        "unauthenticated",
        message,
        hint,
        headers={"WWW-Authenticate": 'Bearer realm="modelops"'},
    )
