"""Input validation generated from a model's feature schema. Pure Python, no Django.

One validator serves single predictions, batches, bulk files and dataset uploads, so that
every path accepts and refuses exactly the same rows. It is hand-written rather than a DRF
serializer because a serializer costs ~0.2 ms per row, too slow for 10,000-row batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from predictions.catalog.base import Feature

Row = dict[str, Any]


@dataclass
class RowsValidation:
    """Valid rows (defaults filled in) with their positions, and errors by position."""

    rows: list[Row] = field(default_factory=list)
    indexes: list[int] = field(default_factory=list)
    errors: dict[int, dict[str, str]] = field(default_factory=dict)


def _check_number(feature: Feature, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "Must be a number."
    if not math.isfinite(value):
        return "Must be a finite number."
    if feature.kind == "integer" and not float(value).is_integer():
        return "Must be a whole number."
    if feature.minimum is not None and value < feature.minimum:
        return f"Must be at least {feature.minimum:g}."
    if feature.maximum is not None and value > feature.maximum:
        return f"Must be at most {feature.maximum:g}."
    return None


def check_value(feature: Feature, value: Any) -> str | None:
    """Why ``value`` is not acceptable for ``feature``, or None if it is."""
    if feature.kind in ("number", "integer"):
        return _check_number(feature, value)
    if feature.kind == "category":
        if not isinstance(value, str) or value not in feature.categories:
            return f"Must be one of: {', '.join(feature.categories)}."
        return None
    if not isinstance(value, bool):
        return "Must be true or false."
    return None


def validate_row(features: tuple[Feature, ...], row: Any) -> tuple[Row | None, dict[str, str]]:
    """The cleaned row (defaults filled in, integers as int) or the errors by field name."""
    if not isinstance(row, dict):
        return None, {"non_field_errors": "Each row must be a JSON object of features."}
    errors: dict[str, str] = {}
    cleaned: Row = {}
    for feature in features:
        value = row.get(feature.name)
        if value is None:
            if feature.required:
                errors[feature.name] = "This field is required."
            else:
                cleaned[feature.name] = feature.default
            continue
        problem = check_value(feature, value)
        if problem:
            errors[feature.name] = problem
        else:
            cleaned[feature.name] = int(value) if feature.kind == "integer" else value
    known = {feature.name for feature in features}
    for name in row.keys() - known:
        errors[str(name)[:80]] = "Unknown field."
    return (None, errors) if errors else (cleaned, {})


def validate_rows(features: tuple[Feature, ...], rows: list[Any]) -> RowsValidation:
    result = RowsValidation()
    for index, row in enumerate(rows):
        cleaned, errors = validate_row(features, row)
        if errors:
            result.errors[index] = errors
        else:
            result.rows.append(cleaned)
            result.indexes.append(index)
    return result
