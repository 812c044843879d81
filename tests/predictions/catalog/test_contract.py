"""The catalog contract (``predictions/catalog/base.py``), checked once for every model.

What a model promises whatever it computes: a well-formed feature schema, a reproducible
generator whose values the schema accepts, training from the feature and target columns only,
JSON-ready answers that hold the main score as a float for any input the schema accepts, one
answer per row in row order, an artifact file that serves the same answers without
scikit-learn, and no Django. What each model computes, and how well, is tested in its
own ``test_<model>.py``.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import typing

import numpy as np
import pandas as pd
import pytest

from predictions.catalog import CATALOG
from predictions.catalog.base import TRUTH_PREFIX, CatalogModel, Task
from predictions.catalog.compiled import artifact_from_bytes, artifact_to_bytes
from predictions.catalog.validation import check_value, validate_row

# Enough rows for every model to learn a usable fit, few enough to train all seven in seconds.
CONTRACT_TRAINING_ROWS = 3_000
NAME = re.compile(r"[a-z][a-z0-9_]*")


@pytest.fixture(scope="module", params=list(CATALOG))
def model(request) -> CatalogModel:
    return CATALOG[request.param]


@pytest.fixture(scope="module")
def artifact(model: CatalogModel) -> dict:
    """The artifact as the registry stores and serves it."""
    return model.fit_exported(model.generate(CONTRACT_TRAINING_ROWS, seed=1), seed=0)


@pytest.fixture(scope="module")
def holdout(model: CatalogModel) -> pd.DataFrame:
    """A labelled dataset as a user would upload one: feature and target columns, no truth."""
    target = [model.target.name] if model.target else []
    return model.generate(1_000, seed=3)[[*model.feature_names(), *target]]


def _extreme_rows(model: CatalogModel, n: int, seed: int) -> list[dict]:
    """Schema-valid rows drawn anywhere in the allowed ranges, bounds included."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = {}
        for feature in model.features:
            if feature.kind == "category":
                row[feature.name] = feature.categories[rng.integers(len(feature.categories))]
            elif feature.kind == "boolean":
                row[feature.name] = bool(rng.integers(2))
            else:
                bound = [feature.minimum, feature.maximum][i % 2] if i < 2 else None
                value = bound if bound is not None else rng.uniform(feature.minimum, feature.maximum)
                row[feature.name] = round(value) if feature.kind == "integer" else float(value)
        rows.append(row)
    return rows


def _finite(value) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def _negative_zeros(value) -> list:
    if isinstance(value, dict):
        return [z for item in value.values() for z in _negative_zeros(item)]
    if isinstance(value, list):
        return [z for item in value for z in _negative_zeros(item)]
    return [value] if isinstance(value, float) and value == 0 and math.copysign(1.0, value) < 0 else []


# --- Schema --------------------------------------------------------------------------------


def test_the_schema_describes_realistic_inputs(model):
    names = model.feature_names()
    assert 8 <= len(names) <= 25
    assert len(set(names)) == len(names)
    for feature in model.features:
        assert NAME.fullmatch(feature.name), feature.name
        assert feature.description, feature.name
        if feature.kind == "category":
            assert feature.example in feature.categories, feature.name
            assert len(set(feature.categories)) == len(feature.categories), feature.name
        elif feature.kind in ("number", "integer"):
            assert feature.minimum <= feature.example <= feature.maximum, feature.name
        if not feature.required:
            assert check_value(feature, feature.default) is None, feature.name
    # The example row is a valid request, as the API docs show it
    assert validate_row(model.features, model.example_row()) == (model.example_row(), {})
    assert model.target is None or model.target.name not in names
    assert model.task in typing.get_args(Task)
    assert re.fullmatch(r"[a-z][a-z-]*", model.slug)
    assert model.title and model.summary and model.entity_label


# --- Generator -----------------------------------------------------------------------------


def test_generator_is_deterministic_per_seed_and_makes_the_rows_asked_for(model):
    pd.testing.assert_frame_equal(model.generate(500, seed=7), model.generate(500, seed=7))
    assert not model.generate(500, seed=7).equals(model.generate(500, seed=8))
    assert len(model.generate(1_001, seed=7)) == 1_001


@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_generated_values_are_accepted_by_the_schema(model, drift):
    frame = model.generate(60_000, seed=11, drift=drift)

    target = [model.target.name] if model.target else []
    assert {*model.feature_names(), *target} <= set(frame.columns)
    assert any(column.startswith(TRUTH_PREFIX) for column in frame.columns)
    for feature in model.features:
        values = frame[feature.name]
        assert values.notna().all(), feature.name
        if feature.kind == "category":
            assert set(values.unique()) <= set(feature.categories), feature.name
        elif feature.kind == "boolean":
            assert values.dtype == bool, feature.name
        else:
            if feature.kind == "integer":
                assert pd.api.types.is_integer_dtype(values), feature.name
            assert values.min() >= feature.minimum, feature.name
            assert values.max() <= feature.maximum, feature.name


# --- Training ------------------------------------------------------------------------------


