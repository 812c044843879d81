"""Reading and checking tabular files (CSV, Parquet) against a model's schema and target."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pandas as pd

from predictions.catalog.base import CatalogModel, Feature
from predictions.catalog.validation import validate_row

# Enough for someone to see the pattern and fix the file; the count covers the rest.
MAX_REPORTED_ERRORS = 100


class FileFormatError(Exception):
    """The file cannot be read as the declared format, or its header is wrong."""


@dataclass
class FileCheck:
    frame: pd.DataFrame  # valid rows only: features (+ target when checked)
    invalid_rows: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def read_table(handle: IO[bytes], file_format: str) -> pd.DataFrame:
    try:
        if file_format == "parquet":
            return pd.read_parquet(handle)
        return pd.read_csv(handle, skipinitialspace=True)
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable input
        raise FileFormatError(f"The file cannot be read as {file_format.upper()}: {str(exc)[:200]}") from None


def format_from_name(filename: str) -> str | None:
    lowered = filename.lower()
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    return None


def check_header(spec: CatalogModel, columns: list[str], *, with_target: bool) -> None:
    expected = set(spec.feature_names())
    required = {f.name for f in spec.features if f.required}
    if with_target and spec.target is not None:
        expected.add(spec.target.name)
        required.add(spec.target.name)
    missing = sorted(required - set(columns))
    unknown = sorted(set(columns) - expected)
    problems = []
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s): {', '.join(unknown[:20])}")
    if problems:
        raise FileFormatError("Bad header: " + "; ".join(problems) + ".")


def _native(value: Any) -> Any:
    """pandas cells as the JSON-like values the validator expects (NaN means missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):  # numpy scalar; arrays (list cells) reach the validator as they are
        return value.item()
    return value


def _check_target(target, value: Any) -> str | None:
    if value is None:
        return "The target is required for training."
    if target.kind == "binary":
        return None if value in (0, 1, True, False) else "Must be 0 or 1."
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "Must be a finite number."
    if isinstance(value, float) and not math.isfinite(value):
        return "Must be a finite number."
    return None


def check_rows(spec: CatalogModel, frame: pd.DataFrame, *, with_target: bool, first_line: int) -> FileCheck:
    """Validate each row; errors carry the file's line number (``first_line`` is the first row's)."""
    features: tuple[Feature, ...] = spec.features
    target = spec.target if with_target else None
    feature_columns = [f.name for f in features if f.name in frame.columns]
    valid_positions, errors, invalid = [], [], 0
    for position, record in enumerate(frame.to_dict("records")):
        row = {name: _native(record[name]) for name in feature_columns}
        row = {name: value for name, value in row.items() if value is not None}
        _, problems = validate_row(features, row)
        if target is not None:
            target_problem = _check_target(target, _native(record.get(target.name)))
            if target_problem:
                problems[target.name] = target_problem
        if problems:
            invalid += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append({"line": position + first_line, "errors": problems})
        else:
            valid_positions.append(position)
    columns = feature_columns + ([target.name] if target is not None else [])
    return FileCheck(frame.iloc[valid_positions][columns].reset_index(drop=True), invalid, errors)


def check_file(spec: CatalogModel, data: bytes, file_format: str, *, with_target: bool) -> FileCheck:
    frame = read_table(io.BytesIO(data), file_format)
    check_header(spec, [str(c) for c in frame.columns], with_target=with_target)
    # CSV line 1 is the header; Parquet rows are numbered from 1.
    return check_rows(spec, frame, with_target=with_target, first_line=2 if file_format == "csv" else 1)


def dataset_frame(dataset) -> pd.DataFrame:
    """The valid rows of a stored dataset, with defaults filled in for optional features."""
    from predictions.catalog import get_catalog_model

    spec = get_catalog_model(dataset.model.slug)
    with dataset.file.open("rb") as handle:
        checked = check_file(spec, handle.read(), dataset.file_format, with_target=True)
    frame = checked.frame
    for feature in spec.features:
        if feature.name not in frame.columns:
            frame[feature.name] = feature.default
        elif not feature.required:
            frame[feature.name] = frame[feature.name].fillna(feature.default)
    return frame
