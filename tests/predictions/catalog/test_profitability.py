"""Client profitability: quality on fresh clients, the interval, the generator and the answers.

What every catalog model promises (schema, generator, JSON answers, artifact) is
checked in ``test_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, r2_score

from predictions.catalog import fast
from predictions.catalog.export import export_artifact
from predictions.catalog.profitability import BANDS, MIN_ERROR_SCALE, MODEL, _design, _linear_fast

TRAINING_SEED = 1
FRESH_SEED = 2


@pytest.fixture(scope="module")
def fitted() -> dict:
    """The artifact as fit returns it, with the fitted scikit-learn objects."""
    return MODEL.fit(MODEL.generate(MODEL.default_training_rows, seed=TRAINING_SEED), seed=TRAINING_SEED)


@pytest.fixture(scope="module")
def artifact(fitted) -> dict:
    """The artifact as the registry stores and serves it."""
    return export_artifact(fitted)


@pytest.fixture(scope="module")
def fresh() -> pd.DataFrame:
    return MODEL.generate(20_000, seed=FRESH_SEED)


@pytest.fixture(scope="module")
def fresh_answers(artifact, fresh) -> pd.DataFrame:
    return pd.DataFrame(MODEL.predict(artifact, fresh[MODEL.feature_names()]))


def one_client(**changes) -> pd.DataFrame:
    return MODEL.feature_frame([{**MODEL.example_row(), **changes}])


# --- Quality on clients the model never saw ----------------------------------------------------


def test_predicted_margin_explains_most_of_next_years_margin(fresh, fresh_answers):
    # Given a model trained on seed 1 and clients drawn with seed 2
    # When it predicts their margins
    # Then it explains at least 70% of the variance of the observed margin
    assert r2_score(fresh["margin_pct"], fresh_answers["margin_pct"]) >= 0.70
    # And tracks the generator's expected margin closely
    assert r2_score(fresh["truth_margin_pct"], fresh_answers["margin_pct"]) >= 0.95


def test_the_80_percent_interval_holds_the_outcome_about_80_percent_of_the_time(fresh, fresh_answers):
    # Given fresh clients and their intervals
    actual = fresh["margin_pct"]
    inside = (actual >= fresh_answers["margin_lower_pct"]) & (actual <= fresh_answers["margin_upper_pct"])
    level = fresh_answers["interval_level"].iloc[0]
    # Then the coverage is the nominal level, overall
    assert level == pytest.approx(0.80)
    assert inside.mean() == pytest.approx(level, abs=0.03)
    # And also for the noisy accounts: fixed-price-heavy ones and small ones
    assert inside[fresh["fixed_price_share_pct"] >= 60].mean() == pytest.approx(level, abs=0.05)
    assert inside[fresh["annual_revenue"] < 100_000].mean() == pytest.approx(level, abs=0.05)


def test_loss_probability_matches_the_generators_chance_of_a_loss(fresh, fresh_answers):
    # The generator knows each client's true chance of a negative margin
    assert mean_absolute_error(fresh["truth_loss_probability"], fresh_answers["loss_probability"]) < 0.03
    # And among clients given a high loss probability, most do lose money
    flagged = fresh_answers["loss_probability"] >= 0.8
    assert flagged.sum() > 100
    assert (fresh.loc[flagged, "margin_pct"] < 0).mean() >= 0.75


def test_evaluate_reports_the_holdout_metrics(artifact, fresh):
    # When evaluating on a labelled holdout
    metrics = MODEL.evaluate(artifact, fresh[[*MODEL.feature_names(), MODEL.target.name]])
    # Then the metrics agree with sklearn's
    answers = MODEL.predict(artifact, fresh[MODEL.feature_names()])
    predicted = [a["margin_pct"] for a in answers]
    assert metrics["r2"] == pytest.approx(r2_score(fresh["margin_pct"], predicted), abs=1e-4)
    assert metrics["interval_coverage"] == pytest.approx(0.80, abs=0.03)
    assert metrics["rows"] == len(fresh)


def test_a_drifted_world_is_noticed_as_worse_coverage(artifact):
    # Given clients from the downturn world (drift 1) and the reference world
    reference = MODEL.evaluate(artifact, MODEL.generate(20_000, seed=3))
    drifted = MODEL.evaluate(artifact, MODEL.generate(20_000, seed=3, drift=1.0))
    # Then the model trained on the reference world misses more on the drifted one
    assert drifted["mae_points"] > reference["mae_points"]
    assert drifted["interval_coverage"] < reference["interval_coverage"]


# --- Generator --------------------------------------------------------------------------------


def test_drift_moves_clients_towards_a_downturn():
    reference = MODEL.generate(50_000, seed=5)
    drifted = MODEL.generate(50_000, seed=5, drift=1.0)
    # Utilisation falls, costs rise relative to rates, and margins shrink
    assert drifted["billable_utilisation_pct"].mean() < reference["billable_utilisation_pct"].mean() - 5
    cost_share = (drifted["cost_rate"] / drifted["blended_rate"]).mean()
    assert cost_share > (reference["cost_rate"] / reference["blended_rate"]).mean() + 0.05
    assert drifted["truth_margin_pct"].mean() < reference["truth_margin_pct"].mean() - 10


# --- Answers ----------------------------------------------------------------------------------


def test_an_answer_holds_the_margin_profit_interval_and_band(artifact):
    # When predicting the example client
    (answer,) = MODEL.predict(artifact, one_client())
    # Then it holds JSON-ready values
    floats = ["margin_pct", "margin_lower_pct", "margin_upper_pct", "profit", "profit_lower", "profit_upper"]
    for key in [*floats, "loss_probability", "interval_level", "realised_rate"]:
        assert type(answer[key]) is float, key
    assert answer["band"] in {name for name, _ in BANDS}
    # Money in cents, probability to 4 decimals
    assert answer["profit"] == round(answer["profit"], 2)
    assert answer["loss_probability"] == round(answer["loss_probability"], 4)
    # The interval brackets the prediction, and profit is margin times the revenue
    assert answer["margin_lower_pct"] < answer["margin_pct"] < answer["margin_upper_pct"]
    assert answer["profit_lower"] < answer["profit"] < answer["profit_upper"]
    revenue = MODEL.example_row()["annual_revenue"]
    assert answer["profit"] == pytest.approx(answer["margin_pct"] / 100 * revenue, abs=revenue * 0.0001)


def test_the_band_follows_the_documented_thresholds(fresh_answers):
    margin = fresh_answers["margin_pct"]
    expected = np.select([margin < 0, margin < 15, margin < 30], ["loss_making", "thin", "healthy"], "strong")
    assert (fresh_answers["band"] == expected).all()
    assert set(fresh_answers["band"]) == {"loss_making", "thin", "healthy", "strong"}


def test_costlier_staff_and_lower_utilisation_eat_the_margin(artifact):
    base, costly, idle = MODEL.predict(
        artifact,
        pd.concat([one_client(), one_client(cost_rate=110.0), one_client(billable_utilisation_pct=50.0)]),
    )
    assert costly["margin_pct"] < base["margin_pct"] - 10
    assert idle["margin_pct"] < base["margin_pct"] - 10
    assert costly["loss_probability"] > base["loss_probability"]


def test_small_clients_carry_their_account_management(artifact):
    small, large = MODEL.predict(artifact, pd.concat([one_client(annual_revenue=30_000.0), one_client()]))
    assert small["margin_pct"] < large["margin_pct"] - 10


def test_fixed_price_heavy_clients_get_a_wider_interval(artifact):
    steady, risky = MODEL.predict(
        artifact,
        pd.concat([one_client(fixed_price_share_pct=0.0), one_client(fixed_price_share_pct=90.0)]),
    )
    assert (
        risky["margin_upper_pct"] - risky["margin_lower_pct"] > steady["margin_upper_pct"] - steady["margin_lower_pct"]
    )


def test_an_unknown_category_is_answered_not_refused(artifact):
    (answer,) = MODEL.predict(artifact, one_client(industry="aerospace"))
    assert isinstance(answer["margin_pct"], float)


def test_the_numpy_serving_path_equals_the_scikit_learn_pipeline(artifact, fitted):
    # Given varied rows, drifted ones and an unseen category
    frame = pd.concat(
        [MODEL.generate(2_000, seed=13, drift=1.0)[MODEL.feature_names()], one_client(region="antarctica")],
        ignore_index=True,
    )
    # Then the fast path computes what Pipeline.predict computes, and so does the error model
    design = _design(fast.frame_columns(frame))
    pipeline = fitted["pipeline"]
    expected = pipeline.predict(pd.DataFrame(design))
    served, scale = _linear_fast(artifact["pipeline"], artifact["error_model"], design)
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-8)
    error_size = fitted["error_model"].predict(pipeline[:-1].transform(pd.DataFrame(design)))
    np.testing.assert_allclose(scale, np.maximum(error_size, MIN_ERROR_SCALE), rtol=0, atol=1e-8)


# --- Schema -----------------------------------------------------------------------------------


def test_the_main_score_is_the_predicted_target_for_a_client():
    assert MODEL.main_score == MODEL.target.name
    assert MODEL.entity_label == "client"
