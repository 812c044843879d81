"""The churn model: its synthetic world, its quality against the truth, and its answers."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.metrics import roc_auc_score

from predictions.catalog.base import TRUTH_PREFIX
from predictions.catalog.churn import BAND_THRESHOLDS, MODEL

TRAIN_ROWS = MODEL.default_training_rows
TEST_ROWS = 20_000


@pytest.fixture(scope="module")
def trained() -> dict:
    frame = MODEL.generate(TRAIN_ROWS, seed=1)
    started = time.perf_counter()
    artifact = MODEL.fit(frame, seed=0)
    return {"artifact": artifact, "fit_seconds": time.perf_counter() - started}


@pytest.fixture(scope="module")
def artifact(trained: dict) -> dict:
    return trained["artifact"]


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    return MODEL.generate(TEST_ROWS, seed=2)


def _scores(answers: list[dict]) -> np.ndarray:
    return np.array([answer["main_score"] for answer in answers])


# --- Quality -------------------------------------------------------------------------------


def test_ranks_fresh_clients_by_churn_well_enough_to_act_on(artifact, fresh):
    # Given a model trained on seed 1 and a fresh seed-2 sample
    # When it scores the fresh clients
    scores = _scores(MODEL.predict(artifact, fresh[MODEL.feature_names()]))

    # Then it separates churners from stayers (the bar is ROC AUC >= 0.80)
    auc = roc_auc_score(fresh["churned"], scores)
    best_possible = roc_auc_score(fresh["churned"], fresh["truth_probability"])
    print(f"churn ROC AUC vs labels {auc:.4f}; truth probability scores {best_possible:.4f}")
    assert auc >= 0.80
    # and comes within 0.02 of what the generator's own probabilities achieve
    assert auc >= best_possible - 0.02


def test_probabilities_track_the_true_churn_probability(artifact, fresh):
    # Given the generator's true churn probabilities
    truth = fresh["truth_probability"].to_numpy()

    # When the model scores the same clients
    scores = _scores(MODEL.predict(artifact, fresh[MODEL.feature_names()]))

    # Then the predicted and true probabilities agree closely, and on average
    assert np.corrcoef(scores, truth)[0, 1] >= 0.95
    assert abs(scores.mean() - truth.mean()) < 0.02


def test_high_band_clients_churn_far_more_than_low_band_ones(artifact, fresh):
    answers = MODEL.predict(artifact, fresh[MODEL.feature_names()])
    bands = np.array([answer["risk_band"] for answer in answers])
    churned = fresh["churned"].to_numpy()

    low_rate, high_rate = churned[bands == "low"].mean(), churned[bands == "high"].mean()

    assert high_rate > 0.55
    assert low_rate < 0.15


def test_evaluate_reports_holdout_metrics_from_labels_only(artifact, fresh):
    # Given a holdout with no truth columns, as a real dataset has
    holdout = fresh.drop(columns=[c for c in fresh.columns if c.startswith(TRUTH_PREFIX)])

    metrics = MODEL.evaluate(artifact, holdout)

    assert metrics["roc_auc"] >= 0.80
    assert 0.0 < metrics["base_rate"] < 1.0
    assert all(isinstance(value, float) for value in metrics.values())


def test_training_on_the_default_rows_is_quick(trained):
    assert trained["fit_seconds"] < 10.0


# --- Generator -----------------------------------------------------------------------------


def test_generator_is_deterministic_per_seed():
    assert MODEL.generate(500, seed=7).equals(MODEL.generate(500, seed=7))
    assert not MODEL.generate(500, seed=7).equals(MODEL.generate(500, seed=8))


@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_generated_values_pass_the_schema(drift):
    frame = MODEL.generate(20_000, seed=3, drift=drift)

    for feature in MODEL.features:
        column = frame[feature.name]
        if feature.kind == "category":
            assert set(column.unique()) <= set(feature.categories), feature.name
        elif feature.kind == "boolean":
            assert column.dtype == bool, feature.name
        else:
            assert column.min() >= feature.minimum, feature.name
            assert column.max() <= feature.maximum, feature.name
            if feature.kind == "integer":
                assert (column == np.round(column)).all(), feature.name
    assert set(frame["churned"].unique()) <= {0, 1}
    assert frame["truth_probability"].between(0, 1).all()


def test_drift_moves_usage_down_and_churn_up():
    calm = MODEL.generate(20_000, seed=4, drift=0.0)
    drifted = MODEL.generate(20_000, seed=4, drift=1.0)

    assert drifted["usage_trend_pct"].mean() < calm["usage_trend_pct"].mean() - 8.0
    assert drifted["nps_score"].mean() < calm["nps_score"].mean() - 0.8
    assert drifted["churned"].mean() > calm["churned"].mean() + 0.15


def test_schema_is_well_formed():
    names = MODEL.feature_names()
    assert 8 <= len(names) <= 25
    assert len(set(names)) == len(names)
    for feature in MODEL.features:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", feature.name)
        assert feature.description
        if feature.kind == "category":
            assert feature.example in feature.categories
        elif feature.kind in ("number", "integer"):
            assert feature.minimum <= feature.example <= feature.maximum
    assert MODEL.target.name not in names
    assert MODEL.main_score == "churn_probability"


# --- Answers -------------------------------------------------------------------------------


def test_answer_is_json_ready_with_probability_band_and_drivers(artifact):
    frame = MODEL.feature_frame([MODEL.example_row()])

    (answer,) = MODEL.predict(artifact, frame)

    assert set(answer) == {"churn_probability", "main_score", "risk_band", "top_drivers"}
    assert type(answer["main_score"]) is float
    assert answer["main_score"] == answer["churn_probability"]
    assert 0.0 <= answer["main_score"] <= 1.0
    assert answer["main_score"] == round(answer["main_score"], 4)
    assert answer["risk_band"] in {"low", "medium", "high"}
    for driver in answer["top_drivers"]:
        assert set(driver) == {"feature", "value", "contribution"}
        assert driver["feature"] in MODEL.feature_names()
        assert type(driver["contribution"]) is float
    assert json.loads(json.dumps(answer)) == answer


def test_band_matches_the_documented_thresholds(artifact, fresh):
    answers = MODEL.predict(artifact, fresh[MODEL.feature_names()].head(3000))
    low, high = BAND_THRESHOLDS

    for answer in answers:
        score = answer["main_score"]
        expected = "high" if score >= high else "medium" if score >= low else "low"
        assert answer["risk_band"] == expected
    assert {answer["risk_band"] for answer in answers} == {"low", "medium", "high"}


def test_an_unhappy_client_scores_higher_and_its_drivers_say_why(artifact):
    # Given an ordinary client and the same client with tickets piling up and late payments
    happy = MODEL.example_row()
    unhappy = {**happy, "support_tickets_90d": 25, "late_payments_12m": 5, "nps_score": 3, "usage_trend_pct": -40.0}

    calm, worried = MODEL.predict(artifact, MODEL.feature_frame([happy, unhappy]))

    # Then the unhappy one is riskier, lands in the high band
    assert worried["main_score"] > calm["main_score"] + 0.3
    assert worried["risk_band"] == "high"
    # and its drivers name what changed, biggest push first, all pushing risk up
    drivers = [driver["feature"] for driver in worried["top_drivers"]]
    assert set(drivers) <= {"support_tickets_90d", "late_payments_12m", "nps_score", "usage_trend_pct"}
    assert len(drivers) == 3
    contributions = [driver["contribution"] for driver in worried["top_drivers"]]
    assert contributions == sorted(contributions, reverse=True)
    assert min(contributions) > 0.0
    assert worried["top_drivers"][0]["value"] == unhappy[worried["top_drivers"][0]["feature"]]


def test_longer_commitment_lowers_risk(artifact):
    base = MODEL.example_row()
    rows = [{**base, "contract_type": kind, "tenure_months": 6} for kind in ("monthly", "annual", "multi_year")]

    monthly, annual, multi_year = _scores(MODEL.predict(artifact, MODEL.feature_frame(rows)))

    assert monthly > annual > multi_year


def test_fast_path_matches_the_scikit_learn_pipeline(artifact, fresh):
    # Given rows including values beyond the training range and an unknown category
    frame = fresh[MODEL.feature_names()].head(2000).copy()
    frame.loc[0, "tenure_months"] = 240
    frame.loc[1, "hours_utilisation_pct"] = 250.0
    frame.loc[2, "usage_trend_pct"] = -100.0
    frame.loc[3, "support_tickets_90d"] = 200
    frame.loc[4, "service_line"] = "catering"

    scores = np.array([a["churn_probability"] for a in MODEL.predict(artifact, frame)])
    inputs = frame.assign(has_executive_sponsor=frame["has_executive_sponsor"].astype(float))
    expected = artifact["pipeline"].predict_proba(inputs)[:, 1]

    np.testing.assert_allclose(scores, expected, atol=6e-5)


def test_ten_thousand_rows_are_answered_in_well_under_a_second(artifact, fresh):
    frame = fresh[MODEL.feature_names()].head(10_000)
    started = time.perf_counter()
    answers = MODEL.predict(artifact, frame)
    assert len(answers) == 10_000
    assert time.perf_counter() - started < 1.0


# --- Artifact ------------------------------------------------------------------------------


def test_artifact_round_trips_through_skops_with_only_library_types(artifact, fresh):
    data = sio.dumps(artifact)
    untrusted = sio.get_untrusted_types(data=data)

    assert all(name.split(".")[0] in {"sklearn", "numpy", "scipy"} for name in untrusted), untrusted
    loaded = sio.loads(data, trusted=untrusted)
    frame = fresh[MODEL.feature_names()].head(500)
    assert MODEL.predict(loaded, frame) == MODEL.predict(artifact, frame)


# --- Contract ------------------------------------------------------------------------------


def _extreme_rows(n: int, seed: int) -> list[dict]:
    """Schema-valid rows drawn anywhere in the allowed ranges, bounds included."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        row = {}
        for feature in MODEL.features:
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


def test_any_schema_valid_input_gets_a_finite_json_answer(artifact):
    answers = MODEL.predict(artifact, MODEL.feature_frame(_extreme_rows(500, seed=11)))

    assert len(answers) == 500
    for answer in answers:
        assert _finite(answer), answer
        assert isinstance(answer["main_score"], float)
    json.dumps(answers, allow_nan=False)


def test_module_imports_without_django():
    code = (
        "import sys, predictions.catalog.churn; "
        "sys.exit(any(m == 'django' or m.startswith('django.') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
