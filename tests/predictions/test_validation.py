"""The validator every input path shares (single, batch, files): what it accepts and refuses."""

from __future__ import annotations

import math
import random

import pytest

from predictions.catalog import CATALOG
from predictions.catalog.base import Feature
from predictions.catalog.validation import validate_row, validate_rows

SCHEMA = (
    Feature("hours", "number", "Hours.", example=10.5, minimum=0, maximum=100),
    Feature("seats", "integer", "Seats.", example=3, minimum=1, maximum=50),
    Feature("plan", "category", "Plan.", example="pro", categories=("basic", "pro")),
    Feature("active", "boolean", "Active.", example=True),
    Feature("discount", "number", "Discount.", example=0.0, minimum=0, maximum=1, required=False, default=0.0),
)
GOOD = {"hours": 10.5, "seats": 3, "plan": "pro", "active": True}


def test_a_good_row_is_cleaned_with_defaults_and_integers():
    cleaned, errors = validate_row(SCHEMA, {**GOOD, "seats": 3.0})

    assert errors == {}
    assert cleaned == {**GOOD, "seats": 3, "discount": 0.0}
    assert type(cleaned["seats"]) is int


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"hours": "10"}, "hours", "Must be a number."),
        ({"hours": True}, "hours", "Must be a number."),
        ({"hours": math.nan}, "hours", "Must be a finite number."),
        ({"hours": math.inf}, "hours", "Must be a finite number."),
        ({"hours": -1}, "hours", "Must be at least 0."),
        ({"hours": 100.5}, "hours", "Must be at most 100."),
        ({"seats": 2.5}, "seats", "Must be a whole number."),
        ({"plan": "gold"}, "plan", "Must be one of: basic, pro."),
        ({"plan": 1}, "plan", "Must be one of: basic, pro."),
        ({"active": "yes"}, "active", "Must be true or false."),
        ({"active": 1}, "active", "Must be true or false."),
        ({"hours": None}, "hours", "This field is required."),
        ({"colour": "red"}, "colour", "Unknown field."),
    ],
)
def test_bad_values_are_refused_with_a_reason(change, field, message):
    _, errors = validate_row(SCHEMA, {**GOOD, **change})

    assert errors == {field: message}


def test_an_unknown_field_is_caught_even_when_an_optional_one_is_missing():
    _, errors = validate_row(SCHEMA, {**GOOD, "colour": "red"})

    assert errors == {"colour": "Unknown field."}


def test_rows_keep_their_positions():
    result = validate_rows(SCHEMA, [GOOD, {**GOOD, "seats": 0}, "not a row", GOOD])

    assert result.indexes == [0, 3]
    assert set(result.errors) == {1, 2}
    assert "non_field_errors" in result.errors[2]


BAD_VALUES = ["7", None, True, False, math.nan, -math.inf, -1e9, 1e12, 3.0, 2.5, [], {}, "basic", 10**400]


@pytest.mark.parametrize("slug", sorted(CATALOG))
def test_a_large_batch_is_judged_exactly_as_row_by_row(slug):
    """The column-wise check of big batches must accept, refuse and clean like validate_row."""
    spec = CATALOG[slug]
    rows = spec.generate(400, seed=2)[spec.feature_names()].to_dict("records")
    rng = random.Random(slug)
    for row in rng.sample(rows, 120):
        change = rng.choice(["value", "value", "missing", "unknown", "not-a-row"])
        name = rng.choice(spec.feature_names())
        if change == "value":
            row[name] = rng.choice(BAD_VALUES)
        elif change == "missing":
            del row[name]
        elif change == "unknown":
            row["surprise"] = 1
    rows[7] = "not a row"

    batch = validate_rows(spec.features, rows)
    one_by_one = [validate_row(spec.features, row) for row in rows]

    assert batch.indexes == [i for i, (cleaned, _) in enumerate(one_by_one) if cleaned is not None]
    assert batch.rows == [cleaned for cleaned, _ in one_by_one if cleaned is not None]
    assert batch.errors == {i: errors for i, (_, errors) in enumerate(one_by_one) if errors}
    assert 0 < len(batch.errors) < len(rows)
