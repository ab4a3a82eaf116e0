"""draft_training_pipeline (permission ``design:write``): a notebook becomes a runnable,
MLflow-tracked training script plus its lifted config, written for a person to review."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, Field

from core.errors import InvalidInput
from tools.base import ToolInput, tool
from tools.context import CallContext
from tools.design_tools import OUT_DIR, draft_dir, write_draft


class DraftPipelineInput(ToolInput):
    notebook: str = Field(
        min_length=1,
        max_length=4096,
        description="The .ipynb file (under the working directory or MODELOPS_HOME).",
    )
    out_dir: str | None = OUT_DIR
    force: bool = Field(default=False, description="Overwrite the draft's files if present.")


class DraftPipelineOutput(BaseModel):
    paths: list[str]
    config: dict[str, object]
    dropped_cells: int
    model_variable: str | None
    warnings: list[str]
    status: str
    message: str


@tool(permission="design:write", side_effect="write")
def draft_training_pipeline(call: CallContext, args: DraftPipelineInput) -> DraftPipelineOutput:
    """Draft a training pipeline from a Jupyter notebook: code cells kept (magics, markdown and display-only cells dropped), hard-coded paths and hyperparameters lifted into a typed config with a CLI, training wrapped in an MLflow run (honesty tags, dataset digest, environment, params, model)."""
    from core.design.notebook import convert, read_notebook

    services = call.services
    path = services.resolve_data_path(args.notebook, what="notebook")
    if path.suffix != ".ipynb":
        raise InvalidInput(f"{args.notebook!r} is not an .ipynb notebook")
    draft = convert(read_notebook(path), path.name)
    slug = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem).lstrip(".-")[:100] or "notebook"
    out = draft_dir(services, args.out_dir, "pipelines", slug, args.force)
    files = {
        out / "train.py": draft.script,
        out / "config.json": json.dumps(draft.config, indent=2, sort_keys=True) + "\n",
    }
    for p in files:  # check all before writing any, so a refusal changes nothing
        if p.is_symlink() or (p.exists() and not args.force):
            raise InvalidInput(
                f"{p.name} already exists in {out}",
                hint="Pass force=true (--force) to overwrite it, or choose another folder.",
            )
    for p, text in files.items():
        write_draft(p, text, force=args.force)
    status = "drafted; not run" + (" (with warnings)" if draft.warnings else "")
    return DraftPipelineOutput(
        paths=[str(p) for p in files],
        config=draft.config,
        dropped_cells=draft.dropped_cells,
        model_variable=draft.model_var,
        warnings=draft.warnings,
        status=status,
        message=f"Drafted {out / 'train.py'} from {path.name}; review it, then run "
        f"`python {out / 'train.py'} --config {out / 'config.json'}`.",
    )
