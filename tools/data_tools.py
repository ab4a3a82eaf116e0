"""Dataset tools: validate a fine-tuning or tabular file, sanitize it into a new file, split it
with a seed. Paths are confined to the working directory and MODELOPS_HOME; nothing is
written until the input has been read and checked, and no existing file is overwritten."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.errors import InvalidInput
from tools.base import ToolInput, tool
from tools.context import CallContext, Services

PathField = Field(min_length=1, max_length=1024, description="A .jsonl, .csv or .parquet file.")


def resolve_output_file(services: Services, raw: str, *, source: Path, force: bool = False) -> Path:
    """A new file inside the working directory or MODELOPS_HOME (not the input, not a folder
    the system manages); an existing file only with ``force``."""
    from core.datasets.io import file_format

    if not raw or "\0" in raw or len(raw) > 1024:
        raise InvalidInput("empty or invalid output path")
    path = Path(raw).expanduser()
    resolved = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not any(resolved.is_relative_to(r) for r in services.allowed_roots()):
        raise InvalidInput(
            f"output {raw!r} is outside the allowed directories",
            hint="Write under the working directory or MODELOPS_HOME.",
        )
    home = services.settings.home_dir
    if any(resolved.is_relative_to(home / m) for m in ("artifacts", "gateways", "chroma")):
        raise InvalidInput(f"output {raw!r} is inside a folder the system manages")
    if resolved == source:
        raise InvalidInput("the output would overwrite the input", hint="Choose a new file name.")
    file_format(resolved)
    if resolved.exists() and (not resolved.is_file() or not force):
        raise InvalidInput(f"output {raw!r} already exists", hint="Choose a new file, or --force.")
    if not resolved.parent.is_dir():
        raise InvalidInput(f"the folder of {raw!r} does not exist")
    return resolved


def _load(services: Services, raw: str) -> Any:
    from core.datasets import Dataset

    return Dataset.load(services.resolve_data_path(raw))


class ValidateDatasetInput(ToolInput):
    dataset: str = PathField
    format: Literal["auto", "chat", "prompt_completion", "tabular"] = "auto"
    max_errors: int = Field(default=50, ge=1, le=1000)
    max_length: int | None = Field(default=None, ge=1, description="Flag rows longer than this.")


class ValidateDatasetOutput(BaseModel):
    ok: bool
    report: dict[str, Any]


@tool(permission="data:read", side_effect="read")
def validate_dataset(call: CallContext, args: ValidateDatasetInput) -> ValidateDatasetOutput:
    """Validate a dataset file (chat or prompt/completion JSONL, CSV, Parquet): every bad line with its line number and field, lengths in tokens or characters, content digest."""
    ds = _load(call.services, args.dataset)
    fmt = None if args.format == "auto" else args.format
    report = ds.validate(fmt, max_errors=args.max_errors, max_length=args.max_length)
    return ValidateDatasetOutput(ok=report.ok, report=report.model_dump())


class SanitizeDatasetInput(ToolInput):
    dataset: str = PathField
    output: str = Field(min_length=1, max_length=1024, description="New file to write.")
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=1)
    strip_keys: list[str] = Field(default=[], max_length=50)
    drop_exact_duplicates: bool = True
    near_duplicate_threshold: float | None = Field(default=0.9, gt=0, le=1)
    redact: list[Literal["email", "phone", "secret"]] = ["email", "phone", "secret"]
    force: bool = False


class SanitizeDatasetOutput(BaseModel):
    output: str
    summary: dict[str, Any]


@tool(permission="data:write", side_effect="write")
def sanitize_dataset(call: CallContext, args: SanitizeDatasetInput) -> SanitizeDatasetOutput:
    """Sanitize a dataset into a new file: length filters, strip keys, drop exact and near duplicates, redact e-mails, phone numbers and API keys; returns what changed and why."""
    from core.datasets import DatasetSanitizer

    source = call.services.resolve_data_path(args.dataset)
    out = resolve_output_file(call.services, args.output, source=source, force=args.force)
    ds = _load(call.services, args.dataset)
    if ds.bad_lines or ds.bad_rows:
        report = ds.validate("tabular", max_errors=10)
        shown = "; ".join(str(e) for e in report.errors[:10])
        raise InvalidInput(
            f"{ds.name} has {ds.bad_lines + ds.bad_rows} unreadable rows, nothing was written: {shown}",
            hint="Fix those lines first (`agent data validate PATH` lists them all).",
        )
    sanitizer = DatasetSanitizer(
        min_length=args.min_length,
        max_length=args.max_length,
        strip_keys=tuple(args.strip_keys),
        drop_exact_duplicates=args.drop_exact_duplicates,
        near_duplicate_threshold=args.near_duplicate_threshold,
        redact=tuple(args.redact),
    )
    clean, summary = sanitizer.sanitize(ds)
    clean.save(out)
    return SanitizeDatasetOutput(output=str(out), summary=summary.model_dump())


class SplitDatasetInput(ToolInput):
    dataset: str = PathField
    out_dir: str | None = Field(default=None, max_length=1024, description="New or empty folder.")
    fractions: list[float] = Field(default=[0.8, 0.1, 0.1], min_length=2, max_length=3)
    seed: int = Field(default=42, ge=0)
    stratify: str | None = Field(default=None, max_length=256)


class SplitDatasetOutput(BaseModel):
    out_dir: str
    seed: int
    parts: dict[str, dict[str, Any]]


@tool(permission="data:write", side_effect="write")
def split_dataset(call: CallContext, args: SplitDatasetInput) -> SplitDatasetOutput:
    """Split a dataset into train/validation/test files with a fixed seed (optionally stratified); each part's rows and content digest."""
    services = call.services
    source = services.resolve_data_path(args.dataset)
    ds = _load(services, args.dataset)
    ds.require_valid("tabular", max_errors=10)
    parts = ds.split(tuple(args.fractions), seed=args.seed, stratify=args.stratify)
    out_dir = services.resolve_output_dir(args.out_dir, default=f"{source.stem}-splits")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, part in parts.items():
        path = part.save(out_dir / f"{name}{source.suffix.lower()}")
        written[name] = {"path": str(path), "rows": len(part), "digest": part.digest}
    return SplitDatasetOutput(out_dir=str(out_dir), seed=args.seed, parts=written)


