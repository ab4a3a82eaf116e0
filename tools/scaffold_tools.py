"""The serving scaffold tool (permission ``design:write``): a FastAPI app folder for a person
to review and build, generated from one registered version; it deploys nothing."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.errors import InvalidInput
from tools.base import ToolInput, tool
from tools.context import CallContext
from tools.design_tools import (
    KEPT,
    MODEL_ID,
    OUT_DIR,
    _one_version,
    draft_dir,
    with_kept,
    write_drafts,
)


class ScaffoldServingInput(ToolInput):
    model_id: str = Field(
        pattern=MODEL_ID,
        description="NAME@champion, NAME@challenger or NAME/VERSION (a bare NAME: its "
        "production version, else @champion, else the newest).",
    )
    out_dir: str | None = OUT_DIR
    force: bool = Field(
        default=False,
        description="Overwrite the scaffold's files if an earlier scaffold wrote them, unchanged.",
    )


class ScaffoldServingOutput(BaseModel):
    path: str
    name: str
    version: str
    runtime: str
    files: list[str]
    columns: list[str]
    pins: dict[str, str]
    warnings: list[str]
    kept: list[str] = KEPT
    message: str


@tool(permission="design:write", side_effect="write")
def scaffold_serving_api(call: CallContext, args: ScaffoldServingInput) -> ScaffoldServingOutput:
    """Scaffold a FastAPI serving app (app.py, serving.json, pinned requirements.txt, Dockerfile, verified skops/ONNX model copy) for a registered model version, to review and build."""
    from core.artifacts import read_verified
    from core.design.scaffold import build_scaffold

    services = call.services
    if "@" in args.model_id:  # the alias itself: never a fallback to another version
        name, alias = args.model_id.split("@", 1)
        info = services.registry_reader.get(name, alias)
        version = info.version
    else:
        name, version = _one_version(services, args.model_id, "production")
        info = services.registry_reader.get(name, version)
    ref = f"{name} v{version}"
    if not info.servable:
        raise InvalidInput(f"{ref} cannot be served here: {info.serving_note}")
    files = read_verified(info.artifact_uri, info.artifact_sha256, ref=ref)
    scaffold = build_scaffold(
        name=name,
        version=str(version),
        artifact_sha256=info.artifact_sha256 or "",
        honesty=info.honesty,
        files=files,
    )
    out = draft_dir(services, args.out_dir, "serving", f"{name}-v{version}", args.force)
    written = write_drafts(out, scaffold.files, force=args.force)  # checked before writing
    return ScaffoldServingOutput(
        path=str(out),
        name=name,
        version=str(version),
        runtime=scaffold.runtime,
        files=sorted(scaffold.files),
        columns=[c["name"] for c in scaffold.columns],
        pins=scaffold.pins,
        warnings=scaffold.warnings,
        kept=written.kept,
        message=with_kept(
            f"Scaffolded a serving API for {ref} at {out}; review it, then run "
            "`uvicorn app:app --host 127.0.0.1 --port 8000` there or build the Dockerfile.",
            written,
        ),
    )
