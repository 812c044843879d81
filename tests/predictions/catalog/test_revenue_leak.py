"""The revenue-leak model: its synthetic world, its quality against the truth, and its answers.

What every catalog model promises (schema, generator, JSON answers, artifact) is
checked in ``test_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score

from predictions.catalog import fast
from predictions.catalog.base import TRUTH_PREFIX
from predictions.catalog.export import export_artifact
from predictions.catalog.revenue_leak import MODEL, PATTERNS, _columns, _indicators

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


def _clean_invoice(**changes) -> dict:
    """A time-and-materials invoice with nothing wrong on it."""
    row = {
        "engagement_type": "time_and_materials",
        "client_tier": "key",
        "hours_logged": 120.0,
        "hours_billed": 118.0,
        "rate_card": 150.0,
        "billed_rate": 150.0,
        "discount_pct": 5.0,
        "discount_approved": False,
        "change_requests": 1,
        "change_orders_signed": 1,
        "days_to_invoice": 4,
        "timesheet_late_pct": 8.0,
        "manager_open_projects": 5,
    }
    return {**row, **changes}


# --- Quality -------------------------------------------------------------------------------


def test_finds_leaking_invoices_far_better_than_chance(fresh, fresh_answers):
    # Given a model trained on seed 1, scoring a fresh seed-2 sample
    scores = np.array([answer[MODEL.main_score] for answer in fresh_answers])
    labels = fresh["is_leak"].to_numpy()

    # Then its average precision is at least 3x the base rate (what random ranking scores)
    precision = average_precision_score(labels, scores)
    best_possible = average_precision_score(labels, fresh["truth_probability"])
    print(
        f"revenue-leak AP {precision:.4f} = {precision / labels.mean():.2f}x base rate {labels.mean():.4f}; "
        f"truth probability AP {best_possible:.4f}"
    )
    assert precision >= 3.0 * labels.mean()
    # and comes close to what the generator's own probabilities achieve
    assert precision >= best_possible - 0.04


def test_estimated_amount_tracks_the_money_actually_leaked(fresh, fresh_answers):
    # Given the invoices that really leaked through a pattern the invoice shows
    amounts = np.array([answer["estimated_leaked_amount"] for answer in fresh_answers])
    leaked = fresh["truth_leak_amount"].to_numpy()
    visible = (fresh["is_leak"].to_numpy() == 1) & (amounts > 0)

    # Then the estimated amount ranks them like the true leaked amount
    assert visible.sum() > 500
    assert spearmanr(amounts[visible], leaked[visible]).statistic >= 0.7


def test_reasons_name_the_patterns_that_really_happened(fresh, fresh_answers):
    # Given leaking invoices whose strongest reason is a given pattern
    for pattern in PATTERNS:
        rows = [
            i
            for i, answer in enumerate(fresh_answers)
            if answer["reasons"] and answer["reasons"][0]["pattern"] == pattern and fresh["is_leak"].iat[i] == 1
        ]
        # Then most of them really leaked through that pattern
        assert len(rows) > 50, pattern
        assert fresh[f"truth_{pattern}"].iloc[rows].mean() > 0.5, pattern


def test_evaluate_reports_holdout_metrics_from_labels_only(artifact, fresh):
    holdout = fresh.drop(columns=[c for c in fresh.columns if c.startswith(TRUTH_PREFIX)])

    metrics = MODEL.evaluate(artifact, holdout)

    assert metrics["average_precision"] >= 3.0 * metrics["base_rate"]
    assert metrics["lift_at_10pct"] > 3.0


# --- Generator -----------------------------------------------------------------------------


@pytest.mark.parametrize("drift", [0.0, 1.0])
def test_generated_invoices_are_consistent_with_their_leaks(drift):
    frame = MODEL.generate(20_000, seed=3, drift=drift)

    assert (frame["change_orders_signed"] <= frame["change_requests"]).all()
    assert set(frame["is_leak"].unique()) == {0, 1}
    assert (frame["truth_leak_amount"] > 0).eq(frame["is_leak"] == 1).all()


def test_drift_brings_later_timesheets_more_discounting_and_more_leaks():
    calm = MODEL.generate(20_000, seed=4, drift=0.0)
    drifted = MODEL.generate(20_000, seed=4, drift=1.0)

    assert drifted["timesheet_late_pct"].mean() > calm["timesheet_late_pct"].mean() + 5.0
    assert drifted["discount_pct"].mean() > calm["discount_pct"].mean() + 0.5
    assert drifted["is_leak"].mean() > calm["is_leak"].mean() + 0.05


# --- Answers -------------------------------------------------------------------------------


def test_answer_holds_probability_amount_and_reasons(artifact):
    (answer,) = MODEL.predict(artifact, MODEL.feature_frame([MODEL.example_row()]))

    assert MODEL.main_score == "leak_probability"
    assert set(answer) == {"leak_probability", "estimated_leaked_amount", "expected_loss", "currency", "reasons"}
    assert type(answer["leak_probability"]) is float
    assert 0.0 <= answer["leak_probability"] <= 1.0
    assert type(answer["estimated_leaked_amount"]) is float
    assert answer["estimated_leaked_amount"] == round(answer["estimated_leaked_amount"], 2)


def test_a_clean_invoice_has_low_risk_and_no_reasons(artifact):
    (answer,) = MODEL.predict(artifact, MODEL.feature_frame([_clean_invoice()]))

    assert answer[MODEL.main_score] < 0.1
    assert answer["reasons"] == []
    assert answer["estimated_leaked_amount"] == 0.0


def test_unbilled_hours_raise_risk_and_are_priced_at_the_card_rate(artifact):
    # Given the clean invoice and the same one with 40 of 120 logged hours left off
    clean, leaking = MODEL.predict(
        artifact, MODEL.feature_frame([_clean_invoice(), _clean_invoice(hours_billed=80.0, timesheet_late_pct=40.0)])
    )

    assert leaking[MODEL.main_score] > clean[MODEL.main_score] + 0.4
    (reason,) = leaking["reasons"]
    assert reason["pattern"] == "unbilled_hours"
    # 40 h unbilled, minus the 5 % write-off tolerance (6 h), at 150 EUR/h
    assert reason["amount"] == pytest.approx((40.0 - 6.0) * 150.0)
    assert leaking["estimated_leaked_amount"] == pytest.approx(reason["amount"])
    assert leaking["expected_loss"] == pytest.approx(leaking[MODEL.main_score] * reason["amount"], abs=0.01)


def test_an_unapproved_discount_above_policy_is_flagged_but_an_approved_one_much_less(artifact):
    unapproved, approved = MODEL.predict(
        artifact,
        MODEL.feature_frame(
            [_clean_invoice(discount_pct=30.0), _clean_invoice(discount_pct=30.0, discount_approved=True)]
        ),
    )

    assert unapproved[MODEL.main_score] > 0.5
    assert approved[MODEL.main_score] < unapproved[MODEL.main_score] / 2
    assert [r["pattern"] for r in unapproved["reasons"]] == ["discount_abuse"]
    assert approved["reasons"] == []


def test_reasons_come_strongest_first_and_add_up_to_the_amount(artifact):
    (answer,) = MODEL.predict(
        artifact,
        MODEL.feature_frame(
            [_clean_invoice(hours_billed=100.0, billed_rate=120.0, change_requests=3, change_orders_signed=0)]
        ),
    )

    contributions = [reason["contribution"] for reason in answer["reasons"]]
    assert {r["pattern"] for r in answer["reasons"]} == {"unbilled_hours", "rate_below_card", "scope_creep"}
    assert contributions == sorted(contributions, reverse=True)
    assert min(contributions) > 0.0
    assert sum(r["amount"] for r in answer["reasons"]) == pytest.approx(answer["estimated_leaked_amount"])
    for reason in answer["reasons"]:
        assert set(reason) == {"pattern", "amount", "contribution", "detail"}
        assert isinstance(reason["detail"], str) and reason["detail"]


def test_fast_path_matches_the_scikit_learn_pipeline(artifact, fitted, fresh):
    frame = fresh[MODEL.feature_names()].head(2000).copy()
    frame.loc[0, "client_tier"] = "unheard_of"
    frame.loc[1, "hours_logged"] = 5000.0

    scores = np.array([a["leak_probability"] for a in MODEL.predict(artifact, frame)])
    inputs = pd.DataFrame(_indicators(_columns(frame, MODEL.feature_names())))
    expected = fitted["pipeline"].predict_proba(inputs)[:, 1]

    np.testing.assert_allclose(scores, expected, atol=6e-5)  # answers carry 4 decimals
    logit = fast.decision_function(artifact["pipeline"], _indicators(_columns(frame, MODEL.feature_names())))
    np.testing.assert_allclose(logit, fitted["pipeline"].decision_function(inputs), rtol=0, atol=1e-9)
