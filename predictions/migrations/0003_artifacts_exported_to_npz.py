"""Versions trained before artifacts were exported: their skops files are converted to .npz.

Serving now reads only exported artifacts (predictions/catalog/compiled.py), so each skops
artifact is loaded once more here, exported, and written beside it; the version then points at
the new file and its digest. The skops file is left where it was. An artifact that is missing
or does not match its digest is left as it is: it was refused before, and still is.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
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


def _exported(data: bytes) -> dict | None:
    import skops.io

    from predictions.catalog.export import export_artifact

    types = skops.io.get_untrusted_types(data=data)
    if set(types) - SKOPS_TRUSTED_TYPES:
        return None
    return export_artifact(skops.io.loads(data, trusted=types))


def export_skops_artifacts(apps, schema_editor):
    from pathlib import Path

    from predictions.artifacts import artifact_write

    ModelVersion = apps.get_model("predictions", "ModelVersion")
    root = Path(settings.ARTIFACT_ROOT)
    for version in ModelVersion.objects.filter(artifact_path__endswith=".skops").select_related("model"):
        path = root / version.artifact_path
        try:
            data = path.read_bytes()
        except OSError:
            logger.warning("v%s of %s: artifact %s unreadable, left as is", version.number, version.model_id, path)
            continue
        if hashlib.sha256(data).hexdigest() != version.sha256:
            logger.warning("v%s of %s: artifact %s does not match its digest, left as is", version.number, version.model_id, path)
            continue
        artifact = _exported(data)
        if artifact is None:
            continue
        stored = artifact_write(slug=version.model.slug, artifact=artifact)
        version.artifact_path, version.sha256, version.artifact_bytes = stored.relative_path, stored.sha256, stored.size_bytes
        version.save(update_fields=["artifact_path", "sha256", "artifact_bytes"])


class Migration(migrations.Migration):
    dependencies = [("predictions", "0002_bulk_jobs")]

    # Backwards: the versions keep their .npz artifacts (the skops files are still on disk).
    operations = [migrations.RunPython(export_skops_artifacts, migrations.RunPython.noop)]
