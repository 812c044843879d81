"""Artifacts: exported models only, in a format that builds nothing else; the digest is checked every time."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from predictions.artifacts import ArtifactError, artifact_load, artifact_path, artifact_write
from predictions.catalog import fast
from predictions.catalog.compiled import FORMAT_VERSION, STRUCTURE_KEY
from predictions.catalog.export import export_artifact


def _stored_bytes(stored) -> bytes:
    return artifact_path(stored.relative_path).read_bytes()


def test_an_exported_estimator_round_trips_and_predicts_as_scikit_learn(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path
    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])

    stored = artifact_write(slug="churn", artifact=export_artifact({"pipeline": model, "threshold": 0.5}))
    loaded = artifact_load(relative_path=stored.relative_path, sha256=stored.sha256)

    assert loaded["threshold"] == 0.5
    x = np.array([[0.5], [2.5]])
    np.testing.assert_allclose(fast.linear(loaded["pipeline"], x), model.decision_function(x), rtol=0, atol=1e-12)
    assert artifact_path(stored.relative_path).name == f"{stored.sha256}.npz"


def test_an_artifact_holding_a_function_or_an_estimator_that_was_not_exported_is_refused(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path

    with pytest.raises(ArtifactError, match=r"cannot hold a builtins.function"):
        artifact_write(slug="churn", artifact={"callback": np.testing.assert_equal})
    with pytest.raises(ArtifactError, match=r"cannot hold a sklearn"):
        artifact_write(slug="churn", artifact={"pipeline": LogisticRegression()})
    assert not list(tmp_path.rglob("*.npz"))


def _rewritten(data: bytes, change) -> bytes:
    """The artifact's .npz with its JSON structure changed by ``change``."""
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    envelope = json.loads(arrays.pop(STRUCTURE_KEY).tobytes())
    structure = {**envelope, "artifact": change(envelope["artifact"])}
    buffer = io.BytesIO()
    np.savez(buffer, **{STRUCTURE_KEY: np.frombuffer(json.dumps(structure).encode(), dtype=np.uint8)}, **arrays)
    return buffer.getvalue()


def _refused_on_load(tmp_path, data: bytes) -> str:
    """Store ``data`` as an artifact (its digest recorded, as training would) and load it."""
    (tmp_path / "churn").mkdir(exist_ok=True)
    (tmp_path / "churn" / "crafted.npz").write_bytes(data)
    with pytest.raises(ArtifactError) as refused:
        artifact_load(relative_path="churn/crafted.npz", sha256=hashlib.sha256(data).hexdigest())
    return str(refused.value)


def test_a_file_naming_an_unknown_type_or_function_is_refused_even_with_a_matching_digest(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    data = _stored_bytes(artifact_write(slug="churn", artifact=export_artifact({"pipeline": model})))

    def unknown_type(structure):
        structure["dict"]["pipeline"]["step"] = "os.system"
        return structure

    def unknown_function(structure):
        step = {"step": "FunctionTransformer", "fields": {"func_name": "eval", "kw_args": None}}
        structure["dict"]["pipeline"] = step
        return structure

    assert "unknown step type 'os.system'" in _refused_on_load(tmp_path, _rewritten(data, unknown_type))
    refused = _refused_on_load(tmp_path, _rewritten(data, unknown_function))
    assert "'eval' is not one of the trusted functions" in refused


def test_a_pickled_object_array_or_a_file_of_another_format_is_refused(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path
    pickled = io.BytesIO()
    structure = np.frombuffer(b'{"format": 1, "artifact": {"dict": {"x": {"array": "a0"}}}}', dtype=np.uint8)
    np.savez(pickled, **{STRUCTURE_KEY: structure}, a0=np.array([{}], dtype=object))
    not_a_zip = b"PK\x03\x04 truncated"
    with zipfile.ZipFile(empty := io.BytesIO(), "w"):
        pass

    assert "cannot be read" in _refused_on_load(tmp_path, pickled.getvalue())
    assert "cannot be read" in _refused_on_load(tmp_path, not_a_zip)
    assert "cannot be read" in _refused_on_load(tmp_path, empty.getvalue())


@pytest.mark.parametrize("path", ["../outside.npz", "/etc/passwd"])
def test_paths_outside_the_artifact_root_are_refused(settings, tmp_path, path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"

    with pytest.raises(ArtifactError, match="outside ARTIFACT_ROOT"):
        artifact_load(relative_path=path, sha256="0" * 64)


def _structure(text: str, *, version: int = FORMAT_VERSION) -> bytes:
    """A file of the artifact format whose structure is ``text``."""
    envelope = f'{{"format": {version}, "artifact": {text}}}'
    buffer = io.BytesIO()
    np.savez(buffer, **{STRUCTURE_KEY: np.frombuffer(envelope.encode(), dtype=np.uint8)}, a0=np.arange(3.0))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_structure('{"dict": []}'), "AttributeError"),
        (_structure("[" * 100_000 + "]" * 100_000), "RecursionError"),
        (_structure('{"dict": {"s": {"slice": ["a", "b", "c"]}}}'), "not three integers"),
        (_structure('{"step": "LinearModel", "fields": {"coef_": "rm -rf", "intercept_": 0.0}}'), "cannot be a str"),
        (_structure('{"step": "LinearModel", "fields": {"coef_": {"array": "a0"}}}'), "TypeError"),
        (_structure('{"dict": {"x": {"array": "a9"}}}'), "'a9' is missing"),
        (_structure('{"dict": {"x": {"array": "__structure__"}}}'), "is missing"),
        (_structure('{"dict": {}}', version=0), "format 0, this service reads format 1: train the model again"),
        (_structure("[]"), "unexpected list"),
    ],
    ids=[
        "not-a-dict",
        "deeply-nested",
        "bad-slice",
        "coefficients-as-text",
        "missing-field",
        "unknown-array",
        "self",
        "other-format",
        "a-list",
    ],
)
def test_a_malformed_file_with_a_matching_digest_is_refused_not_crashed_on(settings, tmp_path, data, reason):
    settings.ARTIFACT_ROOT = tmp_path

    assert reason in _refused_on_load(tmp_path, data)


def test_compressed_members_are_refused_before_they_are_unpacked(settings, tmp_path):
    # Given a file as np.savez_compressed writes it: members that could unpack to far more than the file
    settings.ARTIFACT_ROOT = tmp_path
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{STRUCTURE_KEY: np.frombuffer(b'{"dict": {}}', dtype=np.uint8)})

    assert "compressed members" in _refused_on_load(tmp_path, buffer.getvalue())


def test_category_labels_that_are_not_text_are_refused_at_training_rather_than_changed(settings, tmp_path):
    # Given an encoder fitted on integer codes held in an object column (read back as text, they
    # would no longer match any request)
    settings.ARTIFACT_ROOT = tmp_path
    encoder = OneHotEncoder(handle_unknown="ignore").fit(np.array([[1], [2]], dtype=object))

    with pytest.raises(ArtifactError, match="only str"):
        artifact_write(slug="churn", artifact=export_artifact({"encoder": encoder}))
