from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import numpy as np
import pandas as pd
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import User
from history.services import RecordContext, prediction_records_writer
from predictions.artifacts import (
    ArtifactError,
    StoredArtifact,
    artifact_load,
    artifact_verified_bytes,
    artifact_write,
)
from predictions.catalog import CATALOG, get_catalog_model
from predictions.catalog.base import CatalogModel, split_holdout
from predictions.catalog.profile import build_reference_profile
from predictions.catalog.validation import validate_rows
from predictions.datasets import FileFormatError, check_file, dataset_frame, format_from_name
from predictions.models import Dataset, MLModel, ModelVersion, VersionStatus
from predictions.selectors import previous_active_version
from predictions.serving import ModelUnavailable, registry
from predictions.usage import usage_count

# Rows of the holdout whose outputs form the reference profile of the main score.
PROFILE_SAMPLE_ROWS = 5_000


class PredictionInputError(Exception):
    """Rows failed validation; ``errors`` maps row index to field errors."""

    def __init__(self, errors: dict[int, dict[str, str]]):
        super().__init__(f"{len(errors)} row(s) are invalid")
        self.errors = errors


class VersionStateError(Exception):
    """A promotion or rollback that the version's state does not allow."""


# --- Catalog ---------------------------------------------------------------------------------


def mlmodels_sync_catalog() -> list[MLModel]:
    """Make sure every catalog model has its MLModel row (idempotent)."""
    synced = []
    for slug, spec in CATALOG.items():
        model, _ = MLModel.objects.update_or_create(slug=slug, defaults={"title": spec.title, "task": spec.task})
        synced.append(model)
    return synced


# --- Training --------------------------------------------------------------------------------


@dataclass
class TrainingData:
    frame: pd.DataFrame
    digest: str
    params: dict[str, Any] = field(default_factory=dict)
    dataset: Dataset | None = None


def training_data_generated(*, spec: CatalogModel, rows: int, seed: int, drift: float) -> TrainingData:
    frame = spec.generate(rows, seed=seed, drift=drift)
    digest = hashlib.sha256(f"generator:{spec.slug}:{rows}:{seed}:{drift}".encode()).hexdigest()
    return TrainingData(frame, digest, {"source": "generator", "rows": rows, "seed": seed, "drift": drift})


def training_data_from_dataset(*, dataset: Dataset) -> TrainingData:
    frame = dataset_frame(dataset)
    return TrainingData(frame, dataset.sha256, {"source": "dataset", "dataset_id": dataset.pk}, dataset)


def model_train(
    *, slug: str, data: TrainingData, created_by: str, seed: int = 0, activate_if_first: bool = True
) -> ModelVersion:
    """Train a new candidate version; it becomes active only if the model has none yet."""
    spec = get_catalog_model(slug)
    started = time.perf_counter()
    train, holdout = split_holdout(data.frame, seed=seed)
    # Written before the transaction: serialising and fsyncing must not hold the database lock.
    stored = artifact_write(slug=slug, artifact=spec.fit_exported(train, seed=seed))
    # Read back: the metrics and the reference profile come from exactly what will be served.
    artifact = artifact_load(relative_path=stored.relative_path, sha256=stored.sha256)
    metrics = spec.evaluate(artifact, holdout)
    sample = holdout.head(PROFILE_SAMPLE_ROWS)
    scores = np.array([answer[spec.main_score] for answer in spec.predict(artifact, sample[spec.feature_names()])])
    profile = build_reference_profile(spec.features, train, scores)
    elapsed = time.perf_counter() - started
    return _version_store(
        slug=slug,
        stored=stored,
        activate_if_first=activate_if_first,
        metrics=metrics,
        data=data,
        profile=profile,
        training_rows=len(train),
        elapsed=elapsed,
        created_by=created_by,
        seed=seed,
    )


