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
from dataclasses import dataclass
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


# Model references ----------------------------------------------------------------------
# Semantic Versioning 2.0.0 (major.minor.patch, optional -prerelease and +build): the
# registrant's version label, stored by our registration as the ``version_label`` tag.
SEMVER_PATTERN = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)
_SEMVER_RE = re.compile(SEMVER_PATTERN)
ALIAS_NAMES = ("champion", "challenger")
# Where a version is asked for: a registry number, an alias or a semantic version label.
VERSION_REF_PATTERN = rf"^([0-9]{{1,9}}|champion|challenger|v?{SEMVER_PATTERN[1:-1]})$"
# Where a concrete version is asked for (no alias): a number or a version label.
VERSION_OR_LABEL_PATTERN = rf"^([0-9]{{1,9}}|v?{SEMVER_PATTERN[1:-1]})$"
MODEL_REF_HINT = (
    "Use NAME/VERSION (e.g. churn-classifier/1), NAME@champion, NAME@challenger or "
    "NAME@2.1.0 (a version label); `agent models list` shows the names."
)
# Seed-style ids: ``churn-classifier-v1`` means version 1, ``churn-classifier-prod`` the
# version production serves. Refused with the exact form, never guessed: a model may really
# be named ``x-v1``.
_SEED_VERSION = re.compile(rf"(?P<name>{NAME_PATTERN}?)-v(?P<n>[0-9]{{1,9}})")
_SEED_PROD = re.compile(rf"(?P<name>{NAME_PATTERN}?)-(prod|production|champion|live)")


def is_version_label(value: str) -> bool:
    return len(value) <= 64 and _SEMVER_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class ModelRef:
    """One model reference: a name and at most one of version number, alias or label."""

    name: str
    version: str | None = None  # the registry's integer version, as text
    alias: str | None = None  # champion | challenger
    label: str | None = None  # a semantic version label, resolved by the registry

    @property
    def selector(self) -> str | None:
        """What the registry's ``get(name, ...)`` takes (it resolves labels)."""
        return self.version or self.alias or self.label


def seed_style_ref(text: str) -> str | None:
    """The ``NAME/N`` or ``NAME@champion`` form of a seed-style id, else None."""
    if m := _SEED_VERSION.fullmatch(text):
        return f"{m['name']}/{int(m['n'])}"
    if m := _SEED_PROD.fullmatch(text):
        return f"{m['name']}@champion"
    return None


def seed_style_error(text: str, field: str = "model_id") -> InvalidInput:
    """The refusal for a seed-style id: it names the exact form to write instead."""
    fixed = seed_style_ref(text)
    name = fixed.split("/")[0].split("@")[0] if fixed else text
    return InvalidInput(
        f"{field} {text!r} is not a model reference: write {fixed!r}",
        hint=f"Versions are NAME/N or NAME@champion (or NAME@2.1.0 for a version label); "
        f"`agent models show {name}` lists the versions.",
    )


def parse_version_ref(name: str, version: str) -> ModelRef:
    """``version`` (number, alias or semantic version label) of model ``name``."""
    validate_name("model", name)
    version = version.strip()
    if version.isdigit() and len(version) <= 9:
        return ModelRef(name, version=str(int(version)))
    if version in ALIAS_NAMES:
        return ModelRef(name, alias=version)
    if version.lstrip("vV") != version and is_version_label(version[1:]):
        return ModelRef(name, label=version[1:])  # "v2.1.0" is how tags often spell it
    if is_version_label(version):
        return ModelRef(name, label=version)
    raise InvalidInput(
        f"invalid version {version[:70]!r} for {name}",
        hint="Give a version number, champion, challenger or a version label like 2.1.0; "
        f"`agent models show {name}` lists them.",
    )


def parse_model_ref(text: str, *, bare: bool = False, field: str = "model_id") -> ModelRef:
    """``NAME/N``, ``NAME@champion``, ``NAME@challenger``, ``NAME@2.1.0`` or ``NAME/2.1.0``
    (and a bare ``NAME`` when ``bare``) -> ModelRef. A seed-style id (``NAME-v1``,
    ``NAME-prod``) is refused with its exact ``NAME/1`` / ``NAME@champion`` form."""
    if not isinstance(text, str) or not text.strip() or len(text) > 2 * NAME_MAX_LENGTH:
        raise InvalidInput(f"invalid {field} {str(text)[:80]!r}", hint=MODEL_REF_HINT)
    text = text.strip()
    for sep in ("/", "@"):
        if sep in text:
            name, _, version = text.partition(sep)
            if not is_valid_name(name):
                raise InvalidInput(f"invalid {field} {text[:80]!r}", hint=MODEL_REF_HINT)
            if sep == "@" and version.isdigit():
                raise InvalidInput(
                    f"{field} {text!r}: a version number goes after '/': write '{name}/{version}'",
                    hint=MODEL_REF_HINT,
                )
            if sep == "@" and version.lower() in ("prod", "production", "live"):
                raise InvalidInput(
                    f"{field} {text!r}: production's version is the champion: write "
                    f"'{name}@champion'",
                    hint=MODEL_REF_HINT,
                )
            try:
                return parse_version_ref(name, version)
            except InvalidInput as exc:
                raise InvalidInput(f"{field} {text[:80]!r}: {exc.message}", hint=exc.hint) from exc
    if bare and is_valid_name(text):
        return ModelRef(text)
    if seed_style_ref(text):
        raise seed_style_error(text, field)
    raise InvalidInput(f"invalid {field} {text[:80]!r}: it names no version", hint=MODEL_REF_HINT)


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
