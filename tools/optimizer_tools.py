"""Optimizer tool: export a registered scikit-learn version to ONNX, check parity, benchmark,
and register the adopted artifact as a new version with lineage and the report attached."""

from __future__ import annotations

import secrets
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from core.errors import Conflict, InvalidInput, NotFound
from core.honesty import HONESTY_FIELDS, HonestyMetadata
from core.names import ModelName, parse_model_ref
from core.tasks import LABEL_COLUMN_TAG, label_column_for
from tools.base import ToolInput, tool
from tools.context import CallContext, Services
from tools.registry_tools import VERSION_PATTERN

_TAG_LIMIT = 5000  # MLflow tag values are capped at 8000 characters


class OptimizeModelInput(ToolInput):
    renamed_fields = {"target": "goal", "target_column": "label_column"}
    model_id: str | None = Field(
        default=None,
        max_length=256,
        description='"name@alias" (champion/challenger), "name/version" or "name@2.1.0" '
        "(version label); or give name + version.",
    )
    name: ModelName | None = None
    version: str | None = Field(default=None, pattern=VERSION_PATTERN)
    goal: Literal["latency", "size", "throughput"] = "latency"
    dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="CSV of held-out rows for the parity check and benchmarks, or logged:NAME "
        "for a dataset logged with the version's run (default: the logged evaluation set, else "
        "the training set).",
    )
    label_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="The label column; omit for the one recorded on the version (else target).",
    )
    max_rows: int = Field(default=2000, ge=10, le=100_000)
    benchmark_seconds: float = Field(
        default=2.0, gt=0, le=30, description="Time budget of each latency/throughput measurement."
    )

    @model_validator(mode="after")
    def _one_reference(self) -> OptimizeModelInput:
        if (self.model_id is None) == (self.name is None):
            raise ValueError('give either model_id ("name@alias" / "name/version") or name')
        if self.model_id is not None and self.version is not None:
            raise ValueError("version goes inside model_id; do not give both")
        return self

    def reference(self) -> tuple[str, str]:
        if self.model_id is not None:
            ref = parse_model_ref(self.model_id)
            return ref.name, str(ref.selector)
        return str(self.name), self.version or "champion"


class OptimizeModelOutput(BaseModel):
    name: str
    source_version: str
    registered: bool
    version: str | None
    adopted: str
    reason: str
    parity: dict[str, Any]
    benchmarks: list[dict[str, Any]]
    artifact_sha256: str | None
    honesty: dict[str, str]
    lineage: dict[str, str]
    report: str
    rows_source: str
    # True when an optimized child for this goal already existed and was returned as it is.
    existing: bool = False


