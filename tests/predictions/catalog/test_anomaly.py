"""The timesheet anomaly model: its synthetic world, its hit rate on injected anomalies, its answers.

What every catalog model promises (schema, generator, JSON answers, artifact) is
checked in ``test_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictions.catalog import fast
from predictions.catalog.anomaly import ANOMALY_TYPES, EXPECTED_CONTAMINATION, MODEL, _derived
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


@pytest.fixture(scope="module")
def fresh_answers(artifact, fresh) -> list[dict]:
    return MODEL.predict(artifact, fresh[MODEL.feature_names()])


def _scores(answers: list[dict]) -> np.ndarray:
    return np.array([answer[MODEL.main_score] for answer in answers])


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores, kind="stable")[:k]


# --- Quality -------------------------------------------------------------------------------


def test_most_of_the_highest_scores_are_real_anomalies(fresh, fresh_answers):
    # Given a fresh seed-2 sample with injected anomalies the model never saw labelled
    truth = fresh["truth_is_anomaly"].to_numpy()
    k = int(truth.sum())

    # When a reviewer takes as many top-scored timesheets as there are true anomalies
    top = _top_k(_scores(fresh_answers), k)

    # Then at least 60 % of them are real anomalies
    precision = truth[top].mean()
    print(f"anomaly precision at k={k} (true rate {truth.mean():.4f}): {precision:.4f}")
    assert precision >= 0.60


def test_every_kind_of_injected_anomaly_is_caught_in_part(fresh, fresh_answers):
    top = np.zeros(len(fresh), dtype=bool)
    top[_top_k(_scores(fresh_answers), int(fresh["truth_is_anomaly"].sum()))] = True

    for kind in ANOMALY_TYPES:
        caught = top[(fresh["truth_anomaly_type"] == kind).to_numpy()].mean()
        assert caught >= 0.3, kind


def test_flag_rate_matches_the_expected_contamination(fresh_answers):
    flagged = np.mean([answer["is_anomaly"] for answer in fresh_answers])

    assert EXPECTED_CONTAMINATION / 2 < flagged < EXPECTED_CONTAMINATION * 2


def test_flagged_timesheets_are_mostly_real_anomalies(fresh, fresh_answers):
    flagged = np.array([answer["is_anomaly"] for answer in fresh_answers])

    assert fresh["truth_is_anomaly"].to_numpy()[flagged].mean() >= 0.6


def test_top_contributor_names_what_was_tampered_with(fresh, fresh_answers):
    # Given each kind of injected anomaly and the input it tampers with
    tampered = {
        "padding": {"hours_vs_contract", "weekend_hours", "billable_share"},
        "billable_above_logged": {"billable_share"},
        "rate_override": {"rate_vs_card", "billed_rate"},
        "expense_spike": {"expense_amount"},
        "backdated_edits": {"edits_after_submit", "submission_delay_days"},
        "bulk_entry": {"late_night_entries", "daily_hours_std", "days_worked"},
    }
    for kind, features in tampered.items():
        rows = np.flatnonzero((fresh["truth_anomaly_type"] == kind).to_numpy())
        # Then the first contributor shown points at it for most of them
        named = np.mean([fresh_answers[i]["top_contributors"][0]["feature"] in features for i in rows])
        assert named >= 0.8, kind


def test_evaluate_sees_more_flags_when_the_world_drifts(artifact, fresh):
    calm = MODEL.evaluate(artifact, fresh[MODEL.feature_names()])
    drifted = MODEL.evaluate(artifact, MODEL.generate(TEST_ROWS, seed=5, drift=1.0)[MODEL.feature_names()])

    assert 0.5 < calm["flagged_rate_ratio"] < 1.5
    assert drifted["flagged_rate"] > calm["flagged_rate"] * 1.3


# --- Generator -----------------------------------------------------------------------------


@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_generated_anomalies_are_labelled_with_their_kind(drift):
    frame = MODEL.generate(50_000, seed=3, drift=drift)

    assert set(frame["truth_anomaly_type"].unique()) == {"none", *ANOMALY_TYPES}
    assert (frame["truth_anomaly_type"] != "none").eq(frame["truth_is_anomaly"]).all()


def test_drift_brings_more_hours_more_night_work_and_more_anomalies():
    calm = MODEL.generate(50_000, seed=4, drift=0.0)
    drifted = MODEL.generate(50_000, seed=4, drift=1.0)

    assert drifted["hours_logged"].mean() > calm["hours_logged"].mean() * 1.02
    assert (drifted["weekend_hours"] > 0).mean() > (calm["weekend_hours"] > 0).mean() + 0.05
    assert drifted["truth_is_anomaly"].mean() > calm["truth_is_anomaly"].mean() + 0.005


def test_schema_is_unsupervised_numbers_only():
    assert all(feature.kind in ("number", "integer") for feature in MODEL.features)
    assert MODEL.target is None
    assert MODEL.task == "anomaly"


# --- Answers -------------------------------------------------------------------------------


def test_answer_holds_score_flag_and_contributors(artifact):
    (answer,) = MODEL.predict(artifact, MODEL.feature_frame([MODEL.example_row()]))

    assert MODEL.main_score == "anomaly_score"
    assert set(answer) == {"anomaly_score", "is_anomaly", "threshold", "percentile", "top_contributors"}
    assert type(answer["anomaly_score"]) is float
    assert answer["anomaly_score"] >= 0.0
    assert type(answer["is_anomaly"]) is bool
    assert 0.0 <= answer["percentile"] <= 100.0
    assert len(answer["top_contributors"]) == 3
    for contributor in answer["top_contributors"]:
        assert set(contributor) == {"feature", "value", "z_score", "direction"}
        assert type(contributor["z_score"]) is float


def test_an_ordinary_week_is_not_flagged(artifact):
    (answer,) = MODEL.predict(artifact, MODEL.feature_frame([MODEL.example_row()]))

    assert answer["is_anomaly"] is False
    assert answer["percentile"] < 80.0


def test_a_huge_expense_claim_is_flagged_and_named(artifact):
    ordinary, claim = MODEL.predict(
        artifact, MODEL.feature_frame([MODEL.example_row(), {**MODEL.example_row(), "expense_amount": 12_000.0}])
    )

    assert claim[MODEL.main_score] > ordinary[MODEL.main_score] + 4.0
    assert claim["is_anomaly"] is True
    assert claim["percentile"] > 98.0
    top = claim["top_contributors"][0]
    assert (top["feature"], top["value"], top["direction"]) == ("expense_amount", 12_000.0, "high")


def test_the_flag_follows_the_score_and_the_threshold(fresh_answers):
    for answer in fresh_answers[:5000]:
        assert answer["is_anomaly"] == (answer[MODEL.main_score] > answer["threshold"])


def test_contributors_come_largest_deviation_first(fresh_answers):
    for answer in fresh_answers[:2000]:
        sizes = [abs(c["z_score"]) for c in answer["top_contributors"]]
        assert sizes == sorted(sizes, reverse=True)


def test_billing_more_hours_than_logged_stands_out_the_more_the_worse(artifact):
    # Given an honest week and the same week billing ever more hours than were logged
    honest = {**MODEL.example_row(), "hours_logged": 40.0, "billable_hours": 32.0}
    rows = [honest] + [{**honest, "billable_hours": hours} for hours in (48.0, 56.0, 64.0)]

    answers = MODEL.predict(artifact, MODEL.feature_frame(rows))

    # Then the score climbs with the excess, 40 % extra is in the top 5 % of weeks,
    # 60 % extra is flagged, and billable_share is named as the reason
    scores = [answer[MODEL.main_score] for answer in answers]
    assert scores == sorted(scores)
    assert answers[0]["is_anomaly"] is False
    assert answers[2]["percentile"] > 95.0
    assert answers[3]["is_anomaly"] is True
    top = answers[3]["top_contributors"][0]
    assert (top["feature"], top["direction"]) == ("billable_share", "high")
    assert top["value"] == pytest.approx(1.6)


def test_fast_path_matches_the_scikit_learn_pipeline(artifact, fitted, fresh):
    # Given rows including extreme values
    frame = fresh[MODEL.feature_names()].head(2000).copy()
    frame.loc[0, "expense_amount"] = 100_000.0
    frame.loc[1, "hours_logged"] = 0.0

    # When scored by predict and by scikit-learn's own transform
    scores = _scores(MODEL.predict(artifact, frame))
    pipeline = fitted["pipeline"]
    derived = _derived(fast.frame_columns(frame, MODEL.feature_names(), dtype=np.float64))
    encoded = pipeline.named_steps["preprocess"].transform(pd.DataFrame(derived))
    expected = np.sqrt(pipeline.named_steps["covariance"].mahalanobis(encoded))

    # Then both give the same distances (answers carry 4 decimals) from the same encoding
    np.testing.assert_allclose(scores, expected, atol=6e-5)
    served = artifact["pipeline"].named_steps["preprocess"]
    np.testing.assert_allclose(fast.encode(served, derived), encoded, rtol=0, atol=1e-9)
