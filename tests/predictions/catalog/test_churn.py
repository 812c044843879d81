"""The churn model: its synthetic world, its quality against the truth, and its answers.

What every catalog model promises (schema, generator, JSON answers, artifact) is
checked in ``test_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from predictions.catalog import fast
from predictions.catalog.base import TRUTH_PREFIX
from predictions.catalog.churn import BAND_THRESHOLDS, MODEL
from predictions.catalog.export import export_artifact

TRAIN_ROWS = MODEL.default_training_rows
TEST_ROWS = 20_000


@pytest.fixture(scope="module")
def fitted() -> dict:
    """The artifact as fit returns it, with the fitted scikit-learn objects."""
    return MODEL.fit(MODEL.generate(TRAIN_ROWS, seed=1), seed=0)


@pytest.fixture(scope="module")
def artifact(fitted) -> dict:
    """The artifact as the registry stores and serves it."""
    return export_artifact(fitted)


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    return MODEL.generate(TEST_ROWS, seed=2)


def _scores(answers: list[dict]) -> np.ndarray:
    return np.array([answer[MODEL.main_score] for answer in answers])


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


# --- Generator -----------------------------------------------------------------------------


@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_generated_labels_are_draws_of_the_true_probability(drift):
    frame = MODEL.generate(20_000, seed=3, drift=drift)

    assert set(frame["churned"].unique()) <= {0, 1}
    assert frame["truth_probability"].between(0, 1).all()


def test_drift_moves_usage_down_and_churn_up():
    calm = MODEL.generate(20_000, seed=4, drift=0.0)
    drifted = MODEL.generate(20_000, seed=4, drift=1.0)

    assert drifted["usage_trend_pct"].mean() < calm["usage_trend_pct"].mean() - 8.0
    assert drifted["nps_score"].mean() < calm["nps_score"].mean() - 0.8
    assert drifted["churned"].mean() > calm["churned"].mean() + 0.15


# --- Answers -------------------------------------------------------------------------------


def test_answer_holds_the_probability_band_and_drivers(artifact):
    frame = MODEL.feature_frame([MODEL.example_row()])

    (answer,) = MODEL.predict(artifact, frame)

    assert MODEL.main_score == "churn_probability"
    assert set(answer) == {"churn_probability", "risk_band", "top_drivers"}
    assert type(answer["churn_probability"]) is float
    assert 0.0 <= answer["churn_probability"] <= 1.0
    assert answer["churn_probability"] == round(answer["churn_probability"], 4)
    assert answer["risk_band"] in {"low", "medium", "high"}
    for driver in answer["top_drivers"]:
        assert set(driver) == {"feature", "value", "contribution"}
        assert driver["feature"] in MODEL.feature_names()
        assert type(driver["contribution"]) is float


def test_band_matches_the_documented_thresholds(artifact, fresh):
    answers = MODEL.predict(artifact, fresh[MODEL.feature_names()].head(3000))
    low, high = BAND_THRESHOLDS

    for answer in answers:
        score = answer[MODEL.main_score]
        expected = "high" if score >= high else "medium" if score >= low else "low"
        assert answer["risk_band"] == expected
    assert {answer["risk_band"] for answer in answers} == {"low", "medium", "high"}


def test_an_unhappy_client_scores_higher_and_its_drivers_say_why(artifact):
    # Given an ordinary client and the same client with tickets piling up and late payments
    happy = MODEL.example_row()
    unhappy = {**happy, "support_tickets_90d": 25, "late_payments_12m": 5, "nps_score": 3, "usage_trend_pct": -40.0}

    calm, worried = MODEL.predict(artifact, MODEL.feature_frame([happy, unhappy]))

    # Then the unhappy one is riskier, lands in the high band
    assert worried[MODEL.main_score] > calm[MODEL.main_score] + 0.3
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


def test_fast_path_matches_the_scikit_learn_pipeline(artifact, fitted, fresh):
    # Given rows including values beyond the training range and an unknown category
    frame = fresh[MODEL.feature_names()].head(2000).copy()
    frame.loc[0, "tenure_months"] = 240
    frame.loc[1, "hours_utilisation_pct"] = 250.0
    frame.loc[2, "usage_trend_pct"] = -100.0
    frame.loc[3, "support_tickets_90d"] = 200
    frame.loc[4, "service_line"] = "catering"

    scores = np.array([a["churn_probability"] for a in MODEL.predict(artifact, frame)])
    inputs = frame.assign(has_executive_sponsor=frame["has_executive_sponsor"].astype(float))
    expected = fitted["pipeline"].predict_proba(inputs)[:, 1]

    np.testing.assert_allclose(scores, expected, atol=6e-5)  # answers carry 4 decimals
    served, preprocess = (a["pipeline"].named_steps["preprocess"] for a in (artifact, fitted))
    np.testing.assert_allclose(fast.encode(served, frame), preprocess.transform(inputs), rtol=0, atol=1e-9)
