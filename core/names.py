"""One rule for the names that end up in paths, URLs and registry keys, and one rule for the
tag names that only our own code may write.

Model names, dataset names, deployment targets and profile names all follow ``NAME_PATTERN``:
a letter or digit first (so never ``.``, ``..`` or a leading ``-``), then letters, digits,
``.``, ``_`` or ``-``, at most 128 characters. No ``/``, ``@`` or whitespace, so a name is
always one path component and ``NAME@TARGET`` is unambiguous.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from core.errors import InvalidInput
from core.honesty import CLAIMED_METRICS_TAG, HONESTY_FIELDS, VERSION_LABEL_TAG
from core.tasks import LABEL_COLUMN_TAG, TASK_TAG

NAME_MAX_LENGTH = 128
# Without anchors, so other patterns (``NAME@alias``, ``NAME/3``) can embed it.
NAME_PATTERN = rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_MAX_LENGTH - 1}}}"
_NAME_RE = re.compile(NAME_PATTERN)
NameKind = Literal["model", "dataset", "environment", "profile"]
_KIND_LABEL = {
    "model": "model name",
    "dataset": "dataset name",
    "environment": "deployment environment",
    "profile": "profile name",
}
NAME_HINT = (
    "Use letters, digits, '.', '_' or '-', starting with a letter or digit "
    f"(at most {NAME_MAX_LENGTH} characters)."
)


def is_valid_name(value: object) -> bool:
    # fullmatch, not match + '$': '$' also matches before a trailing newline.
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None


def validate_name(kind: NameKind, value: str) -> str:
    """``value`` if it is a valid ``kind`` name, else InvalidInput (before any path is built)."""
    if not is_valid_name(value):
        shown = value if len(str(value)) <= 80 else f"{str(value)[:80]}…"
        raise InvalidInput(f"invalid {_KIND_LABEL[kind]} {shown!r}", hint=NAME_HINT)
    return value


def _after(kind: NameKind) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not is_valid_name(value):
            # pydantic turns ValueError (not our errors) into a ValidationError.
            raise ValueError(f"invalid {_KIND_LABEL[kind]}: {NAME_HINT}")
        return value

    return check


def _field(description: str) -> Any:
    return Field(
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        description=description,
        # In the JSON Schema the LLM sees; enforced by the validator (with its hint).
        json_schema_extra={"pattern": f"^{NAME_PATTERN}$"},
    )


# Field types for tool input models: ``name: ModelName`` (or ``ModelName | None = None``).
ModelName = Annotated[str, _field("Registered model name."), AfterValidator(_after("model"))]
DatasetName = Annotated[str, _field("Dataset name."), AfterValidator(_after("dataset"))]


# Reserved tag names ---------------------------------------------------------------------
# Facts that gate production (verdicts, approvals, deployments, digests) are written by our
# own code; a run's tags are caller-supplied data and must never arrive looking like them.
RESERVED_TAG_PREFIXES = (
    "validation_",
    "validated_",
    "approved_",
    "approval_",
    "deployed_",
    "champion",
    "promoted_",
    "evidence_",
    "design_review",  # design reviews: written by record_design_review only
)
# Honesty keys are reserved too: they come from the ``honesty`` argument of registration.
# So are the registrant's semantic version (checked unique per model) and claimed metrics,
# the version's task (core.tasks: written by our evaluation, it picks the gates) and its
# label column (written by our registration code from the data or the tracker's run).
RESERVED_TAG_KEYS = frozenset(
    {
        "artifact_sha256",
        *HONESTY_FIELDS,
        CLAIMED_METRICS_TAG,
        VERSION_LABEL_TAG,
        TASK_TAG,
        LABEL_COLUMN_TAG,
    }
)


def is_reserved_tag(key: str) -> bool:
    """True for tag names only our own code writes (compared case-insensitively)."""
    k = key.strip().lower()
    return k in RESERVED_TAG_KEYS or k.startswith(RESERVED_TAG_PREFIXES)


def split_reserved_tags(tags: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(tags without the reserved names, the sorted reserved names that were dropped)."""
    kept = {k: v for k, v in tags.items() if not is_reserved_tag(k)}
    return kept, sorted(k for k in tags if k not in kept)
