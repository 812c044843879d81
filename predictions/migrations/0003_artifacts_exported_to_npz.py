"""Versions trained before artifacts were exported: their skops files are converted to .npz.

Serving now reads only exported artifacts (predictions/catalog/compiled.py), so each skops
artifact is loaded once more here, exported, and written beside it; the version then points at
the new file and its digest. The skops file stays where it was.

A version that cannot be converted (its file missing, changed since training, or holding a
type that was never trusted) keeps its skops artifact and is logged: it was refused before
and still is, and the upgrade goes on for the others. If it is a model's active version, that
model's health turns red until a version is trained or promoted (`manage.py train_models`).

Irreversible: the versions' digests now name the .npz files, which earlier code cannot read.
"""

from __future__ import annotations

import logging

from django.db import migrations

logger = logging.getLogger(__name__)

# The types the skops loader trusted, beyond its own defaults, when these files were written.
SKOPS_TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        "scipy.interpolate._bsplines.BSpline",
        "scipy._lib.array_api_compat.numpy._aliases.asarray",
    }
)


def _exported(data: bytes) -> dict:
    import skops.io

    from predictions.catalog.export import export_artifact

    types = skops.io.get_untrusted_types(data=data)
    untrusted = sorted(set(types) - SKOPS_TRUSTED_TYPES)
    if untrusted:
        raise ValueError(f"holds types that were never trusted: {', '.join(untrusted)}")
    return export_artifact(skops.io.loads(data, trusted=types))


def export_skops_artifacts(apps, schema_editor):
    from predictions.artifacts import artifact_verified_bytes, artifact_write

    ModelVersion = apps.get_model("predictions", "ModelVersion")
    for version in ModelVersion.objects.filter(artifact_path__endswith=".skops").select_related("model"):
        try:
            data = artifact_verified_bytes(relative_path=version.artifact_path, sha256=version.sha256)
            stored = artifact_write(slug=version.model.slug, artifact=_exported(data))
        except Exception as exc:  # one version that cannot be converted must not stop the upgrade
            logger.error(
                "%s v%s (%s) keeps its skops artifact %s and will be refused: %s",
                version.model.slug, version.number, version.status, version.artifact_path, exc,
            )  # fmt: skip
            continue
        version.artifact_path, version.sha256 = stored.relative_path, stored.sha256
        version.artifact_bytes = stored.size_bytes
        version.save(update_fields=["artifact_path", "sha256", "artifact_bytes"])


class Migration(migrations.Migration):
    dependencies = [("predictions", "0002_bulk_jobs")]

    operations = [migrations.RunPython(export_skops_artifacts)]