@transaction.atomic
def _version_store(
    *,
    slug: str,
    stored: StoredArtifact,
    activate_if_first: bool,
    metrics: dict[str, float],
    data: TrainingData,
    profile: dict[str, Any],
    training_rows: int,
    elapsed: float,
    created_by: str,
    seed: int,
) -> ModelVersion:
    """Number and record the version under the model's row lock (so two trainings never share
    a number, and only one of two first versions trained at once becomes active)."""
    model = MLModel.objects.select_for_update().get(slug=slug)
    number = (model.versions.aggregate(highest=Max("number"))["highest"] or 0) + 1
    version = ModelVersion.objects.create(
        model=model,
        number=number,
        artifact_path=stored.relative_path,
        sha256=stored.sha256,
        artifact_bytes=stored.size_bytes,
        metrics={name: float(value) for name, value in metrics.items()},
        params={**data.params, "seed": seed},
        training_data_digest=data.digest,
        training_rows=training_rows,
        dataset=data.dataset,
        reference_profile=profile,
        training_seconds=round(elapsed, 2),
        created_by=created_by,
    )
    if activate_if_first and not model.versions.filter(status=VersionStatus.ACTIVE).exists():
        version = version_promote(version=version)
    return version


# --- Datasets --------------------------------------------------------------------------------


class DatasetRejected(Exception):
    """The upload cannot be used at all (unreadable, wrong header, no valid row)."""

    def __init__(self, message: str, errors: list | None = None):
        super().__init__(message)
        self.errors = errors or []


def dataset_upload(*, slug: str, name: str, filename: str, data: bytes, uploaded_by: User | None) -> Dataset:
    """Validate a training file against the model's schema and target, then store it.

    The file is checked before any database write, so a long check holds no lock.
    """
    if slug not in CATALOG:
        raise DatasetRejected(f"Unknown model {slug!r}; choose one of {', '.join(CATALOG)}.")
    spec = CATALOG[slug]
    file_format = format_from_name(filename)
    if file_format is None:
        raise DatasetRejected("The file must be .csv or .parquet.")
    try:
        checked = check_file(spec, data, file_format, with_target=True)
    except FileFormatError as exc:
        raise DatasetRejected(str(exc)) from None
    if checked.frame.empty:
        raise DatasetRejected(f"No valid row in the file ({checked.invalid_rows} invalid).", checked.errors)
    dataset = Dataset(
        model=MLModel.objects.get(slug=slug),
        name=name,
        file_format=file_format,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        rows=len(checked.frame),
        invalid_rows=checked.invalid_rows,
        errors=checked.errors,
        uploaded_by=uploaded_by,
    )
    dataset.file.save(f"{slug}-{dataset.sha256[:12]}.{file_format}", ContentFile(data), save=False)
    dataset.save()
    return dataset


# --- Promotion and rollback ------------------------------------------------------------------


@transaction.atomic
def version_promote(*, version: ModelVersion) -> ModelVersion:
    """Make ``version`` the one every process serves; the previous active one is archived."""
    model = MLModel.objects.select_for_update().get(pk=version.model_id)
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.status == VersionStatus.ACTIVE:
        raise VersionStateError(f"{model.slug} v{version.number} is already active.")
    try:  # a process that starts later could not load it, and would have nothing to serve
        artifact_verified_bytes(relative_path=version.artifact_path, sha256=version.sha256)
    except ArtifactError as exc:
        raise VersionStateError(f"{model.slug} v{version.number} cannot be promoted: {exc}.") from None
    model.versions.filter(status=VersionStatus.ACTIVE).update(status=VersionStatus.ARCHIVED)
    version.status = VersionStatus.ACTIVE
    version.activated_at = timezone.now()
    model.serving_error, model.serving_error_at = "", None  # errors were about the version before
    model.save(update_fields=["serving_error", "serving_error_at"])
    try:
        version.save(update_fields=["status", "activated_at"])
    except IntegrityError:  # the database refuses a second active version, whatever the code did
        raise VersionStateError(f"{model.slug} already has an active version.") from None
    return version


