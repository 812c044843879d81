"""Migration predictions/0003: versions trained with skops artifacts keep serving after the upgrade."""

from __future__ import annotations

import collections
import hashlib
import importlib

import pytest
import skops.io
from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from predictions.catalog import CATALOG
from predictions.catalog.export import export_artifact
from predictions.models import ModelVersion
from predictions.serving import ModelUnavailable, registry

migration = importlib.import_module("predictions.migrations.0003_artifacts_exported_to_npz")


def _run_migration() -> None:
    """The migration's function with the models as they were before it, as `migrate` runs it."""
    apps_before = MigrationLoader(connection).project_state(("predictions", "0002_bulk_jobs")).apps
    migration.export_skops_artifacts(apps_before, None)


def _as_skops_version(version: ModelVersion, artifact: dict, *, tamper: bool = False) -> bytes:
    """Point ``version`` at a skops file of ``artifact``, as training wrote them before."""
    data = skops.io.dumps(artifact)
    path = settings.ARTIFACT_ROOT / "churn" / f"v{version.number}.skops"
    path.write_bytes(data + (b"changed" if tamper else b""))
    version.artifact_path, version.sha256 = f"churn/{path.name}", hashlib.sha256(data).hexdigest()
    version.save(update_fields=["artifact_path", "sha256"])
    return data


def test_a_skops_artifact_is_converted_and_serves_the_same_answers(train):
    # Given an active version whose artifact is a skops file of scikit-learn's fitted objects
    spec = CATALOG["churn"]
    version = train("churn")
    fitted = spec.fit(spec.generate(3_000, seed=5), seed=0)
    _as_skops_version(version, fitted)

    # When the migration runs
    _run_migration()

    # Then the version points at a verified .npz, and serves what scikit-learn's objects answer
    version.refresh_from_db()
    assert version.artifact_path.endswith(".npz")
    converted = settings.ARTIFACT_ROOT / version.artifact_path
    assert hashlib.sha256(converted.read_bytes()).hexdigest() == version.sha256
    assert version.artifact_bytes == converted.stat().st_size
    rows = spec.feature_frame([spec.example_row()])
    assert spec.predict(registry.get("churn").artifact, rows) == spec.predict(export_artifact(fitted), rows)


def test_a_tampered_skops_artifact_is_left_as_it_was_and_still_refused(train):
    # Given a version whose skops file no longer matches its digest
    spec = CATALOG["churn"]
    version = train("churn")
    _as_skops_version(version, spec.fit(spec.generate(3_000, seed=5), seed=0), tamper=True)
    before = (version.artifact_path, version.sha256)

    # When the migration runs
    _run_migration()

    # Then nothing about the version changed, and it is refused as before
    version.refresh_from_db()
    assert (version.artifact_path, version.sha256) == before
    with pytest.raises(ModelUnavailable):
        registry.get("churn")


def test_a_version_holding_an_untrusted_type_is_left_and_logged_and_the_others_converted(train, caplog):
    # Given two versions: one whose skops file holds a type never trusted, one ordinary
    spec = CATALOG["churn"]
    odd, ordinary = train("churn"), train("churn", seed=1)
    _as_skops_version(odd, {"counts": collections.Counter(a=1)})
    _as_skops_version(ordinary, spec.fit(spec.generate(3_000, seed=5), seed=0))

    # When the migration runs
    _run_migration()

    # Then the odd one keeps its skops artifact, with the reason logged; the other is converted
    odd.refresh_from_db()
    ordinary.refresh_from_db()
    assert odd.artifact_path.endswith(".skops")
    assert f"churn v{odd.number}" in caplog.text and "collections.Counter" in caplog.text
    assert ordinary.artifact_path.endswith(".npz")
