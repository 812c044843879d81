"""The pricing model: its synthetic world, the quality of its price decisions, its answers.

What every catalog model promises (schema, generator, JSON answers, artifact) is
checked in ``test_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize_scalar
from sklearn.metrics import mean_absolute_error, roc_auc_score

from predictions.catalog.base import TRUTH_PREFIX
from predictions.catalog.export import export_artifact
from predictions.catalog.pricing import MODEL, true_win_probability

TRAIN_ROWS = MODEL.default_training_rows
REQUESTS = 400


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
    return MODEL.generate(REQUESTS, seed=2)


@pytest.fixture(scope="module")
def answers(artifact, fresh) -> list[dict]:
    return MODEL.predict(artifact, fresh[MODEL.feature_names()])


def _true_value(deal: pd.DataFrame, price: float) -> float:
    """Expected margin or revenue of one deal at ``price``, from the generator's true curve."""
    win = float(true_win_probability(deal, np.array([price]))[0])
    row = deal.iloc[0]
    return win * (price - row["cost"]) if row["objective"] == "margin" else win * price


def _true_best_value(deal: pd.DataFrame) -> float:
    """The best expected value any allowed price reaches on the true curve (0.5x-2x list)."""
    row = deal.iloc[0]
    floor = max(row["price_floor"], row["cost"])
    ceiling = max(row["price_ceiling"], floor) if row["price_ceiling"] > 0 else np.inf
    low, high = np.clip(0.5 * row["list_price"], floor, ceiling), np.clip(2.0 * row["list_price"], floor, ceiling)
    if high - low < 0.01:
        return _true_value(deal, low)
    best = minimize_scalar(
        lambda log_price: -_true_value(deal, np.exp(log_price)),
        bounds=(np.log(low), np.log(high)),
        method="bounded",
        options={"xatol": 1e-7},
    )
    return max(-best.fun, _true_value(deal, low), _true_value(deal, high))


def _example(**changes) -> pd.DataFrame:
    return MODEL.feature_frame([{**MODEL.example_row(), **changes}])


# --- Quality -------------------------------------------------------------------------------


def test_recommended_prices_earn_at_least_95_percent_of_the_true_best_expected_value(answers, fresh):
    # Given fresh seed-2 deals and the generator's true win curves
    recommended = [answer["recommended_price"] for answer in answers]

    # When each recommendation is valued on the true curve, next to the true optimum
    earned = np.array([_true_value(fresh.iloc[[i]], price) for i, price in enumerate(recommended)])
    best = np.array([_true_best_value(fresh.iloc[[i]]) for i in range(len(fresh))])

    # Then the decisions reach >= 95% of the best expected value, overall and for nearly every deal
    overall, per_deal = earned.sum() / best.sum(), earned / best
    fifth = np.quantile(per_deal, 0.05)
    print(f"pricing: {overall:.4f} of the true best expected value; 5th percentile per deal {fifth:.4f}")
    assert overall >= 0.95
    assert np.quantile(per_deal, 0.05) >= 0.90


def test_win_rates_track_the_true_win_probability_at_the_quoted_price(answers, fresh):
    # Given the win probability the generator used for each historical quote
    truth = fresh["truth_win_probability"].to_numpy()

    # When the model values the same quotes
    predicted = np.array([answer["at_quoted_price"]["win_probability"] for answer in answers])

    # Then it is close to the truth and ranks outcomes nearly as well as the truth does
    error = mean_absolute_error(truth, predicted)
    auc, best_auc = roc_auc_score(fresh["won"], predicted), roc_auc_score(fresh["won"], truth)
    print(f"pricing win probability MAE {error:.4f}; AUC {auc:.4f} vs truth {best_auc:.4f}")
    assert error < 0.04
    assert auc >= best_auc - 0.02


def test_holdout_metrics_come_from_labels_only(artifact):
    # Given a holdout with only what a real dataset has: features and outcomes
    holdout = MODEL.generate(3_000, seed=3)[[*MODEL.feature_names(), MODEL.target.name]]

    metrics = MODEL.evaluate(artifact, holdout)

    assert metrics["roc_auc"] > 0.7
    assert abs(metrics["predicted_win_rate"] - metrics["observed_win_rate"]) < 0.03
    assert metrics["mean_price_slope"] < 0  # dearer quotes win less often


# --- Generator -----------------------------------------------------------------------------


@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_generated_quotes_respect_their_price_policy(drift):
    frame = MODEL.generate(20_000, seed=4, drift=drift)

    assert set(frame[MODEL.target.name].unique()) <= {0, 1}
    assert {c for c in frame.columns if c.startswith(TRUTH_PREFIX)} >= {"truth_win_probability"}
    priced = frame["price_ceiling"] > 0
    assert (frame.loc[priced, "quoted_price"] <= frame.loc[priced, "price_ceiling"]).all()
    assert (frame["quoted_price"] >= frame["price_floor"]).all()


