"""Input validation generated from a model's feature schema. Pure Python, no Django.

One validator serves single predictions, batches, bulk files and dataset uploads, so that
every path accepts and refuses exactly the same rows. It is hand-written rather than a DRF
serializer because a serializer costs ~0.2 ms per row, too slow for 10,000-row batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from predictions.catalog.base import Feature

Row = dict[str, Any]


@dataclass
class RowsValidation:
    """Valid rows (defaults filled in) with their positions, and errors by position."""

    rows: list[Row] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    errors: dict[int, dict[str, str]] = field(default_factory=dict)


def _number_checker(feature: Feature) -> Callable[[Any], str | None]:
    low, high, whole = feature.minimum, feature.maximum, feature.kind == "integer"
    too_low = f"Must be at least {low:g}." if low is not None else ""
    too_high = f"Must be at most {high:g}." if high is not None else ""

    def check(value: Any) -> str | None:
        # The first test is the fast, common case; the second lets numpy floats through.
        if (value.__class__ is not int and value.__class__ is not float) and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            return "Must be a number."
        if value.__class__ is not int and not math.isfinite(value):  # ints are finite (and may not fit a float)
            return "Must be a finite number."
        if whole and value.__class__ is float and not value.is_integer():
            return "Must be a whole number."
        if low is not None and value < low:
            return too_low
        if high is not None and value > high:
            return too_high
        return None

    return check


def _category_checker(feature: Feature) -> Callable[[Any], str | None]:
    allowed = frozenset(feature.categories)
    message = f"Must be one of: {', '.join(feature.categories)}."
    return lambda value: None if value.__class__ is str and value in allowed else message


def _boolean_checker(feature: Feature) -> Callable[[Any], str | None]:
    return lambda value: None if value.__class__ is bool else "Must be true or false."


_CHECKERS = {
    "number": _number_checker,
    "integer": _number_checker,
    "category": _category_checker,
    "boolean": _boolean_checker,
}


@lru_cache(maxsize=64)
def _compiled(features: tuple[Feature, ...]) -> tuple[tuple[str, bool, Any, bool, Callable], ...]:
    """Per feature: (name, required, default, is_integer, checker), built once per schema.

    Each row costs ~1 microsecond per field this way: fast enough for 10,000-row batches.
    """
    return tuple((f.name, f.required, f.default, f.kind == "integer", _CHECKERS[f.kind](f)) for f in features)


@lru_cache(maxsize=64)
def _known_names(features: tuple[Feature, ...]) -> frozenset[str]:
    return frozenset(f.name for f in features)


def check_value(feature: Feature, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``feature``, or None if it is."""
    return _CHECKERS[feature.kind](feature)(value)


def validate_row(features: tuple[Feature, ...], row: Any) -> tuple[Row | None, dict[str, str]]:
    """The cleaned row (defaults filled in, integers as int) or the errors by field name."""
    return _validate_row(_compiled(features), _known_names(features), row)


# Below this many rows numpy's per-call overhead outweighs what the column check saves.
COLUMN_CHECK_MIN_ROWS = 32


def validate_rows(features: tuple[Feature, ...], rows: list[Any]) -> RowsValidation:
    """Every row validated as ``validate_row`` would, in order; fast for large batches.

    Rows that name exactly the schema's features are first checked column by column with
    numpy (~1 us per row instead of ~12); a row that this quick check cannot pass as it is
    (a wrong type, a value out of range, an integer sent as 3.0, a missing or unknown field)
    goes through ``validate_row``, which words the errors and cleans it. A row that passes
    is used as it came: it needs no default and no conversion.
    """
    compiled, known = _compiled(features), _known_names(features)
    if len(rows) < COLUMN_CHECK_MIN_ROWS:
        complete = []
    else:
        complete = [i for i, row in enumerate(rows) if row.__class__ is dict and row.keys() == known]
    passed = _columns_pass([rows[i] for i in complete], features) if complete else []
    clean = {index for index, ok in zip(complete, passed, strict=True) if ok}
    result = RowsValidation()
    for index, row in enumerate(rows):
        if index in clean:
            cleaned, errors = row, None
        else:
            cleaned, errors = _validate_row(compiled, known, row)
        if errors:
            result.errors[index] = errors
        else:
            result.rows.append(cleaned)
            result.indexes.append(index)
    return result


def _columns_pass(rows: list[Row], features: tuple[Feature, ...]) -> np.ndarray:
    """Per row: True when every value is already what the schema accepts, needing no cleaning."""
    passed = np.ones(len(rows), dtype=bool)
    for feature in features:
        values = [row[feature.name] for row in rows]
        passed &= _column_passes(feature, values)
    return passed


def _column_passes(feature: Feature, values: list[Any]) -> np.ndarray | bool:
    kinds = set(map(type, values))
    if feature.kind == "category":
        try:
            return kinds == {str} and set(values) <= frozenset(feature.categories)
        except TypeError:  # unhashable values: left to the row-by-row check
            return False
    if feature.kind == "boolean":
        return kinds == {bool}
    if not kinds <= ({int} if feature.kind == "integer" else {int, float}):
        return False
    try:
        numbers = np.fromiter(values, dtype=np.float64, count=len(values))
    except OverflowError:  # an integer beyond float range
        return False
    ok = np.isfinite(numbers)
    if feature.minimum is not None:
        ok &= numbers >= feature.minimum
    if feature.maximum is not None:
        ok &= numbers <= feature.maximum
    return ok


def _validate_row(compiled, known: frozenset[str], row: Any) -> tuple[Row | None, dict[str, str]]:
    if not isinstance(row, dict):
        return None, {"non_field_errors": "Each row must be a JSON object of features."}
    errors: dict[str, str] = {}
    cleaned: Row = {}
    for name, required, default, integer, check in compiled:
        value = row.get(name)
        if value is None:
            if required:
                errors[name] = "This field is required."
            else:
                cleaned[name] = default
            continue
        problem = check(value)
        if problem:
            errors[name] = problem
        else:
            cleaned[name] = int(value) if integer else value
    for name in row.keys() - known:
        errors[str(name)[:80]] = "Unknown field."
    return (None, errors) if errors else (cleaned, {})
