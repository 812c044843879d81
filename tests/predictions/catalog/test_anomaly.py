"""The timesheet anomaly model: its synthetic world, its hit rate on injected anomalies, its answers."""

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

from predictions.catalog.anomaly import ANOMALY_TYPES, EXPECTED_CONTAMINATION, MODEL, _columns, _derived

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


@pytest.fixture(scope="module")
def fresh_answers(artifact, fresh) -> list[dict]:
    return MODEL.predict(artifact, fresh[MODEL.feature_names()])


def _scores(answers: list[dict]) -> np.ndarray:
    return np.array([answer["main_score"] for answer in answers])


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
    assert all(isinstance(value, float) for value in calm.values())


def test_training_on_the_default_rows_is_quick(trained):
    assert trained["fit_seconds"] < 10.0


# --- Generator -----------------------------------------------------------------------------


def test_generator_is_deterministic_per_seed():
    assert MODEL.generate(500, seed=7).equals(MODEL.generate(500, seed=7))
    assert not MODEL.generate(500, seed=7).equals(MODEL.generate(500, seed=8))


@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_generated_values_pass_the_schema(drift):
    frame = MODEL.generate(50_000, seed=3, drift=drift)

    for feature in MODEL.features:
        column = frame[feature.name]
        assert column.notna().all(), feature.name
        assert column.min() >= feature.minimum, feature.name
        assert column.max() <= feature.maximum, feature.name
        if feature.kind == "integer":
            assert (column == np.round(column)).all(), feature.name
    assert set(frame["truth_anomaly_type"].unique()) == {"none", *ANOMALY_TYPES}
    assert (frame["truth_anomaly_type"] != "none").eq(frame["truth_is_anomaly"]).all()


def test_drift_brings_more_hours_more_night_work_and_more_anomalies():
    calm = MODEL.generate(50_000, seed=4, drift=0.0)
    drifted = MODEL.generate(50_000, seed=4, drift=1.0)

    assert drifted["hours_logged"].mean() > calm["hours_logged"].mean() * 1.02
    assert (drifted["weekend_hours"] > 0).mean() > (calm["weekend_hours"] > 0).mean() + 0.05
    assert drifted["truth_is_anomaly"].mean() > calm["truth_is_anomaly"].mean() + 0.005


def test_schema_is_well_formed():
    names = MODEL.feature_names()
    assert 8 <= len(names) <= 25
    assert len(set(names)) == len(names)
    for feature in MODEL.features:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", feature.name)
        assert feature.description
        assert feature.minimum <= feature.example <= feature.maximum
    assert MODEL.target is None
    assert MODEL.task == "anomaly"
    assert MODEL.main_score == "anomaly_score"


# --- Answers -------------------------------------------------------------------------------


def test_answer_is_json_ready_with_score_flag_and_contributors(artifact):
    (answer,) = MODEL.predict(artifact, MODEL.feature_frame([MODEL.example_row()]))

    assert set(answer) == {"anomaly_score", "main_score", "is_anomaly", "threshold", "percentile", "top_contributors"}
    assert type(answer["main_score"]) is float
    assert answer["main_score"] == answer["anomaly_score"] >= 0.0
    assert type(answer["is_anomaly"]) is bool
    assert 0.0 <= answer["percentile"] <= 100.0
    assert len(answer["top_contributors"]) == 3
    for contributor in answer["top_contributors"]:
        assert set(contributor) == {"feature", "value", "z_score", "direction"}
        assert type(contributor["z_score"]) is float
    assert json.loads(json.dumps(answer)) == answer


def test_an_ordinary_week_is_not_flagged(artifact):
    (answer,) = MODEL.predict(artifact, MODEL.feature_frame([MODEL.example_row()]))

    assert answer["is_anomaly"] is False
    assert answer["percentile"] < 80.0


def test_a_huge_expense_claim_is_flagged_and_named(artifact):
    ordinary, claim = MODEL.predict(
        artifact, MODEL.feature_frame([MODEL.example_row(), {**MODEL.example_row(), "expense_amount": 12_000.0}])
    )

    assert claim["main_score"] > ordinary["main_score"] + 4.0
    assert claim["is_anomaly"] is True
    assert claim["percentile"] > 98.0
    top = claim["top_contributors"][0]
    assert (top["feature"], top["value"], top["direction"]) == ("expense_amount", 12_000.0, "high")


def test_the_flag_follows_the_score_and_the_threshold(fresh_answers):
    for answer in fresh_answers[:5000]:
        assert answer["is_anomaly"] == (answer["main_score"] > answer["threshold"])


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
    scores = [answer["main_score"] for answer in answers]
    assert scores == sorted(scores)
    assert answers[0]["is_anomaly"] is False
    assert answers[2]["percentile"] > 95.0
    assert answers[3]["is_anomaly"] is True
    top = answers[3]["top_contributors"][0]
    assert (top["feature"], top["direction"]) == ("billable_share", "high")
    assert top["value"] == pytest.approx(1.6)


def test_fast_path_matches_the_scikit_learn_pipeline(artifact, fresh):
    # Given rows including extreme values
    frame = fresh[MODEL.feature_names()].head(2000).copy()
    frame.loc[0, "expense_amount"] = 100_000.0
    frame.loc[1, "hours_logged"] = 0.0

    # When scored by predict and by scikit-learn's own transform
    scores = _scores(MODEL.predict(artifact, frame))
    pipeline = artifact["pipeline"]
    encoded = pipeline.named_steps["preprocess"].transform(
        pd.DataFrame(_derived(_columns(frame, MODEL.feature_names())))
    )
    expected = np.sqrt(pipeline.named_steps["covariance"].mahalanobis(encoded))

    # Then both give the same distances
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
        "import sys, predictions.catalog.anomaly; "
        "sys.exit(any(m == 'django' or m.startswith('django.') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
