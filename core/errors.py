"""One shallow error hierarchy. Each error has a stable code, a message and a hint.

The CLI maps ``exit_code`` to the process exit status; the tool dispatcher turns these
errors into error results for the model. Anything that is not a ``ModelOpsError`` is a bug
and propagates.
"""

from __future__ import annotations


class ModelOpsError(Exception):
    code = "error"
    exit_code = 1
    default_hint = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class InvalidInput(ModelOpsError):
    code = "invalid_input"
    exit_code = 2


class PermissionDenied(ModelOpsError):
    code = "permission_denied"
    exit_code = 3
    default_hint = "See policies/roles.yaml for who may do what."


class GateFailed(ModelOpsError):
    code = "gate_failed"
    exit_code = 3


class ApprovalRequired(ModelOpsError):
    code = "approval_required"
    exit_code = 3
    default_hint = "Production changes need an approved promotion: see `agent approvals list`."


class NotFound(ModelOpsError):
    code = "not_found"
    exit_code = 4


class Conflict(ModelOpsError):
    code = "conflict"
    exit_code = 1


class ExternalServiceError(ModelOpsError):
    code = "external_service_error"
    exit_code = 1


ERROR_CLASSES: dict[str, type[ModelOpsError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        PermissionDenied,
        GateFailed,
        ApprovalRequired,
        NotFound,
        Conflict,
        ExternalServiceError,
    )
}
# Codes the dispatcher produces without an exception of its own.
ERROR_CLASSES["unknown_tool"] = InvalidInput


def error_from_code(code: str, message: str, hint: str = "") -> ModelOpsError:
    """Rebuild the exception for an error result (tool results carry codes, not exceptions)."""
    return ERROR_CLASSES.get(code, ModelOpsError)(message, hint=hint)


def exit_code_for(code: str) -> int:
    """The CLI exit status for an error code: 2 bad input, 3 denied, 4 not found, else 1."""
    return ERROR_CLASSES.get(code, ModelOpsError).exit_code