def test_training_uses_only_the_feature_and_target_columns(model):
    # Given truth columns that are scrambled
    frame = model.generate(CONTRACT_TRAINING_ROWS, seed=5)
    scrambled = frame.copy()
    for column in [c for c in frame.columns if c.startswith(TRUTH_PREFIX)]:
        scrambled[column] = np.random.default_rng(0).permutation(scrambled[column].to_numpy())

    # Then the trained model answers the same
    rows = frame[model.feature_names()].iloc[:200]
    assert model.predict(model.fit(frame, seed=0), rows) == model.predict(model.fit(scrambled, seed=0), rows)


def test_evaluate_reports_plain_float_metrics_from_a_dataset_without_truth(model, artifact, holdout):
    metrics = model.evaluate(artifact, holdout)

    assert metrics
    assert all(isinstance(value, float) for value in metrics.values()), metrics
    assert metrics["rows"] == len(holdout)


# --- Answers -------------------------------------------------------------------------------


def test_an_answer_is_json_ready_with_its_main_score_a_float(model, artifact):
    (answer,) = model.predict(artifact, model.feature_frame([model.example_row()]))

    assert type(answer[model.main_score]) is float
    assert math.isfinite(answer[model.main_score])
    assert json.loads(json.dumps(answer)) == answer
    # main_score names the key; it is not an answer key of its own
    assert "main_score" not in answer or model.main_score == "main_score"
    assert not _negative_zeros(answer)  # no "-0.0" shown to a user


def test_any_schema_valid_input_gets_a_finite_json_answer(model, artifact):
    answers = model.predict(artifact, model.feature_frame(_extreme_rows(model, 500, seed=11)))

    assert len(answers) == 500
    for answer in answers:
        assert _finite(answer), answer
        assert isinstance(answer[model.main_score], float)
        assert not _negative_zeros(answer), answer
    json.dumps(answers, allow_nan=False)


def test_a_batch_gets_one_answer_per_row_in_row_order(model, artifact):
    rows = model.generate(8, seed=2)[model.feature_names()]

    batch = model.predict(artifact, rows)

    assert batch == [model.predict(artifact, rows.iloc[[i]])[0] for i in range(len(rows))]
    assert model.predict(artifact, rows.iloc[::-1]) == batch[::-1]
    assert model.predict(artifact, rows.iloc[:0]) == []


def test_a_request_without_the_optional_features_gets_their_defaults(model, artifact):
    required = {f.name: f.example for f in model.features if f.required}
    explicit = {**required, **{f.name: f.default for f in model.features if not f.required}}

    assert model.predict(artifact, model.feature_frame([required])) == model.predict(
        artifact, model.feature_frame([explicit])
    )


def test_a_batch_of_ten_thousand_rows_gets_one_answer_each(model, artifact):
    # Speed is measured in bench/predict_bench.py, not here.
    batch = model.generate(10_000, seed=6)[model.feature_names()]

    answers = model.predict(artifact, batch)

    assert len(answers) == 10_000
    assert all(isinstance(answer[model.main_score], float) for answer in answers)


# --- Artifact and imports ------------------------------------------------------------------


def test_the_artifact_round_trips_through_its_file_format(model, artifact, holdout):
    # Given the artifact written to bytes and read back
    loaded = artifact_from_bytes(artifact_to_bytes(artifact))

    # Then the loaded artifact answers and evaluates exactly as the original
    rows = holdout[model.feature_names()].iloc[:500]
    assert model.predict(loaded, rows) == model.predict(artifact, rows)
    assert model.evaluate(loaded, holdout) == model.evaluate(artifact, holdout)


def test_answers_from_an_artifact_file_need_neither_scikit_learn_nor_scipy_nor_skops(model, artifact, tmp_path):
    # Given the artifact in a file
    path = tmp_path / "artifact.npz"
    path.write_bytes(artifact_to_bytes(artifact))

    # When a fresh interpreter loads it and answers the example request
    code = (
        "import json, sys; from pathlib import Path; "
        "from predictions.catalog import get_catalog_model; "
        "from predictions.catalog.compiled import artifact_from_bytes; "
        f"spec = get_catalog_model({model.slug!r}); "
        f"artifact = artifact_from_bytes(Path({str(path)!r}).read_bytes()); "
        "answer = spec.predict(artifact, spec.feature_frame([spec.example_row()]))[0]; "
        "heavy = sorted({m.split('.')[0] for m in sys.modules if m.startswith(('sklearn', 'skops', 'scipy'))}); "
        "print(json.dumps({'heavy': heavy, 'answer': answer}))"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)

    # Then it answers as this process does, without importing any of them
    printed = json.loads(result.stdout)
    assert printed["heavy"] == []
    assert printed["answer"] == model.predict(artifact, model.feature_frame([model.example_row()]))[0]


def test_the_catalog_imports_without_django():
    # Importing any catalog module imports the package, hence all of them: one interpreter checks all.
    modules = ["predictions.catalog.fast", *(type(model).__module__ for model in CATALOG.values())]
    code = (
        f"import sys, {', '.join(modules)}; "
        "print(sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)

    assert result.stdout.strip() == "[]", result.stdout