def test_drift_brings_more_competition_and_more_price_sensitive_buyers():
    calm, drifted = MODEL.generate(20_000, seed=5), MODEL.generate(20_000, seed=5, drift=1.0)

    assert drifted["competitors"].mean() > calm["competitors"].mean() + 0.5
    assert drifted["truth_price_sensitivity"].mean() > calm["truth_price_sensitivity"].mean() * 1.3
    # and fewer deals are won at list price
    at_list = true_win_probability(drifted, drifted["list_price"], drift=1.0).mean()
    assert at_list < true_win_probability(calm, calm["list_price"]).mean() - 0.05


# --- Answers -------------------------------------------------------------------------------


def test_answer_is_a_price_decision(artifact):
    answer = MODEL.predict(artifact, _example())[0]

    assert MODEL.main_score == "recommended_price"
    assert type(answer["recommended_price"]) is float
    assert answer["objective"] == "margin"
    assert 0.0 < answer["expected_win_rate"] < 1.0
    assert answer["expected_value"] == answer["expected_margin"]
    assert answer["expected_margin"] == pytest.approx(
        answer["expected_win_rate"] * (answer["recommended_price"] - MODEL.example_row()["cost"]), rel=1e-3
    )
    assert answer["price_range"]["low"] <= answer["recommended_price"] <= answer["price_range"]["high"]
    assert len(answer["alternatives"]) >= 5
    # the recommendation is at least as good as every alternative it considered
    assert all(alt["expected_value"] <= answer["expected_value"] + 0.01 for alt in answer["alternatives"])
    # and the price the rep had in mind is valued too
    assert answer["at_quoted_price"]["price"] == MODEL.example_row()["quoted_price"]
    assert answer["at_quoted_price"]["expected_value"] <= answer["expected_value"] + 0.01


def test_dearer_alternatives_win_less_often(artifact):
    alternatives = MODEL.predict(artifact, _example())[0]["alternatives"]

    prices = [alt["price"] for alt in alternatives]
    wins = [alt["win_probability"] for alt in alternatives]
    assert prices == sorted(prices)
    assert wins == sorted(wins, reverse=True)


def test_more_competitors_mean_a_deeper_discount(artifact):
    alone, crowded = MODEL.predict(artifact, pd.concat([_example(competitors=0), _example(competitors=6)]))

    assert crowded["discount_vs_list"] > alone["discount_vs_list"] + 0.03


def test_revenue_objective_prices_lower_than_margin_objective(artifact):
    margin, revenue = MODEL.predict(artifact, pd.concat([_example(), _example(objective="revenue")]))

    assert revenue["recommended_price"] <= margin["recommended_price"]
    assert revenue["expected_value"] == revenue["expected_revenue"]
    assert revenue["expected_win_rate"] >= margin["expected_win_rate"]


def test_floor_ceiling_and_cost_bound_the_recommendation(artifact):
    free = MODEL.predict(artifact, _example())[0]["recommended_price"]
    floored, capped, cheap = MODEL.predict(
        artifact,
        pd.concat(
            [
                _example(price_floor=round(free * 1.2)),
                _example(price_ceiling=round(free * 0.8)),
                _example(objective="revenue", price_ceiling=30_000.0),  # below the 37,000 cost
            ]
        ),
    )

    assert floored["recommended_price"] == round(free * 1.2)
    assert capped["recommended_price"] == round(free * 0.8)
    assert cheap["recommended_price"] == MODEL.example_row()["cost"]  # never sold at a loss


def test_no_quote_in_the_request_means_no_quote_in_the_answer(artifact):
    answer = MODEL.predict(artifact, _example(quoted_price=0.0))[0]

    assert answer["at_quoted_price"] is None


def test_fast_path_gives_the_pipelines_probabilities(artifact, fitted, fresh):
    # Given the fitted pipeline's own win probabilities at the quoted prices
    design = MODEL._design(fresh, np.log(fresh["quoted_price"] / fresh["list_price"]).to_numpy())
    pipeline = fitted["pipeline"].predict_proba(design)[:, 1]

    # When predict answers with its numpy fast path
    answers = MODEL.predict(artifact, fresh[MODEL.feature_names()])

    # Then both agree (to the 4 decimals answers carry)
    served = np.array([answer["at_quoted_price"]["win_probability"] for answer in answers])
    assert np.abs(served - pipeline).max() <= 5e-5 + 1e-9
    # and so does the win curve A + B * log(price / list) behind them, unrounded
    intercept, slope = MODEL._curve(artifact, fresh, len(fresh))
    logit = intercept + slope * np.log(fresh["quoted_price"] / fresh["list_price"]).to_numpy()
    np.testing.assert_allclose(logit, fitted["pipeline"].decision_function(design), rtol=0, atol=1e-9)
