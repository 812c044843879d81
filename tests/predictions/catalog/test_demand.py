"""Demand forecast: accuracy against seasonal naive, intervals, the generator and the answers.

What every catalog model promises (schema, generator, JSON answers, artifact) is
checked in ``test_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_percentage_error

from predictions.catalog import fast
from predictions.catalog.base import TRUTH_PREFIX
from predictions.catalog.demand import DEFAULT_HORIZON, MODEL, _design
from predictions.catalog.export import export_artifact

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
    return MODEL.generate(24_000, seed=FRESH_SEED)


@pytest.fixture(scope="module")
def year_ahead(artifact, fresh) -> pd.DataFrame:
    """Twelve-month forecasts from every fresh row, joined to what the same series did later."""
    requests = fresh[MODEL.feature_names()].assign(horizon=12)
    answers = MODEL.predict(artifact, requests)
    periods = pd.DataFrame(
        [{"origin": row, **period} for row, answer in enumerate(answers) for period in answer["periods"]]
    )
    periods["truth_series"] = fresh["truth_series"].to_numpy()[periods["origin"]]
    periods["truth_period"] = fresh["truth_period"].to_numpy()[periods["origin"]] + periods["offset"] - 1
    later = fresh[["truth_series", "truth_period", "demand_hours", "same_month_last_year_hours"]]
    # The seasonal naive forecast of a month is that month a year earlier, known at the origin.
    return periods.merge(later, on=["truth_series", "truth_period"], how="inner")


def one_series(**changes) -> pd.DataFrame:
    return MODEL.feature_frame([{**MODEL.example_row(), **changes}])


# --- Accuracy on series the model never saw ---------------------------------------------------


def test_next_month_beats_the_seasonal_naive_forecast_by_at_least_20_percent(artifact, fresh):
    # Given a model trained on seed 1 and series drawn with seed 2
    answers = MODEL.predict(artifact, fresh[MODEL.feature_names()])
    forecast = [answer[MODEL.main_score] for answer in answers]
    actual = fresh["demand_hours"]
    # When comparing with "same month last year"
    model_mape = mean_absolute_percentage_error(actual, forecast)
    naive_mape = mean_absolute_percentage_error(actual, fresh["same_month_last_year_hours"])
    # Then the model's MAPE is at least 20% lower
    assert model_mape <= 0.8 * naive_mape
    # And it is close to what a forecaster knowing the generator would say
    assert mean_absolute_percentage_error(fresh["truth_expected_hours"], forecast) < 0.06


def test_a_year_ahead_the_forecast_still_beats_seasonal_naive(year_ahead):
    by_step = year_ahead.groupby("offset")
    model = by_step.apply(lambda g: mean_absolute_percentage_error(g["demand_hours"], g["forecast_hours"]))
    naive = by_step.apply(lambda g: mean_absolute_percentage_error(g["demand_hours"], g["same_month_last_year_hours"]))
    assert list(model.index) == list(range(1, 13))
    # Every month ahead is better than seasonal naive, and 20% better on average over the year
    assert (model < naive).all()
    assert model.mean() <= 0.8 * naive.mean()
    # Accuracy degrades with distance, as a user expects
    assert model.loc[12] > model.loc[1]


def test_intervals_hold_the_outcome_at_their_level_month_after_month(year_ahead):
    inside = (year_ahead["demand_hours"] >= year_ahead["lower_hours"]) & (
        year_ahead["demand_hours"] <= year_ahead["upper_hours"]
    )
    coverage = inside.groupby(year_ahead["offset"]).mean()
    assert coverage.loc[1] == pytest.approx(0.80, abs=0.03)
    assert coverage.loc[2:12].between(0.74, 0.86).all(), coverage.to_dict()


def test_evaluate_reports_the_skill_against_seasonal_naive(artifact, fresh):
    metrics = MODEL.evaluate(artifact, fresh[[*MODEL.feature_names(), MODEL.target.name]])
    naive = mean_absolute_percentage_error(fresh["demand_hours"], fresh["same_month_last_year_hours"])
    assert metrics["seasonal_naive_mape"] == pytest.approx(naive)
    assert metrics["mape_improvement_vs_seasonal_naive"] >= 0.20
    assert metrics["interval_coverage"] == pytest.approx(0.80, abs=0.03)
    assert abs(metrics["bias_pct"]) < 3


def test_a_drifted_world_is_noticed_as_worse_accuracy(artifact):
    reference = MODEL.evaluate(artifact, MODEL.generate(24_000, seed=3))
    drifted = MODEL.evaluate(artifact, MODEL.generate(24_000, seed=3, drift=1.0))
    assert drifted["mape"] > reference["mape"]
    assert drifted["interval_coverage"] < reference["interval_coverage"]


# --- Generator --------------------------------------------------------------------------------


@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_generated_demand_is_never_negative(drift):
    frame = MODEL.generate(60_000, seed=11, drift=drift)
    assert (frame["demand_hours"] >= 0).all()


def test_rows_are_consecutive_months_of_a_series():
    frame = MODEL.generate(480, seed=9)
    series = frame.groupby("truth_series")
    # Each row's "last month" is the previous row's demand, and months follow the calendar
    previous = series["demand_hours"].shift(1)
    assert (frame["last_month_hours"][previous.notna()] == previous.dropna()).all()
    following = series["start_month"].shift(-1).dropna()
    assert ((frame["start_month"][following.index] % 12) + 1 == following).all()


def test_drift_brings_a_downturn_and_bigger_seasonal_swings():
    reference = MODEL.generate(60_000, seed=5)
    drifted = MODEL.generate(60_000, seed=5, drift=1.0)
    assert drifted["yoy_growth_pct"].mean() < reference["yoy_growth_pct"].mean() - 8

    def swing(frame: pd.DataFrame) -> float:
        return float(np.log(frame["truth_expected_hours"] / frame["avg_monthly_hours_12m"]).std())

    assert swing(drifted) > swing(reference) * 1.2


# --- Answers ----------------------------------------------------------------------------------


def test_an_answer_holds_the_months_ahead_with_intervals(artifact):
    (answer,) = MODEL.predict(artifact, one_series(start_month=11, horizon=4))
    assert answer["horizon"] == 4
    assert [period["offset"] for period in answer["periods"]] == [1, 2, 3, 4]
    assert [period["month"] for period in answer["periods"]] == [11, 12, 1, 2]
    for period in answer["periods"]:
        assert type(period["forecast_hours"]) is float
        assert 0 <= period["lower_hours"] <= period["forecast_hours"] <= period["upper_hours"]
    first = answer["periods"][0]
    assert answer[MODEL.main_score] == first["forecast_hours"]
    assert (answer["next_month_lower_hours"], answer["next_month_upper_hours"]) == (
        first["lower_hours"],
        first["upper_hours"],
    )
    assert answer["total_hours"] == pytest.approx(sum(p["forecast_hours"] for p in answer["periods"]), abs=0.5)
    assert isinstance(answer["vs_same_month_last_year_pct"], float)
    assert answer["interval_level"] == 0.80


def test_the_default_horizon_is_six_months_and_it_reaches_two_years(artifact):
    row = {k: v for k, v in MODEL.example_row().items() if k != "horizon"}
    default, longest = MODEL.predict(artifact, MODEL.feature_frame([row, {**row, "horizon": 24}]))
    assert len(default["periods"]) == DEFAULT_HORIZON == 6
    assert len(longest["periods"]) == 24
    # The same month a year apart differs by about a year of the series' growth (+9% here)
    ratio = longest["periods"][12]["forecast_hours"] / longest["periods"][0]["forecast_hours"]
    assert 1.0 < ratio < 1.3


def test_intervals_widen_further_out(artifact):
    (answer,) = MODEL.predict(artifact, one_series(horizon=24))

    def relative_width(period: dict) -> float:
        return (period["upper_hours"] - period["lower_hours"]) / period["forecast_hours"]

    widths = [relative_width(period) for period in answer["periods"]]
    assert widths[23] > widths[11] > widths[1]


def test_lumpy_series_with_few_clients_get_wider_intervals(artifact):
    lumpy, steady = MODEL.predict(artifact, pd.concat([one_series(active_clients=3), one_series(active_clients=300)]))
    for a, b in zip(lumpy["periods"], steady["periods"], strict=True):
        assert (a["upper_hours"] - a["lower_hours"]) > (b["upper_hours"] - b["lower_hours"])


def test_the_forecast_follows_the_seasons_and_the_trend(artifact):
    # Training demand collapses in a European August and recovers in the autumn
    (training,) = MODEL.predict(
        artifact, one_series(service_line="training", region="europe", start_month=8, horizon=3)
    )
    august, _, october = (period["forecast_hours"] for period in training["periods"])
    assert august < 0.8 * october
    # A growing series is forecast above a shrinking one with the same recent level
    growing, shrinking = MODEL.predict(
        artifact, pd.concat([one_series(yoy_growth_pct=40.0, horizon=12), one_series(yoy_growth_pct=-20.0, horizon=12)])
    )
    assert growing["periods"][11]["forecast_hours"] > 1.2 * shrinking["periods"][11]["forecast_hours"]
    # A bigger series gets a bigger forecast
    small, big = MODEL.predict(
        artifact,
        pd.concat(
            [
                one_series(),
                one_series(
                    avg_monthly_hours_12m=32_000.0,
                    avg_monthly_hours_3m=30_500.0,
                    last_month_hours=27_000.0,
                    same_month_last_year_hours=31_000.0,
                ),
            ]
        ),
    )
    assert big[MODEL.main_score] == pytest.approx(10 * small[MODEL.main_score], rel=0.05)


def test_an_empty_series_gets_a_zero_forecast_not_an_error(artifact):
    (answer,) = MODEL.predict(
        artifact,
        one_series(
            avg_monthly_hours_12m=0.0, avg_monthly_hours_3m=0.0, last_month_hours=0.0, same_month_last_year_hours=0.0
        ),
    )
    assert 0 <= answer[MODEL.main_score] < 5
    assert answer["vs_same_month_last_year_pct"] is None


def test_the_numpy_serving_path_equals_the_scikit_learn_pipelines(artifact, fitted):
    frame = pd.concat(
        [MODEL.generate(2_000, seed=13, drift=1.0)[MODEL.feature_names()], one_series(region="antarctica")],
        ignore_index=True,
    )
    design = _design(fast.frame_columns(frame))
    for name in ("first_month", "profile"):
        pipeline, error_model = fitted[name]["pipeline"], fitted[name]["error_model"]
        expected = pipeline.predict(pd.DataFrame(design))
        error_size = error_model.predict(pipeline.named_steps["features"].transform(pd.DataFrame(design)))
        exported = artifact[name]
        features = exported["pipeline"].named_steps["features"]
        served = fast.linear_from_columns(features, exported["pipeline"].named_steps["model"], design)
        np.testing.assert_allclose(served, expected, rtol=0, atol=1e-9)
        served_error = fast.linear_from_columns(features, exported["error_model"], design)
        np.testing.assert_allclose(served_error, error_size, atol=1e-9)


# --- Schema and training ----------------------------------------------------------------------


def test_the_horizon_is_an_optional_request_option_of_up_to_two_years():
    horizon = next(feature for feature in MODEL.features if feature.name == "horizon")
    assert (horizon.kind, horizon.required, horizon.default, horizon.minimum, horizon.maximum) == (
        "integer",
        False,
        6,
        1,
        24,
    )
    assert MODEL.task == "forecast"


def test_training_ignores_the_horizon_a_request_option_not_a_driver(fresh):
    # (test_contract checks that training ignores the truth columns, for every model)
    scrambled = fresh.copy()
    for column in [c for c in fresh.columns if c.startswith(TRUTH_PREFIX)] + ["horizon"]:
        scrambled[column] = np.random.default_rng(0).permutation(scrambled[column].to_numpy())
    rows = fresh[MODEL.feature_names()].iloc[:200]
    assert MODEL.predict(MODEL.fit(fresh, seed=0), rows) == MODEL.predict(MODEL.fit(scrambled, seed=0), rows)
