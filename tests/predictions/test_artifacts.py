"""Artifacts: only reviewed types are written or loaded; the stored digest is checked every time."""

from __future__ import annotations

import numpy.testing
import pytest
from sklearn.linear_model import LogisticRegression

from predictions.artifacts import ArtifactError, artifact_load, artifact_path, artifact_write


def test_a_plain_estimator_round_trips(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])

    stored = artifact_write(slug="churn", artifact={"pipeline": model, "threshold": 0.5})
    loaded = artifact_load(relative_path=stored.relative_path, sha256=stored.sha256)

    assert loaded["threshold"] == 0.5
    assert loaded["pipeline"].predict([[2.5]]).tolist() == [1]
    assert artifact_path(stored.relative_path).name == f"{stored.sha256}.skops"


def test_an_artifact_holding_a_function_that_runs_code_is_refused(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path

    with pytest.raises(ArtifactError, match=r"not trusted: numpy\.testing"):
        artifact_write(slug="churn", artifact={"callback": numpy.testing.assert_equal})


@pytest.mark.parametrize("path", ["../outside.skops", "/etc/passwd"])
def test_paths_outside_the_artifact_root_are_refused(settings, tmp_path, path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"

    with pytest.raises(ArtifactError, match="outside ARTIFACT_ROOT"):
        artifact_load(relative_path=path, sha256="0" * 64)
