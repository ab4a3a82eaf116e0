"""Feature store tools (Chroma): push, point-in-time get, nearest neighbours, view metadata,
and the ``ml-feature-engineering`` workflow (profile, generate, select, validate, store)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from core.names import NAME_PATTERN
from tools.base import ToolInput, tool
from tools.context import CallContext

View = Field(min_length=1, max_length=128, pattern=f"^{NAME_PATTERN}$", description="Feature view.")
Version = Field(default="1", min_length=1, max_length=64, pattern=f"^{NAME_PATTERN}$")
EntityId = Field(min_length=1, max_length=256)


class PushFeaturesInput(ToolInput):
    view: str = View
    version: str = Version
    entity_id: str = EntityId
    features: dict[str, float | int | str | bool | None] = Field(max_length=500)
    event_time: str | None = Field(default=None, description="ISO 8601 (default now).")
    implementation_status: Literal["IMPLEMENTED", "HEURISTIC", "PLANNED"] = "IMPLEMENTED"
    validation_note: str = Field(default="", max_length=4000)
    create: bool = Field(default=False, description="Create the view if it does not exist.")


class FeatureRowOutput(BaseModel):
    row: dict[str, Any]


@tool(permission="features:write", side_effect="write")
def push_features(call: CallContext, args: PushFeaturesInput) -> FeatureRowOutput:
    """Store one entity's features in a feature view version as of an event time, with implementation_status and a validation note."""
    store = call.services.features
    if not args.create:
        store.describe(args.view)  # NotFound for a new view: a typo should not create one
    row = store.push_features(
        args.entity_id,
        args.features,
        args.view,
        args.version,
        args.event_time,
        implementation_status=args.implementation_status,
        validation_note=args.validation_note,
    )
    return FeatureRowOutput(row=row.model_dump())


class GetFeaturesInput(ToolInput):
    view: str = View
    entity_ids: list[str] = Field(min_length=1, max_length=1000)
    as_of: str | None = Field(default=None, description="Point in time (ISO 8601); default now.")
    version: str | None = Field(default=None, max_length=64, pattern=f"^{NAME_PATTERN}$")


class GetFeaturesOutput(BaseModel):
    view: str
    as_of: str | None
    rows: dict[str, dict[str, Any] | None]
    missing: list[str]


@tool(permission="features:read", side_effect="read")
def get_features(call: CallContext, args: GetFeaturesInput) -> GetFeaturesOutput:
    """Each entity's latest features at or before as_of (point-in-time; nothing from the future), optionally of one version."""
    got = call.services.features.get_features(
        args.entity_ids, args.view, args.as_of, version=args.version
    )
    return GetFeaturesOutput(
        view=args.view,
        as_of=args.as_of,
        rows={k: (v.model_dump() if v else None) for k, v in got.items()},
        missing=[k for k, v in got.items() if v is None],
    )


class SearchFeaturesInput(ToolInput):
    view: str = View
    entity_id: str | None = Field(default=None, min_length=1, max_length=256)
    features: dict[str, float | int | str | bool | None] | None = None
    k: int = Field(default=5, ge=1, le=100)
    version: str | None = Field(default=None, max_length=64, pattern=f"^{NAME_PATTERN}$")


class SearchFeaturesOutput(BaseModel):
    view: str
    neighbours: list[dict[str, Any]]


@tool(permission="features:read", side_effect="read")
def search_features(call: CallContext, args: SearchFeaturesInput) -> SearchFeaturesOutput:
    """The k entities nearest (cosine over feature embeddings) to an entity or to a feature dict."""
    found = call.services.features.nearest(
        args.view, entity_id=args.entity_id, features=args.features, k=args.k, version=args.version
    )
    return SearchFeaturesOutput(view=args.view, neighbours=[n.model_dump() for n in found])


class DescribeFeaturesInput(ToolInput):
    view: str | None = Field(default=None, max_length=128, pattern=f"^{NAME_PATTERN}$")


class DescribeFeaturesOutput(BaseModel):
    views: list[dict[str, Any]]


@tool(permission="features:read", side_effect="read")
def describe_features(call: CallContext, args: DescribeFeaturesInput) -> DescribeFeaturesOutput:
    """Feature views and versions with their features, rows, implementation_status, validation note and creation time."""
    store = call.services.features
    found = store.describe(args.view) if args.view else store.views()
    return DescribeFeaturesOutput(views=[v.model_dump() for v in found])


class EngineerFeaturesInput(ToolInput):
    renamed_fields = {"target": "label_column"}
    dataset: str = Field(min_length=1, max_length=1024, description="CSV, Parquet or JSONL table.")
    label_column: str = Field(min_length=1, max_length=256, description="The label column.")
    feature_types: list[Literal["temporal", "aggregation", "interaction"]] = [
        "temporal",
        "aggregation",
        "interaction",
    ]
    selection_method: Literal["mutual_info", "permutation"] = "mutual_info"
    max_features: int = Field(default=20, ge=1, le=500)
    entity_column: str | None = Field(default=None, max_length=256)
    time_column: str | None = Field(default=None, max_length=256)
    view: str | None = Field(default=None, max_length=128, pattern=f"^{NAME_PATTERN}$")
    version: str | None = Field(default=None, max_length=64, pattern=f"^{NAME_PATTERN}$")
    seed: int = Field(default=42, ge=0)
    store: bool = Field(default=True, description="Store the selected features.")


class EngineerFeaturesOutput(BaseModel):
    report: dict[str, Any]
    stored: dict[str, Any] | None


@tool(permission="features:write", side_effect="write")
def engineer_features(call: CallContext, args: EngineerFeaturesInput) -> EngineerFeaturesOutput:
    """Profile a dataset, generate temporal/aggregation/interaction features, select by mutual information or permutation importance, reject leaking or sparse ones, and store the rest as a feature-view version."""
    from core.datasets import Dataset
    from core.features.engineering import engineer_features as run
    from core.features.engineering import store_selected

    path = call.services.resolve_data_path(args.dataset)
    ds = Dataset.load(path)
    ds.require_valid("tabular", max_errors=10)
    frame = ds.to_pandas()
    exclude = [c for c in (args.entity_column, args.time_column) if c]
    report, selected = run(
        frame,
        args.label_column,
        feature_types=list(args.feature_types),
        method=args.selection_method,
        max_features=args.max_features,
        seed=args.seed,
        exclude=exclude,
    )
    stored = None
    if args.store:
        stored = store_selected(
            call.services.features,
            report,
            selected,
            frame,
            view=args.view or f"{ds.name}-features"[:128],
            version=args.version,
            entity_column=args.entity_column,
            time_column=args.time_column,
        )
        report.stored = stored
    return EngineerFeaturesOutput(report=report.model_dump(), stored=stored)
