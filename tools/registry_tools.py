"""Registry tools: list, show and register model versions."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from core.honesty import HonestyMetadata
from core.names import VERSION_REF_PATTERN, ModelName
from tools.base import ToolInput, tool
from tools.context import CallContext

# A version number, an alias or a semantic version label (resolved by the registry).
VERSION_PATTERN = VERSION_REF_PATTERN


class ListModelsInput(ToolInput):
    pass


class ListModelsOutput(BaseModel):
    models: list[dict[str, Any]]


@tool(permission="registry:read", side_effect="read")
def list_models(call: CallContext, args: ListModelsInput) -> ListModelsOutput:
    """List registered models with their latest version and aliases."""
    return ListModelsOutput(models=call.services.registry_reader.list_models())


class GetModelInput(ToolInput):
    name: ModelName
    version: str | None = Field(
        default=None,
        pattern=VERSION_PATTERN,
        description="Version number, alias or version label (2.1.0); omit for every version.",
    )


class GetModelOutput(BaseModel):
    name: str
    versions: list[dict[str, Any]]


@tool(permission="registry:read", side_effect="read")
def get_model(call: CallContext, args: GetModelInput) -> GetModelOutput:
    """Show a model's versions (or one version) with honesty metadata, lineage and aliases."""
    reg = call.services.registry_reader
    versions = [reg.get(args.name, args.version)] if args.version else reg.list_versions(args.name)
    return GetModelOutput(name=args.name, versions=[v.model_dump() for v in versions])


class RegisterModelInput(ToolInput):
    name: ModelName
    run_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="MLflow run that logged the model.")
    honesty: HonestyMetadata
    description: str = Field(default="", max_length=2000)


class RegisterModelOutput(BaseModel):
    name: str
    version: str
    artifact_sha256: str | None
    lineage: dict[str, str]
    dropped_tags: list[str] = Field(
        default=[], description="Reserved run tags (verdicts, approvals, digests) not copied."
    )
    reference_profile: str = Field(
        default="", description="The monitoring reference profile captured from the training data."
    )


@tool(permission="registry:write", side_effect="write")
def register_model(call: CallContext, args: RegisterModelInput) -> RegisterModelOutput:
    """Register the model logged in an MLflow run as a new version, with honesty metadata."""
    from tools.monitoring_tools import capture_at_registration

    info = call.services.registry.register_from_run(
        args.name, args.run_id, honesty=args.honesty, description=args.description
    )
    return RegisterModelOutput(
        name=info.name,
        version=info.version,
        artifact_sha256=info.artifact_sha256,
        lineage=info.lineage,
        dropped_tags=info.dropped_tags,
        reference_profile=capture_at_registration(call.services, info),
    )


class SetChallengerInput(ToolInput):
    name: ModelName
    version: str = Field(pattern=r"^[0-9]{1,9}$")


class SetChallengerOutput(BaseModel):
    name: str
    version: str
    alias: str


@tool(permission="registry:write", side_effect="write")
def set_challenger(call: CallContext, args: SetChallengerInput) -> SetChallengerOutput:
    """Mark a version as the challenger (the champion alias moves only through an approved promotion)."""
    call.services.registry.set_alias(args.name, "challenger", args.version)
    return SetChallengerOutput(name=args.name, version=args.version, alias="challenger")