@tool(permission="optimize:run", side_effect="write")
def optimize_model(call: CallContext, args: OptimizeModelInput) -> OptimizeModelOutput:
    """Export a registered scikit-learn version to ONNX, gate it on parity, benchmark it, and register the result as a new version."""
    from core.optimizer import BenchmarkSettings, optimize

    services = call.services
    reg = services.registry
    name, ref = args.reference()
    info = reg.get(name, ref)
    if "optimized_from" in info.tags:
        raise InvalidInput(
            f"{info.ref} is already an optimized artifact (from v{info.tags['optimized_from']})",
            hint=f"Optimize the scikit-learn version: {name}/{info.tags['optimized_from']}.",
        )
    child = _existing_child(reg, info, args.goal)
    if child is not None:
        return child
    from core.artifacts import input_schema
    from core.optimizer.export import ExportUnsupported, positional_copy

    model = reg.load_sklearn(info.name, info.version)  # digest-checked before loading
    out_dir = (
        services.settings.home_dir / "optimizer" / f"{name}-v{info.version}-{secrets.token_hex(3)}"
    )
    strings = [n for n, t in input_schema(reg.verified_files(info)) or () if t == "string"]
    if strings:
        return _kept_on_skops(
            info,
            out_dir,
            f"v{info.version} takes string columns ({', '.join(strings[:10])}): an ONNX graph "
            "of it would need string inputs, and the gateway's ONNX path takes one float32 "
            "tensor",
        )
    X, rows_source = _holdout_rows(services, info, model, args)
    try:
        with warnings.catch_warnings():
            # The rows were selected by the model's own feature names, so sklearn's warning
            # about a nameless array says nothing here (and costs time in the benchmarks).
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            report = optimize(
                # Columns picked by name become positions in a copy (export and parity run
                # on arrays in the model's own feature order).
                positional_copy(model),
                X[:5],
                X,
                goal=args.goal,
                out_dir=out_dir,
                benchmark=BenchmarkSettings(max_seconds_per_measurement=args.benchmark_seconds),
            )
    except ExportUnsupported as exc:
        return _kept_on_skops(info, out_dir, exc.message, rows_source)
    benchmarks = [b.model_dump(mode="json") for b in report.benchmarks]
    parity = report.parity.model_dump(mode="json")
    if report.artifact_path is None:
        return OptimizeModelOutput(
            name=name,
            source_version=info.version,
            registered=False,
            version=None,
            adopted=report.adopted,
            reason=report.reason,
            parity=parity,
            benchmarks=benchmarks,
            artifact_sha256=None,
            honesty=info.honesty,
            lineage={},
            report=report.report_path,
            rows_source=rows_source,
        )
    import hashlib

    onnx_bytes = Path(report.artifact_path).read_bytes()
    if hashlib.sha256(onnx_bytes).hexdigest() != report.artifact_sha256:
        raise Conflict(f"{report.artifact_path} changed after the optimizer wrote it")
    honesty, tags = _carried_over(info, report)
    tags.update(
        {
            "optimized_from": info.version,
            "optimized_from_run_id": info.run_id or "",
            "optimization_goal": args.goal,
            "optimization_adopted": report.adopted,
            "optimization_reason": report.reason[:_TAG_LIMIT],
            "optimization_report": "optimization/report.json",
            "parity_summary": report.parity.summary()[:_TAG_LIMIT],
            "parity_rows": str(report.parity.rows),
            "parity_max_abs_diff": f"{report.parity.max_abs_diff:.3g}",
            "parity_label_agreement": ""
            if report.parity.label_agreement is None
            else f"{report.parity.label_agreement:.6f}",
            "onnx_sha256": report.artifact_sha256 or "",
            "serving_runtime": "onnxruntime",
            "converter": report.converter,
            "parity_rows_source": Path(rows_source).name,
        }
    )
    for key in ("dataset_digest", "dataset_name"):
        if key in info.tags:
            tags[key] = info.tags[key]
    metrics = {}
    for b in report.benchmarks:
        metrics[f"{b.artifact}_p50_us"] = b.single_row.p50_us
        metrics[f"{b.artifact}_p99_us"] = b.single_row.p99_us
        metrics[f"{b.artifact}_rows_per_second"] = b.batch.rows_per_second
        metrics[f"{b.artifact}_size_bytes"] = float(b.size_bytes)
    run_id = reg.log_onnx_run(
        onnx_bytes,
        n_features=report.n_features,
        # The source's pyfunc input (its column names and order), so @champion consumers of
        # mlflow.pyfunc keep working when the champion moves to this ONNX artifact.
        signature=_source_signature(reg, info, report.n_features),
        run_name=f"{name}-v{info.version}-{report.adopted}",
        tags=tags,
        artifacts=[Path(report.report_path)],
        metrics=metrics,
        params={"goal": args.goal, "holdout_rows": report.holdout_rows},
    )
    # The label column is a reserved version fact: carried over by our code, not a run tag.
    label = {LABEL_COLUMN_TAG: info.tags[LABEL_COLUMN_TAG]} if LABEL_COLUMN_TAG in info.tags else {}
    new = reg.register_from_run(
        name,
        run_id,
        honesty=honesty,
        extra_tags=label,
        description=f"{report.adopted} optimization of v{info.version} for {args.goal}: {report.reason}"[
            :2000
        ],
    )
    return OptimizeModelOutput(
        name=name,
        source_version=info.version,
        registered=True,
        version=new.version,
        adopted=report.adopted,
        reason=report.reason,
        parity=parity,
        benchmarks=benchmarks,
        artifact_sha256=new.artifact_sha256,
        honesty=new.honesty,
        lineage=new.lineage,
        report=report.report_path,
        rows_source=rows_source,
    )


def _kept_on_skops(
    info: Any, out_dir: Path, why: str, rows_source: str = ""
) -> OptimizeModelOutput:
    """Nothing registered: the version keeps serving through skops; report.json says why."""
    import json

    reason = f"sklearn: kept on scikit-learn (skops); no ONNX artifact: {why}"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    path.write_text(
        json.dumps({"source_version": info.version, "adopted": "sklearn", "reason": reason}),
        encoding="utf-8",
    )
    return OptimizeModelOutput(
        name=info.name,
        source_version=info.version,
        registered=False,
        version=None,
        adopted="sklearn",
        reason=reason,
        parity={},
        benchmarks=[],
        artifact_sha256=None,
        honesty=info.honesty,
        lineage={},
        report=str(path),
        rows_source=rows_source,
    )


