from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from predictions.models import Dataset, MLModel, ModelVersion, VersionStatus


@dataclass(frozen=True)
class ActivePointer:
    """Just enough of the active version to decide whether a process must reload it."""

    version_id: int
    model_id: int
    number: int
    artifact_path: str
    sha256: str


def active_pointer(slug: str) -> ActivePointer | None:
    row = (
        ModelVersion.objects.filter(model__slug=slug, status=VersionStatus.ACTIVE)
        .values_list("id", "model_id", "number", "artifact_path", "sha256")
        .first()
    )
    return ActivePointer(*row) if row else None


def version_pointer(version_id: int) -> ActivePointer | None:
    """The same for any version by id, whatever its status (jobs pinned to a version)."""
    row = (
        ModelVersion.objects.filter(pk=version_id)
        .values_list("id", "model_id", "number", "artifact_path", "sha256")
        .first()
    )
    return ActivePointer(*row) if row else None


def active_version(model: MLModel) -> ModelVersion | None:
    return model.versions.filter(status=VersionStatus.ACTIVE).first()


def catalog_models() -> QuerySet[MLModel]:
    """Models the catalog still defines (a row left by a removed catalog entry is ignored)."""
    from predictions.catalog import CATALOG

    return MLModel.objects.filter(slug__in=list(CATALOG))


def models_with_active_versions() -> list[tuple[MLModel, ModelVersion | None]]:
    models = list(catalog_models())
    active = {
        v.model_id: v
        for v in ModelVersion.objects.filter(status=VersionStatus.ACTIVE).defer("reference_profile", "params")
    }
    return [(model, active.get(model.id)) for model in models]


def versions_of(model: MLModel) -> QuerySet[ModelVersion]:
    return model.versions.defer("reference_profile").order_by("-number")


def previous_active_version(model: MLModel) -> ModelVersion | None:
    """The version that was active before the current one: the latest archived one that ever was."""
    return (
        model.versions.filter(status=VersionStatus.ARCHIVED, activated_at__isnull=False)
        .order_by("-activated_at")
        .first()
    )


def datasets_of(model: MLModel | None = None) -> QuerySet[Dataset]:
    datasets = Dataset.objects.select_related("model", "uploaded_by")
    return datasets.filter(model=model) if model else datasets


def version_by_number(*, model_id: int, number: int) -> ModelVersion | None:
    return ModelVersion.objects.filter(model_id=model_id, number=number).defer("reference_profile").first()
