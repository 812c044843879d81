"""The budget model: its synthetic world, the quality of its allocations, its answers.

What every catalog model promises (schema, generator, JSON answers, artifact) is
checked in ``test_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from predictions.catalog import fast
from predictions.catalog.base import TRUTH_PREFIX
from predictions.catalog.budget import CHANNELS, MAXIMUM, MINIMUM, MODEL, SPEND, true_channel_returns
from predictions.catalog.export import export_artifact

TRAIN_ROWS = MODEL.default_training_rows
REQUESTS = 150


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


def _allocations(answers: list[dict], alternative: str | None = None) -> np.ndarray:
    plans = [
        answer["allocation"]
        if alternative is None
        else next(alt["allocation"] for alt in answer["alternatives"] if alt["name"] == alternative)
        for answer in answers
    ]
    return np.array([[plan[channel] for channel in CHANNELS] for plan in plans])


def _limits(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    total = frame["total_budget"].to_numpy()
    return total, frame[MINIMUM].to_numpy(), np.minimum(frame[MAXIMUM].to_numpy(), total[:, None])


def _best_with_slsqp(value, total: float, low: np.ndarray, high: np.ndarray, starts: list[np.ndarray]) -> float:
    """The best ``value`` (of a 6-channel plan) SLSQP finds under the budget and the limits."""
    best = -np.inf
    for start in starts:
        result = minimize(
            lambda x: -value(x) / total,
            np.clip(start, low, high),
            method="SLSQP",
            bounds=list(zip(low, high, strict=True)),
            constraints=[{"type": "eq", "fun": lambda x: x.sum() / total - 1.0}],
            options={"maxiter": 300, "ftol": 1e-12},
        )
        plan = np.clip(result.x, low, high)
        if abs(plan.sum() - total) <= 1e-4 * total:
            best = max(best, value(plan))
    return best


def _example(**changes) -> pd.DataFrame:
    return MODEL.feature_frame([{**MODEL.example_row(), **changes}])


# --- Quality -------------------------------------------------------------------------------


def test_allocations_earn_at_least_95_percent_of_the_true_best_return(answers, fresh):
    # Given fresh seed-2 plans and the generator's true response curves
    recommended = _allocations(answers)
    total, low, high = _limits(fresh)

    # When the true optimum of each plan is searched with SLSQP (from three starting points)
    best = np.array(
        [
            _best_with_slsqp(
                lambda x, row=fresh.iloc[[i]]: float(true_channel_returns(row, x[None, :]).sum()),
                total[i],
                low[i],
                high[i],
                [recommended[i], np.full(6, total[i] / 6), fresh[SPEND].to_numpy()[i]],
            )
            for i in range(len(fresh))
        ]
    )

    # Then the recommended allocations reach >= 95% of the best return the spend can add
    earned = true_channel_returns(fresh, recommended).sum(axis=1)
    overall, per_plan = earned.sum() / best.sum(), earned / best
    equal = true_channel_returns(fresh, _allocations(answers, "equal_split")).sum() / best.sum()
    print(f"budget: {overall:.4f} of the true best incremental return; 5th pct {np.quantile(per_plan, 0.05):.4f}")
    historical = fresh["truth_incremental_return"].sum() / best.sum()
    print(f"budget: equal split earns {equal:.4f}; last period's plans {historical:.4f}")
    assert overall >= 0.95
    assert np.quantile(per_plan, 0.05) >= 0.90
    # and clearly more than splitting the budget equally
    assert overall > equal + 0.03


def test_allocations_respect_the_budget_and_the_limits(answers, fresh):
    recommended = _allocations(answers)
    total, low, high = _limits(fresh)

    assert np.allclose(recommended.sum(axis=1), total, atol=0.05)
    assert (recommended >= low - 0.01).all()
    assert (recommended <= high + 0.01).all()
    assert all(answer["feasible"] and answer["unallocated_budget"] == 0 for answer in answers)


def test_the_solver_finds_the_optimum_of_the_learned_curves(artifact, answers, fresh):
    # Given the model's own learned curves for a handful of plans
    rows = fresh.head(15)
    total, low, high = _limits(rows)
    recommended = _allocations(answers[:15])
    curve = MODEL._curve_ids(rows)

    def learned(i: int):
        return lambda x: float(MODEL._curve_value(artifact, curve[[i]], x[None, :]).sum())

    # When SLSQP optimises the same curves
    found = [
        _best_with_slsqp(learned(i), total[i], low[i], high[i], [recommended[i], np.full(6, total[i] / 6)])
        for i in range(len(rows))
    ]

    # Then it does not beat the vectorised KKT allocation by more than 0.2%
    ours = [learned(i)(recommended[i]) for i in range(len(rows))]
    assert all(mine >= theirs * 0.998 for mine, theirs in zip(ours, found, strict=True))


def test_expected_return_is_the_pipelines_prediction_for_the_allocation(fitted, answers, fresh):
    # Given the fitted pipeline's prediction for each recommended allocation
    planned = fresh.copy()
    planned[SPEND] = _allocations(answers)
    predicted = fitted["pipeline"].predict(MODEL._inputs(planned))

    # Then the answer's expected return is that prediction (the curve tables only speed it up)
    expected = np.array([answer["expected_return"] for answer in answers])
    assert np.abs(expected / predicted - 1).max() < 0.005


def test_holdout_metrics_come_from_labels_only(artifact):
    holdout = MODEL.generate(3_000, seed=3)[[*MODEL.feature_names(), MODEL.target.name]]

    metrics = MODEL.evaluate(artifact, holdout)

    assert metrics["r2"] > 0.9
    assert metrics["mape"] < 0.15


# --- Generator -----------------------------------------------------------------------------


@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_generated_plans_fit_their_own_budget_and_limits(drift):
    frame = MODEL.generate(20_000, seed=4, drift=drift)

    spend = frame[SPEND].to_numpy()
    assert np.allclose(spend.sum(axis=1), frame["total_budget"])
    assert (spend >= frame[MINIMUM].to_numpy()).all() and (spend <= frame[MAXIMUM].to_numpy()).all()
    assert {c for c in frame.columns if c.startswith(TRUTH_PREFIX)} >= {"truth_expected_return"}


def test_drift_grows_budgets_and_moves_spend_from_search_to_social():
    calm, drifted = MODEL.generate(20_000, seed=5), MODEL.generate(20_000, seed=5, drift=1.0)

    assert drifted["total_budget"].median() > calm["total_budget"].median() * 1.3

    def share(frame: pd.DataFrame, channel: str) -> float:
        return (frame[f"spend_{channel}"] / frame["total_budget"]).mean()

    assert share(drifted, "social") > share(calm, "social") + 0.05
    assert share(drifted, "search") < share(calm, "search") - 0.05


def test_drift_changes_what_a_search_euro_returns():
    plan = MODEL.generate(1, seed=0)
    spend = np.full((1, 6), 20_000.0)

    calm, drifted = true_channel_returns(plan, spend), true_channel_returns(plan, spend, drift=1.0)

    assert drifted[0, 0] < calm[0, 0] * 0.7  # search
    assert drifted[0, 1] > calm[0, 1] * 1.3  # social


# --- Answers -------------------------------------------------------------------------------


def test_answer_is_an_allocation_with_alternatives(artifact):
    answer = MODEL.predict(artifact, _example())[0]

    assert MODEL.main_score == "expected_return"
    assert type(answer["expected_return"]) is float
    assert set(answer["allocation"]) == set(CHANNELS)
    assert sum(answer["allocation"].values()) == pytest.approx(MODEL.example_row()["total_budget"], abs=0.05)
    assert sum(answer["allocation_share"].values()) == pytest.approx(1.0, abs=1e-3)
    assert answer["expected_return"] == pytest.approx(
        answer["baseline_return"] + answer["incremental_return"], abs=0.02
    )
    assert answer["incremental_return"] == pytest.approx(sum(answer["channel_returns"].values()), abs=0.1)
    names = [alt["name"] for alt in answer["alternatives"]]
    assert names == ["equal_split", "proportional_to_last_period", "unconstrained_best"]
    for alternative in answer["alternatives"]:
        assert alternative["vs_recommended"] == pytest.approx(
            alternative["expected_return"] - answer["expected_return"], abs=0.02
        )
        if alternative["within_limits"]:  # the recommendation is the best plan within the limits
            assert alternative["expected_return"] <= answer["expected_return"] + 0.01
    unconstrained = answer["alternatives"][2]
    assert unconstrained["expected_return"] >= answer["expected_return"] - 0.01


def test_limits_hold_and_are_reported(artifact):
    # Given the example plan: at least 20k on events, at most 40k on social
    free = MODEL.predict(artifact, _example(min_events=0.0, max_social=10_000_000.0))[0]["allocation"]
    forced = MODEL.predict(
        artifact, _example(min_events=free["events"] + 20_000, max_social=round(free["social"] / 2))
    )[0]

    assert forced["allocation"]["events"] == pytest.approx(free["events"] + 20_000, abs=0.01)
    assert forced["allocation"]["social"] == pytest.approx(round(free["social"] / 2), abs=0.01)
    assert forced["limits_reached"] == {"events": "min", "social": "max"}


def test_a_bigger_budget_returns_more_but_each_extra_euro_less(artifact):
    small, large = MODEL.predict(
        artifact, pd.concat([_example(total_budget=100_000.0), _example(total_budget=400_000.0)])
    )

    assert large["expected_return"] > small["expected_return"]
    assert large["marginal_return"] < small["marginal_return"]
    assert large["return_on_spend"] < small["return_on_spend"]


def test_enterprise_units_put_more_into_events_and_less_into_social(artifact):
    smb, enterprise = MODEL.predict(artifact, pd.concat([_example(segment="smb"), _example(segment="enterprise")]))

    assert enterprise["allocation_share"]["events"] > smb["allocation_share"]["events"]
    assert enterprise["allocation_share"]["social"] < smb["allocation_share"]["social"]


def test_impossible_limits_are_flagged_not_hidden(artifact):
    too_committed, too_capped = MODEL.predict(
        artifact,
        pd.concat(
            [
                _example(total_budget=50_000.0, min_search=40_000.0, min_events=40_000.0),
                _example(total_budget=50_000.0, **dict.fromkeys(MINIMUM, 0.0), **dict.fromkeys(MAXIMUM, 5_000.0)),
            ]
        ),
    )

    # Minimums beyond the budget are scaled down to fit it
    assert not too_committed["feasible"]
    assert too_committed["allocation"]["search"] == pytest.approx(25_000.0, abs=0.01)
    assert too_committed["allocation"]["events"] == pytest.approx(25_000.0, abs=0.01)
    # Maximums that cannot absorb the budget leave the rest unallocated, and say so
    assert not too_capped["feasible"]
    assert too_capped["unallocated_budget"] == pytest.approx(20_000.0, abs=0.01)
    assert all(amount == pytest.approx(5_000.0, abs=0.01) for amount in too_capped["allocation"].values())


def test_the_exported_pipeline_predicts_what_scikit_learn_does(artifact, fitted, fresh):
    # (test_contract checks every model's answers after a round trip through the artifact file)
    inputs = MODEL._inputs(fresh[MODEL.feature_names()].head(50))
    np.testing.assert_allclose(
        fast.decision_function(artifact["pipeline"], inputs), fitted["pipeline"].predict(inputs), rtol=1e-12
    )