def _source_signature(reg: Any, info: Any, n_features: int) -> Any:
    """The source version's MLflow signature when it names ``n_features`` inputs, else None."""
    from core.onnx_logging import signature_of

    sig = signature_of(reg.verified_files(info))
    if sig is None:
        return None
    specs = sig.inputs.inputs
    if sig.inputs.is_tensor_spec():  # a row-vector input: the same shape, whatever its dtype
        shape = specs[0].shape if len(specs) == 1 else ()
        return sig if len(shape) == 2 and shape[1] == n_features else None
    return sig if len(specs) == n_features else None


def _existing_child(reg: Any, info: Any, goal: str) -> OptimizeModelOutput | None:
    """An optimized version already registered from this source for this goal (no duplicate)."""
    for v in reg.list_versions(info.name):
        tags = v.tags
        if (
            tags.get("optimized_from") != info.version
            or tags.get("optimization_goal", tags.get("optimization_target")) != goal
        ):
            continue
        return OptimizeModelOutput(
            name=info.name,
            source_version=info.version,
            registered=False,
            version=v.version,
            adopted=tags.get("optimization_adopted", ""),
            reason=f"v{v.version} is already the {goal} optimization of v{info.version}; "
            "returned as it is (nothing was registered)",
            parity={"summary": tags.get("parity_summary", ""), "rows": tags.get("parity_rows")},
            benchmarks=[],
            artifact_sha256=v.artifact_sha256,
            honesty=v.honesty,
            lineage=v.lineage,
            report=tags.get("optimization_report", ""),
            rows_source=tags.get("parity_rows_source", ""),
            existing=True,
        )
    return None


def _carried_over(info: Any, report: Any) -> tuple[HonestyMetadata | None, dict[str, str]]:
    """The source's honesty metadata, with the parity check added to its validation method.

    The QA verdict (validation_status) is not carried over: the new artifact needs its own.
    A source with incomplete metadata stays incomplete, so the promotion gates still block it.
    """
    src = {k: info.tags.get(k, "") for k in HONESTY_FIELDS}
    check = (
        f"ONNX parity check against v{info.version} on {report.parity.rows} held-out rows: "
        f"{report.parity.summary()}"
    )
    method = f"{src['validation_method']}; {check}" if src["validation_method"] else check
    src["validation_method"] = method[:_TAG_LIMIT]
    if src["accuracy_claim"]:
        src["accuracy_claim"] = (
            f"{src['accuracy_claim']} (measured on v{info.version}; this ONNX artifact "
            f"reproduces its outputs, see validation_method)"
        )[:_TAG_LIMIT]
    if all(src.values()):
        return HonestyMetadata(**src), {}
    return None, {k: v for k, v in src.items() if v}


def _holdout_rows(
    services: Services, info: Any, model: Any, args: OptimizeModelInput
) -> tuple[Any, str]:
    import pandas as pd

    if args.dataset is not None and args.dataset.startswith("logged:"):
        path = services.registry.logged_dataset_path(info.name, info.version, args.dataset[7:])
    elif args.dataset is not None:
        path = services.resolve_data_path(args.dataset)
    else:
        path = _logged_dataset_path(services, info)
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}") from exc
    names = getattr(model, "feature_names_in_", None)
    features = (
        [str(c) for c in names]
        if names is not None
        else [c for c in frame.columns if c != label_column_for(info.tags, args.label_column)]
    )
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"{path.name} lacks feature columns the model needs: {', '.join(missing[:10])}"
        )
    X = frame[features].head(args.max_rows)
    non_numeric = [c for c in features if not pd.api.types.is_numeric_dtype(X[c])]
    if non_numeric:
        raise InvalidInput(f"non-numeric feature columns: {', '.join(non_numeric[:10])}")
    return X.to_numpy(dtype="float64"), str(path)


def _logged_dataset_path(services: Services, info: Any) -> Path:
    """A dataset logged with the version's run: an evaluation (held-out) set first, else the
    training set (parity only needs rows from the model's feature space)."""
    run = services.registry.client.get_run(info.run_id) if info.run_id else None
    inputs = run.inputs.dataset_inputs if run is not None else []
    ranked = sorted(
        (
            0
            if any(t.key == "mlflow.data.context" and t.value == "evaluation" for t in d.tags)
            else 1,
            d.dataset.name,
        )
        for d in inputs
    )
    for _, dataset_name in ranked:
        try:
            return services.registry.logged_dataset_path(info.name, info.version, dataset_name)
        except NotFound:
            continue  # logged as schema + digest only; try the next one
    names = ", ".join(n for _, n in ranked) or "none"
    raise InvalidInput(
        f"{info.ref}'s run kept no dataset rows to check parity on (logged datasets: {names})",
        hint="Pass dataset=<CSV of held-out rows with the model's feature columns>.",
    )
