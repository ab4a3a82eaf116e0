"""``ModelRegistry``: versions, aliases, lineage and honesty metadata on the MLflow registry.

Everything is stored as MLflow model-version tags so MLflow's own UI and
``mlflow.pyfunc.load_model("models:/name@alias")`` keep working on what we register; the
manifest of a version's files lives next to them (``core.artifacts``).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.artifacts import (
    MANIFEST_FILE,
    SKOPS_TRUSTED_TYPES,
    artifact_digest,  # noqa: F401 - re-exported: the digest registration records
    artifact_flavors,
    check_safe_flavors,
    check_skops_types,
    local_path,
    manifest_digest,
    manifest_json,
    manifest_of,
    onnx_bytes,
    read_model_files,
    read_verified,
    sklearn_from_bytes,
    skops_bytes,
)
from core.errors import InvalidInput, NotFound
from core.experiments.tracker import tracker_honesty, tracker_label_column
from core.honesty import (
    HONESTY_FIELDS,
    VERSION_LABEL_TAG,
    HonestyMetadata,
    claimed_metrics_of,
    missing_honesty_fields,
)
from core.names import is_version_label, parse_version_ref, split_reserved_tags, validate_name
from core.tasks import LABEL_COLUMN_TAG
from core.tracking import DEFAULT_EXPERIMENT, configure_mlflow, ensure_experiment, git_commit

ALIASES = ("champion", "challenger")


def no_such_version(name: str, version: str) -> NotFound:
    """The error for a version number or alias the model does not have (one wording)."""
    if version == "champion":
        return NotFound(
            f"{name} has no champion yet: no version of it has been promoted to production",
            hint=f"Use a version number (`agent models show {name}`), or promote one first "
            "(`agent approvals list`).",
        )
    if version in ALIASES:
        return NotFound(
            f"{name} has no {version} yet",
            hint=f"Use a version number; `agent models show {name}` lists them.",
        )
    if is_version_label(version):
        return NotFound(
            f"model {name} has no version labelled {version}",
            hint=f"`agent models show {name}` lists each version with its label; a label is "
            "set at registration (`agent models register ... --version-label 2.1.0`).",
        )
    return NotFound(
        f"model {name} has no version {version}",
        hint=f"See `agent models show {name}` for its versions.",
    )


def version_of_label(name: str, label: str, versions: list[int]) -> str:
    """The one registry version carrying ``label`` (our registration keeps labels unique per
    model; two versions with one label are refused, never picked between)."""
    if not versions:
        raise no_such_version(name, label)
    if len(versions) > 1:
        raise InvalidInput(
            f"version label {label} of {name} is ambiguous: versions "
            f"{', '.join(map(str, versions))} carry it",
            hint=f"Name the version by number ({name}/{versions[-1]}); "
            f"`agent models show {name}` lists them.",
        )
    return str(versions[0])


# Pip requirements are given explicitly: inferring them costs 7-8 s per log_model call.
_PIP_REQUIREMENTS = ["scikit-learn", "numpy", "pandas", "skops"]
log = logging.getLogger(__name__)


class ModelVersionInfo(BaseModel):
    name: str
    version: str
    aliases: list[str]
    run_id: str | None
    source: str
    artifact_uri: str
    artifact_sha256: str | None
    status: str
    description: str | None
    tags: dict[str, str]
    honesty: dict[str, str]
    missing_honesty: list[str]
    lineage: dict[str, str]
    created_at_ms: int
    # Set by register_from_run only: reserved run tags that were not copied to the version.
    dropped_tags: list[str] = []
    # The registrant's semantic version ("2.1.0"), beside MLflow's integer ``version``.
    version_label: str | None = None
    # Numbers the registrant supplied: claimed, not measured (evaluations measure).
    claimed_metrics: dict[str, float] = {}
    # False for an external model (an LLM fine-tuned at a provider's API, core.finetuning):
    # it has no artifact here, so nothing loads, evaluates or serves it; ``serving_note`` says why.
    servable: bool = True
    serving_note: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


def validate_model_name(name: str) -> str:
    return validate_name("model", name)


LINEAGE_TAGS = ("run_id", "dataset_digest", "dataset_name", "git_commit", "optimized_from")


def version_info(
    *,
    name: str,
    version: str,
    aliases: list[str],
    run_id: str | None,
    source: str,
    artifact_uri: str,
    status: str,
    description: str | None,
    tags: dict[str, str],
    created_at_ms: int,
) -> ModelVersionInfo:
    """A version's stored fields as ``ModelVersionInfo``: one place for the MLflow client
    (``ModelRegistry.get``) and the SQLite view (``core.registry_view``)."""
    return ModelVersionInfo(
        name=name,
        version=version,
        aliases=aliases,
        run_id=run_id,
        source=source,
        artifact_uri=artifact_uri,
        artifact_sha256=tags.get("artifact_sha256"),
        status=status,
        description=description,
        tags=tags,
        honesty={k: tags[k] for k in HONESTY_FIELDS if k in tags},
        missing_honesty=missing_honesty_fields(tags),
        lineage={k: tags[k] for k in LINEAGE_TAGS if k in tags},
        created_at_ms=created_at_ms,
        version_label=tags.get(VERSION_LABEL_TAG),
        claimed_metrics=claimed_metrics_of(tags),
        servable=tags.get(MODEL_KIND_TAG) != EXTERNAL_LLM,
        serving_note=external_serving_note(tags),
    )


MODEL_KIND_TAG = "model_kind"
EXTERNAL_LLM = "external_llm"


def external_serving_note(tags: dict[str, str]) -> str:
    """Why an external version cannot be loaded or served here ('' for our own models)."""
    if tags.get(MODEL_KIND_TAG) != EXTERNAL_LLM:
        return ""
    return (
        f"external LLM {tags.get('external_model_id', '?')} (fine-tuned at "
        f"{tags.get('external_provider', 'its provider')}): it has no artifact in this "
        "registry, so the gateway cannot load or serve it and the evaluator cannot score it; "
        "call it through its provider's API"
    )


def _require_servable(info: ModelVersionInfo) -> None:
    if not info.servable:
        raise InvalidInput(
            f"{info.ref} is not servable here: {info.serving_note}",
            hint=f"See `agent models show {info.name}`; external models run at their provider.",
        )


class ModelRegistry:
    """Register, look up, alias and load model versions in the MLflow registry."""

    def __init__(self, tracking_uri: str | None = None, artifact_root: str | None = None) -> None:
        if tracking_uri is None or artifact_root is None:
            # ``ModelRegistry()``: the home's registry (flag -> env -> modelops.toml -> default).
            from core.settings import load_settings

            settings = load_settings()
            tracking_uri = tracking_uri or settings.resolved_tracking_uri
            artifact_root = artifact_root or settings.resolved_artifact_root
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.client = configure_mlflow(tracking_uri)

    # Writing -------------------------------------------------------------------------
    def log_sklearn_model(self, name: str, model: Any, **kwargs: Any) -> ModelVersionInfo:
        """Log a trained scikit-learn model in a new MLflow run and register it as a version."""
        honesty = kwargs.pop("honesty", None)
        description = kwargs.pop("description", "")
        run_id = self.log_sklearn_run(
            model, honesty=honesty, run_name=f"{name}-{model.__class__.__name__}", **kwargs
        )
        return self.register_from_run(name, run_id, honesty=honesty, description=description)

    def log_sklearn_run(
        self,
        model: Any,
        *,
        X_sample: Any,
        honesty: HonestyMetadata | None,
        run_name: str,
        params: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        dataset: Any | None = None,
        dataset_name: str = "training",
        eval_datasets: dict[str, Any] | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        extra_tags: dict[str, str] | None = None,
    ) -> str:
        """Log a trained scikit-learn model, its params, metrics, training data and honesty
        metadata in a new MLflow run; return the run id (registration is a separate step).

        ``honesty=None`` is allowed so that versions without metadata can be represented;
        the promotion gates block them.
        """
        import mlflow
        import mlflow.sklearn
        from mlflow.models import infer_signature

        for frame_name in [dataset_name, *(eval_datasets or {})]:
            validate_name("dataset", frame_name)  # each becomes datasets/NAME.parquet
        exp_id = ensure_experiment(self.client, experiment, self.artifact_root)
        tags = dict(extra_tags or {})
        if honesty is not None:
            tags.update(honesty.as_tags())
        commit = git_commit()
        if commit:
            tags["git_commit"] = commit
        with (
            warnings.catch_warnings(),
            mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run,
        ):
            # Integer class labels make MLflow warn about missing values; labels have none.
            warnings.filterwarnings("ignore", message=".*Inferred schema contains integer.*")
            if params:
                mlflow.log_params(params)
            if metrics:
                mlflow.log_metrics(metrics)
            if dataset is not None:
                ds = mlflow.data.from_pandas(dataset, name=dataset_name, targets="target")
                mlflow.log_input(ds, context="training")
                tags["dataset_digest"] = ds.digest
                tags["dataset_name"] = dataset_name
                _log_frame(dataset, dataset_name)
            for eval_name, frame in (eval_datasets or {}).items():
                mlflow.log_input(
                    mlflow.data.from_pandas(frame, name=eval_name, targets="target"),
                    context="evaluation",
                )
                _log_frame(frame, eval_name)
            mlflow.set_tags(tags)
            signature = infer_signature(X_sample, model.predict(X_sample))
            mlflow.sklearn.log_model(
                model,
                name="model",
                pip_requirements=_PIP_REQUIREMENTS,
                serialization_format="skops",
                skops_trusted_types=list(SKOPS_TRUSTED_TYPES),
                signature=signature,
            )
        return run.info.run_id

    def log_onnx_run(
        self,
        onnx_model: bytes | str | Path,
        *,
        n_features: int,
        run_name: str,
        tags: dict[str, str],
        artifacts: list[Path] | None = None,
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        signature: Any | None = None,
    ) -> str:
        """Log an ONNX graph (``mlflow.onnx`` flavor) with tags, metrics and extra artifacts
        (e.g. an optimization report) in a new run; return the run id. Register it with
        ``register_from_run``, which records the artifact's SHA-256 like any other version.

        ``signature``: the input the pyfunc takes, e.g. the signature of the scikit-learn
        version the graph was exported from (``core.onnx_logging``); default a float32 tensor
        of ``n_features`` columns."""
        import mlflow
        import numpy as np
        import onnx
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        from core.onnx_logging import log_onnx_model

        proto = onnx.load_from_string(
            onnx_model if isinstance(onnx_model, bytes) else Path(onnx_model).read_bytes()
        )
        if signature is None:
            signature = ModelSignature(
                inputs=Schema(
                    [TensorSpec(np.dtype(np.float32), (-1, n_features), proto.graph.input[0].name)]
                )
            )
        exp_id = ensure_experiment(self.client, experiment, self.artifact_root)
        all_tags = dict(tags)
        commit = git_commit()
        if commit:
            all_tags.setdefault("git_commit", commit)
        with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
            if params:
                mlflow.log_params(params)
            if metrics:
                mlflow.log_metrics(metrics)
            mlflow.set_tags(all_tags)
            for path in artifacts or []:
                mlflow.log_artifact(str(path), artifact_path="optimization")
            log_onnx_model(proto, signature=signature)
        return run.info.run_id

    def register_from_run(
        self,
        name: str,
        run_id: str,
        *,
        honesty: HonestyMetadata | None,
        description: str = "",
        extra_tags: dict[str, str] | None = None,
    ) -> ModelVersionInfo:
        """Register the model a run logged as a new version: only skops or ONNX models; the
        manifest of its files and their digest are recorded; reserved run tags are dropped
        (listed in the result's ``dropped_tags``). ``extra_tags`` come from our own code
        (e.g. a checked version label) and are set when the version is created.

        From a tracker run (``core.experiments``) the version keeps what the tracker recorded
        in write-once params: its honesty metadata (when ``honesty`` is None) and its label
        column, plus its logged training rows as lineage; never the run's honesty tags."""
        from mlflow.exceptions import MlflowException

        validate_name("model", name)
        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            raise NotFound(f"no MLflow run {run_id}") from exc
        logged = self.client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run_id}'",
        )
        if not logged:
            raise NotFound(
                f"run {run_id} logged no model", hint="Log one with mlflow.<flavor>.log_model."
            )
        model = logged[0]
        digest = self._record_manifest(model, ref=f"run {run_id}'s model")
        tags, dropped = split_reserved_tags(
            {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        )
        if honesty is None:  # what the tracker recorded for the run (never its tags)
            honesty = tracker_honesty(run.data.params)
        tags.update(tracker_facts(run))
        if honesty is not None:  # the run's honesty tags are superseded, not lost
            dropped = [k for k in dropped if k not in HONESTY_FIELDS]
        if dropped:
            log.warning(
                "registering %s from run %s: dropped reserved run tags %s",
                name,
                run_id,
                ", ".join(dropped),
            )
        if honesty is not None:
            tags.update(honesty.as_tags())
        tags.update(extra_tags or {})
        tags["artifact_sha256"] = digest
        tags["run_id"] = run_id
        # The client call, unlike mlflow.register_model, prints nothing to the terminal.
        try:
            self.client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        mv = self.client.create_model_version(
            name,
            source=f"models:/{model.model_id}",
            run_id=run_id,
            tags=tags,
            description=description or None,
            model_id=model.model_id,
        )
        return self.get(name, mv.version).model_copy(update={"dropped_tags": dropped})

    def _record_manifest(self, model: Any, *, ref: str) -> str:
        """Refuse a pickle-format model; write the manifest of its files next to them
        (``MANIFEST_FILE``) and return the digest over that manifest."""
        files = read_model_files(local_path(model.artifact_location), ref=ref)
        flavors = artifact_flavors(files)
        if check_safe_flavors(flavors, ref=ref) == "sklearn":
            check_skops_types(skops_bytes(files, ref=ref), ref=ref)
        else:
            onnx_bytes(files, ref=ref)
        manifest = manifest_of(files)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / MANIFEST_FILE
            path.write_bytes(manifest_json(manifest))
            self.client.log_model_artifact(model.model_id, str(path))
        return manifest_digest(manifest)

    def logged_dataset_path(self, name: str, version: str, dataset_name: str) -> Path:
        """A dataset logged with the version's training run (``datasets/<name>.parquet``). An
        optimized version (``optimized_from``) uses the rows logged with its source's run."""
        validate_name("dataset", dataset_name)
        info = self.get(name, version)
        source = info.tags.get("optimized_from")
        if source and source.isdigit() and source != info.version:
            return self.logged_dataset_path(name, source, dataset_name)
        if not info.run_id:
            raise NotFound(f"{info.ref} has no training run, so no logged datasets")
        run = self.client.get_run(info.run_id)
        path = local_path(f"{run.info.artifact_uri}/datasets/{dataset_name}.parquet")
        if not path.is_file():
            logged = [i.dataset.name for i in run.inputs.dataset_inputs]
            raise NotFound(
                f"{info.ref}'s run logged no dataset {dataset_name!r}",
                hint=f"Logged datasets: {', '.join(logged) or 'none'}.",
            )
        return path

    def set_alias(self, name: str, alias: str, version: str) -> None:
        if alias not in ALIASES:
            raise InvalidInput(
                f"unknown alias {alias!r}", hint=f"Use one of: {', '.join(ALIASES)}."
            )
        self.get(name, version)
        self.client.set_registered_model_alias(name, alias, str(version))

    def set_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        self.get(name, version)
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), key, str(value))

    # Reading -------------------------------------------------------------------------
    def list_models(self) -> list[dict[str, Any]]:
        out = []
        for rm in self.client.search_registered_models(max_results=1000):
            versions = self.client.search_model_versions(f"name='{rm.name}'", max_results=1000)
            out.append(
                {
                    "name": rm.name,
                    "latest_version": max((int(v.version) for v in versions), default=None),
                    "versions": len(versions),
                    "aliases": dict(rm.aliases or {}),
                    "description": rm.description or "",
                }
            )
        return sorted(out, key=lambda m: m["name"])

    def versions_with_label(self, name: str, label: str) -> list[int]:
        """Registry versions of ``name`` whose registration recorded version label ``label``."""
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client.search_model_versions(f"name='{name}'", max_results=10_000)
        except MlflowException:
            return []
        return sorted(
            int(v.version) for v in versions if (v.tags or {}).get(VERSION_LABEL_TAG) == label
        )

    def list_versions(self, name: str) -> list[ModelVersionInfo]:
        self._require_model(name)
        versions = self.client.search_model_versions(f"name='{name}'", max_results=1000)
        return [self.get(name, v.version) for v in sorted(versions, key=lambda v: int(v.version))]

    def get(self, name: str, version: str | int) -> ModelVersionInfo:
        """A version by number, by alias (``champion``/``challenger``) or by version label."""
        from mlflow.exceptions import MlflowException

        validate_name("model", name)
        self._require_model(name)
        version = str(version)
        ref = parse_version_ref(name, version)
        if ref.label:
            version = version_of_label(name, ref.label, self.versions_with_label(name, ref.label))
        try:
            if version in ALIASES:
                mv = self.client.get_model_version_by_alias(name, version)
            elif version.isdigit():
                mv = self.client.get_model_version(name, version)
            else:
                raise InvalidInput(
                    f"invalid version {version!r} for {name}",
                    hint="Give a version number or one of: champion, challenger.",
                )
        except MlflowException as exc:
            raise no_such_version(name, version) from exc
        rm = self.client.get_registered_model(name)
        aliases = sorted(a for a, v in (rm.aliases or {}).items() if str(v) == str(mv.version))
        tags = dict(mv.tags or {})
        logged_uri = mv.source
        if mv.source.startswith("models:/m-"):
            logged = self.client.get_logged_model(mv.source.removeprefix("models:/"))
            logged_uri = logged.artifact_location
        return version_info(
            name=name,
            version=str(mv.version),
            aliases=aliases,
            run_id=mv.run_id,
            source=mv.source,
            artifact_uri=logged_uri,
            status=mv.status,
            description=mv.description,
            tags=tags,
            created_at_ms=int(mv.creation_timestamp or 0),
        )

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version an alias points at, or None when unset."""
        self._require_model(name)
        rm = self.client.get_registered_model(name)
        v = (rm.aliases or {}).get(alias)
        return str(v) if v is not None else None

    def verified_local_path(self, info: ModelVersionInfo) -> Path:
        """The model directory, after checking it against the registered manifest. For
        handing to external tools (``mlflow models serve``) only: they read the files again,
        so in-process loading goes through ``verified_files`` / ``load`` instead."""
        _require_servable(info)
        return verify_artifact(info.artifact_uri, info.artifact_sha256, ref=info.ref)

    def verified_files(self, info: ModelVersionInfo) -> dict[str, bytes]:
        """The version's model files, each read once and checked against the manifest."""
        _require_servable(info)
        return read_verified(info.artifact_uri, info.artifact_sha256, ref=info.ref)

    def load(self, name: str, version: str | int) -> Any:
        """The model, deserialized from its verified bytes: a scikit-learn estimator (skops)
        or, for an ONNX version, a ``core.optimizer.predictor.OnnxPredictor``."""
        info = self.get(name, version)
        files = self.verified_files(info)
        if check_safe_flavors(artifact_flavors(files), ref=info.ref) == "sklearn":
            return sklearn_from_bytes(files, ref=info.ref)
        from core.optimizer.predictor import OnnxPredictor

        return OnnxPredictor(onnx_bytes(files, ref=info.ref))

    def load_sklearn(self, name: str, version: str | int) -> Any:
        """The scikit-learn estimator of a version, built by skops from its verified bytes."""
        info = self.get(name, version)
        files = self.verified_files(info)
        if check_safe_flavors(artifact_flavors(files), ref=info.ref) != "sklearn":
            raise InvalidInput(
                f"{info.ref} is not a scikit-learn model",
                hint=f"See `agent models show {name}` for its versions and their runtimes.",
            )
        return sklearn_from_bytes(files, ref=info.ref)

    def _require_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        validate_name("model", name)  # before it reaches a filter string or a path
        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            raise NotFound(
                f"no registered model named {name!r}",
                hint="See `agent models list` for registered models.",
            ) from exc


def tracker_facts(run: Any) -> dict[str, str]:
    """Version tags our code writes from what the tracker recorded for a run: its label
    column (reserved) and the lineage of its ``training`` dataset (``logged:training``)."""
    out: dict[str, str] = {}
    label = tracker_label_column(run.data.params)
    if label:
        out[LABEL_COLUMN_TAG] = label
    digest = run.data.tags.get("dataset_digest.training")
    rows = local_path(f"{run.info.artifact_uri}/datasets/training.parquet")
    if digest and "dataset_digest" not in run.data.tags and rows.is_file():
        out.update(dataset_digest=digest, dataset_name="training")
    return out


def _log_frame(frame: Any, name: str) -> None:
    """Keep the rows themselves (MLflow's dataset input records only schema and digest)."""
    import mlflow

    validate_name("dataset", name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="datasets")


def verify_artifact(artifact_uri: str, expected_sha256: str | None, *, ref: str) -> Path:
    """Refuse to hand out a model directory that does not match its registered manifest."""
    read_verified(artifact_uri, expected_sha256, ref=ref)
    return local_path(artifact_uri)