class RegisterDatasetInput(ToolInput):
    name: str = Field(
        min_length=1, max_length=128, description="The dataset's name, e.g. customer_data_2024."
    )
    path: str = PathField
    replace: bool = Field(default=False, description="Point an existing name at this file.")


class DatasetEntry(BaseModel):
    name: str
    path: str
    sha256: str
    size: int
    registered_by: str
    registered_at: str


@tool(permission="data:write", side_effect="write")
def register_dataset(call: CallContext, args: RegisterDatasetInput) -> DatasetEntry:
    """Give a dataset file a name (recorded with its SHA-256), so tools take the name where they take a path."""
    from core.datasets.io import file_format
    from core.datasets.registry import DatasetRegistry
    from core.names import validate_name

    validate_name("dataset", args.name)
    if "." in args.name:
        raise InvalidInput(
            f"dataset name {args.name!r} has a dot: a name with an extension reads as a file",
            hint="Use letters, digits, '_' and '-', e.g. customer_data_2024.",
        )
    services = call.services
    path = services.resolve_data_path(args.path)
    file_format(path)  # a CSV, Parquet or JSONL file
    entry = DatasetRegistry(services.engine).register(
        args.name, path, by=call.actor.responsible_human, replace=args.replace
    )
    return DatasetEntry(**entry)


class ListDatasetsInput(ToolInput):
    pass


class ListDatasetsOutput(BaseModel):
    datasets: list[DatasetEntry]


@tool(permission="data:read", side_effect="read")
def list_datasets(call: CallContext, args: ListDatasetsInput) -> ListDatasetsOutput:
    """The named datasets (name, file, SHA-256, who registered it)."""
    from core.datasets.registry import DatasetRegistry

    return ListDatasetsOutput(
        datasets=[DatasetEntry(**e) for e in DatasetRegistry(call.services.engine).list()]
    )
