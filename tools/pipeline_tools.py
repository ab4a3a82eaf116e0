"""draft_training_pipeline (permission ``design:write``): a notebook becomes a runnable,
MLflow-tracked training script plus its lifted config, written for a person to review."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, Field

from core.errors import InvalidInput
from tools.base import ToolInput, tool
from tools.context import CallContext
from tools.design_tools import KEPT, OUT_DIR, draft_dir, with_kept, write_drafts


class DraftPipelineInput(ToolInput):
    notebook: str = Field(
        min_length=1,
        max_length=4096,
        description="The .ipynb file (under the working directory or MODELOPS_HOME).",
    )
    out_dir: str | None = OUT_DIR
    force: bool = Field(
        default=False,
        description="Overwrite the draft's files if an earlier draft wrote them, unchanged.",
    )


class DraftPipelineOutput(BaseModel):
    paths: list[str]
    config: dict[str, object]
    dropped_cells: int
    model_variable: str | None
    warnings: list[str]
    status: str
    kept: list[str] = KEPT
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
        "train.py": draft.script,
        "config.json": json.dumps(draft.config, indent=2, sort_keys=True) + "\n",
    }
    written = write_drafts(out, files, force=args.force)  # all checked before any is written
    status = "drafted; not run" + (" (with warnings)" if draft.warnings else "")
    return DraftPipelineOutput(
        paths=[str(out / rel) for rel in files],
        config=draft.config,
        dropped_cells=draft.dropped_cells,
        model_variable=draft.model_var,
        warnings=draft.warnings,
        status=status,
        kept=written.kept,
        message=with_kept(
            f"Drafted {out / 'train.py'} from {path.name}; review it, then run "
            f"`python {out / 'train.py'} --config {out / 'config.json'}`.",
            written,
        ),
    )