@transaction.atomic
def model_rollback(*, model: MLModel) -> ModelVersion:
    """Serve again the version that was active before the current one."""
    model = MLModel.objects.select_for_update().get(pk=model.pk)
    previous = previous_active_version(model)
    if previous is None:
        raise VersionStateError(f"{model.slug} has no earlier active version to roll back to.")
    return version_promote(version=previous)


# --- Serving health, shared by every process through the database ------------------------------


def model_record_serving_error(*, slug: str, error: str) -> None:
    MLModel.objects.filter(slug=slug).exclude(serving_error=error).update(
        serving_error=error, serving_error_at=timezone.now()
    )


def model_clear_serving_error(*, slug: str) -> None:
    MLModel.objects.filter(slug=slug).exclude(serving_error="").update(serving_error="", serving_error_at=None)


# --- Predictions -----------------------------------------------------------------------------


# Rows predicted and handed to the history writer at a time: large enough for numpy to pay,
# small enough that the database ingests one part while the next is predicted.
PREDICT_PART_ROWS = 2_000


@dataclass
class PredictionBatch:
    slug: str
    version_number: int
    prediction_ids: list[int]
    indexes: list[int]
    outputs: list[dict[str, Any]]
    errors: dict[int, dict[str, str]]


@dataclass(frozen=True)
class Caller:
    """Who asks for predictions; every record made for them says so."""

    source: str
    correlation_id: str
    api_key_prefix: str = ""
    bulk_job_id: UUID | None = None
    scheduled_execution_id: int | None = None


def predictions_make(
    *,
    slug: str,
    rows: list[Any],
    entity_ids: list[str],
    caller: Caller,
    partial: bool = False,
    version_id: int | None = None,
    scheduled_execution_ids: list[int] | None = None,
) -> PredictionBatch:
    """Validate, predict with the active version (or ``version_id``), record every answer.

    Without ``partial``, one invalid row fails the whole call and nothing is recorded; with
    it, valid rows are answered and recorded and invalid ones reported by index.
    ``scheduled_execution_ids`` (one per row) records rows of several scheduled executions
    scored together, each under its own execution.
    """
    spec = get_catalog_model(slug)
    checked = validate_rows(spec.features, rows)
    if checked.errors and (not partial or not checked.rows):
        usage_count(slug=slug, requests=1, errors=0)  # the client's error, not the model's
        raise PredictionInputError(checked.errors)
    try:
        loaded = registry.get(slug) if version_id is None else registry.get_version(slug, version_id)
    except ModelUnavailable:
        usage_count(slug=slug, requests=1, errors=1)
        raise
    context = RecordContext(
        model_id=loaded.model_id,
        version_id=loaded.version_id,
        source=caller.source,
        correlation_id=caller.correlation_id,
        api_key_prefix=caller.api_key_prefix,
        created_at=timezone.now(),
        bulk_job_id=caller.bulk_job_id,
        scheduled_execution_id=caller.scheduled_execution_id,
    )
    valid_entity_ids = [entity_ids[i] for i in checked.indexes]
    valid_execution_ids = [scheduled_execution_ids[i] for i in checked.indexes] if scheduled_execution_ids else None
    outputs: list[dict[str, Any]] = []
    with prediction_records_writer(context=context, count=len(checked.rows)) as writer:
        for start in range(0, len(checked.rows), PREDICT_PART_ROWS):
            part = checked.rows[start : start + PREDICT_PART_ROWS]
            started = time.perf_counter()
            answers = spec.predict(loaded.artifact, spec.feature_frame(part))
            writer.write(
                features=part,
                outputs=answers,
                entity_ids=valid_entity_ids[start : start + PREDICT_PART_ROWS],
                main_scores=[answer[spec.main_score] for answer in answers],
                latency_ms=round((time.perf_counter() - started) * 1000 / len(answers), 4),
                scheduled_execution_ids=valid_execution_ids[start : start + PREDICT_PART_ROWS]
                if valid_execution_ids
                else None,
            )
            outputs.extend(answers)
    ids = writer.ids
    usage_count(slug=slug, requests=1, errors=0)
    return PredictionBatch(slug, loaded.number, ids, checked.indexes, outputs, checked.errors)
