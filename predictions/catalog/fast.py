"""Fitted scikit-learn preprocessing and linear models, evaluated with plain numpy.

Every scikit-learn ``transform``/``predict`` call validates its input and indexes pandas: a
``ColumnTransformer`` pipeline costs milliseconds per call, even for one row. The catalog
answers one row at a time, so its models compute the same numbers from the fitted
parameters with numpy instead (tests hold the two equal to 1e-9):

- ``encode(column_transformer, data)``: what ``column_transformer.transform(data)`` returns;
- ``transform(step, x)``: one fitted step, or a ``Pipeline`` of steps, on a 2-D array;
- ``linear(estimator, x)``: a fitted linear model's ``decision_function`` (or ``predict``);
- ``decision_function(pipeline, data)``: a whole pipeline: column transformer, steps, linear model;
- ``linear_from_columns(column_transformer, estimator, data)``: ``linear(estimator,
  encode(column_transformer, data))`` without building the one-hot columns (each category
  becomes a look-up of its coefficient), for wide encodings evaluated on many rows;
- ``frame_columns(frame, names)``: a frame's columns as 1-D arrays, in one pandas conversion.

``data`` is a DataFrame or, cheaper, a mapping of column name to 1-D array (what
``frame_columns`` returns). Supported steps: ``StandardScaler``, ``FunctionTransformer``,
``SplineTransformer`` (extrapolation "constant" or "continue"), ``PolynomialFeatures``,
``SimpleImputer`` (numeric, without indicator), ``OneHotEncoder`` (no ``drop``, no infrequent
categories, no missing value among the categories), "passthrough", "drop", and ``Pipeline``s
of these; any other raises ``UnsupportedTransformer`` rather than guess. Output is always a
dense float64 array. Input validation is not repeated: values are expected to be what the
feature schema accepts (finite numbers; categories as the values the encoder saw). An
unknown category encodes as zeros, as ``handle_unknown="ignore"`` does, or raises
``ValueError`` under ``handle_unknown="error"``.

Pure numpy, pandas and scikit-learn: no Django.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model._base import LinearClassifierMixin, LinearModel  # the bases of all linear models
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    PolynomialFeatures,
    SplineTransformer,
    StandardScaler,
)

Columns = Mapping[str, np.ndarray]


class UnsupportedTransformer(TypeError):
    """A fitted step (or a setting of one) that the numpy path does not reproduce."""


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function: a logistic regression's probability from its log-odds."""
    return 1.0 / (1.0 + np.exp(-x))


def frame_columns(
    frame: pd.DataFrame, names: Sequence[str] | None = None, *, dtype: Any = object
) -> dict[str, np.ndarray]:
    """The columns ``names`` (default: all) of ``frame`` as 1-D arrays of ``dtype``.

    One pandas conversion for the whole frame: selecting or reading columns one by one costs
    ~15-30 us each, more than the rest of a one-row answer. With ``dtype=object`` the values
    are Python scalars, JSON-ready as they are.
    """
    present = frame.columns.tolist()
    if names is None or present == list(names):
        return dict(zip(present, frame.to_numpy(dtype=dtype).T, strict=True))
    if np.dtype(dtype) != object:  # other columns may not convert to ``dtype``
        frame = frame[list(names)]
        return dict(zip(names, frame.to_numpy(dtype=dtype).T, strict=True))
    values = frame.to_numpy(dtype=dtype)
    positions = frame.columns.get_indexer(names)
    if (positions < 0).any():
        missing = [name for name, position in zip(names, positions, strict=True) if position < 0]
        raise KeyError(f"columns not in the frame: {missing}")
    return {name: values[:, j] for name, j in zip(names, positions.tolist(), strict=True)}


def encode(column_transformer: ColumnTransformer, data: pd.DataFrame | Columns) -> np.ndarray:
    """``column_transformer.transform(data)`` (dense), from its fitted parameters."""
    columns = _as_columns(data)
    weights = column_transformer.transformer_weights or {}
    blocks = []
    for name, step, names in _fitted_transformers(column_transformer):
        if isinstance(step, OneHotEncoder):
            block = _one_hot(step, [columns[column] for column in names])
        else:
            block = transform(step, _numbers(columns, names))
        blocks.append(block * weights[name] if name in weights else block)
    if not blocks:
        return np.zeros((_rows(columns), 0))
    return np.hstack(blocks)


def transform(step: Any, x: np.ndarray) -> np.ndarray:
    """``step.transform(x)`` for one fitted step or a ``Pipeline`` of them, ``x`` 2-D."""
    if isinstance(step, Pipeline):
        for _, inner in step.steps:
            x = transform(inner, x)
        return x
    if isinstance(step, OneHotEncoder):
        x = np.asarray(x)
        return _one_hot(step, [x[:, j] for j in range(x.shape[1])])
    x = np.asarray(x, dtype=np.float64)
    if step is None or _is_passthrough(step):
        return x
    if isinstance(step, StandardScaler):
        if step.with_mean:
            x = x - step.mean_
        if step.with_std:
            x = x / step.scale_
        return x
    if isinstance(step, FunctionTransformer):
        return x if step.func is None else step.func(x, **(step.kw_args or {}))
    if isinstance(step, SplineTransformer):
        return _splines(step, x)
    if isinstance(step, PolynomialFeatures):
        return _products(step, x)
    if isinstance(step, SimpleImputer):
        return _impute(step, x)
    raise UnsupportedTransformer(f"no numpy path for {type(step).__name__}")


def linear(estimator: Any, x: np.ndarray) -> np.ndarray:
    """``x @ coef_ + intercept_``: a linear classifier's ``decision_function``, a linear
    regressor's ``predict``. One value per row for a single output, else one column per output."""
    coef, intercept = _coefficients(estimator)
    if coef.ndim == 2:
        return x @ coef.T + intercept
    return x @ coef + intercept


def decision_function(pipeline: Pipeline, data: pd.DataFrame | Columns) -> np.ndarray:
    """``pipeline.decision_function(data)`` (or ``predict``, for a linear regressor) of a
    ``Pipeline``: a ``ColumnTransformer``, then transformers, then a linear model."""
    steps = [step for _, step in pipeline.steps if step is not None and not _is_passthrough(step)]
    first, *middle, last = steps
    if not isinstance(first, ColumnTransformer):
        raise UnsupportedTransformer(f"the pipeline starts with {type(first).__name__}, not a ColumnTransformer")
    x = encode(first, data)
    for step in middle:
        x = transform(step, x)
    return linear(last, x)


def linear_from_columns(
    column_transformer: ColumnTransformer, estimator: Any, data: pd.DataFrame | Columns
) -> np.ndarray:
    """``linear(estimator, encode(column_transformer, data))`` for a single-output model,
    without building the one-hot columns: each category adds its coefficient (an unknown
    one adds nothing), so the cost does not grow with the number of categories."""
    coef, intercept = _coefficients(estimator)
    if coef.ndim != 1:
        raise UnsupportedTransformer("linear_from_columns needs a single-output linear model")
    columns = _as_columns(data)
    weights = column_transformer.transformer_weights or {}
    total = np.full(_rows(columns), float(intercept))
    offset = 0
    for name, step, names in _fitted_transformers(column_transformer):
        weight = weights.get(name)
        if isinstance(step, OneHotEncoder):
            _check_one_hot(step)
            for column, categories in zip((columns[column] for column in names), step.categories_, strict=True):
                coefficients = coef[offset : offset + len(categories)]
                if weight is not None:
                    coefficients = coefficients * weight
                total += _coefficient_lookup(step, column, categories, coefficients)
                offset += len(categories)
        else:
            block = transform(step, _numbers(columns, names))
            coefficients = coef[offset : offset + block.shape[1]]
            total += block @ (coefficients if weight is None else coefficients * weight)
            offset += block.shape[1]
    if offset != len(coef):
        raise ValueError(f"the encoding has {offset} columns, the model {len(coef)} coefficients")
    return total


# --- Column transformer ------------------------------------------------------------------------


def _as_columns(data: pd.DataFrame | Columns) -> Columns:
    return frame_columns(data) if isinstance(data, pd.DataFrame) else data


def _rows(columns: Columns) -> int:
    return len(next(iter(columns.values()))) if columns else 0


def _is_passthrough(step: Any) -> bool:
    return isinstance(step, str) and step == "passthrough"


def _fitted_transformers(column_transformer: ColumnTransformer) -> list[tuple[str, Any, list[str]]]:
    """The fitted (name, transformer, column names) that produce output, in output order."""
    fitted = []
    for name, step, selection in column_transformer.transformers_:
        if isinstance(step, str) and step == "drop":
            continue
        names = _column_names(column_transformer, selection)
        if names:  # scikit-learn skips an empty selection
            fitted.append((name, step, names))
    return fitted


def _column_names(column_transformer: ColumnTransformer, selection: Any) -> list[str]:
    if isinstance(selection, list) and all(isinstance(column, str) for column in selection):
        return selection  # the usual case: a list of column names
    if isinstance(selection, str) or np.isscalar(selection):
        raise UnsupportedTransformer(f"a scalar column selection ({selection!r}) gives 1-D input; use a list")
    if isinstance(selection, slice) or (
        len(selection) and not isinstance(selection[0], str) and np.asarray(selection).dtype == bool
    ):
        return list(np.asarray(column_transformer.feature_names_in_)[selection])
    return [
        column if isinstance(column, str) else str(column_transformer.feature_names_in_[column]) for column in selection
    ]


def _numbers(columns: Columns, names: list[str]) -> np.ndarray:
    """The named columns side by side as floats, C-ordered as scikit-learn's input is (the
    memory order decides how BLAS sums a product, hence its last bits)."""
    return np.ascontiguousarray(np.array([columns[name] for name in names], dtype=np.float64).T)


# --- Steps -------------------------------------------------------------------------------------


def _splines(step: SplineTransformer, x: np.ndarray) -> np.ndarray:
    if step.extrapolation not in ("constant", "continue"):
        raise UnsupportedTransformer(f"no numpy path for SplineTransformer(extrapolation={step.extrapolation!r})")
    degree = step.degree
    blocks = []
    for k, spline in enumerate(step.bsplines_):
        column = x[:, k]
        if step.extrapolation == "constant":
            # Constant extrapolation is the basis at the nearest boundary knot.
            column = np.clip(column, spline.t[degree], spline.t[-degree - 1])
        values = spline(column)
        if getattr(step, "handle_missing", "error") == "zeros":
            values[np.isnan(x[:, k])] = 0.0
        blocks.append(values if step.include_bias else values[:, :-1])
    return np.hstack(blocks)


def _products(step: PolynomialFeatures, x: np.ndarray) -> np.ndarray:
    first, *others = _product_factors(step.n_features_in_, step.degree, step.interaction_only, step.include_bias)
    extended = np.hstack([x, np.ones((x.shape[0], 1))])  # the last column stands for "no factor"
    out = extended[:, first]
    for factor in others:
        out = out * extended[:, factor]
    return out


@functools.lru_cache(maxsize=32)
def _product_factors(
    n_features: int, degree: Any, interaction_only: bool, include_bias: bool
) -> tuple[np.ndarray, ...]:
    """The terms of PolynomialFeatures as products of input columns: the k-th array holds each
    term's k-th factor (``n_features``, a column of ones, for a term of lower degree). Pure
    function of the settings: ``powers_`` costs ~0.1 ms per access, so it is read once."""
    powers = (
        PolynomialFeatures(degree=degree, interaction_only=interaction_only, include_bias=include_bias)
        .fit(np.zeros((1, n_features)))
        .powers_
    )
    width = max(1, int(powers.sum(axis=1).max()) if len(powers) else 1)
    factors = np.full((len(powers), width), n_features, dtype=np.intp)
    for term, row in enumerate(powers):
        columns = np.repeat(np.arange(n_features), row)
        factors[term, : len(columns)] = columns
    return tuple(np.ascontiguousarray(factors[:, k]) for k in range(width))


def _impute(step: SimpleImputer, x: np.ndarray) -> np.ndarray:
    missing = step.missing_values
    if step.add_indicator or not isinstance(missing, (int, float)) or isinstance(missing, bool):
        raise UnsupportedTransformer("no numpy path for SimpleImputer with an indicator or non-numeric missing values")
    mask = np.isnan(x) if np.isnan(missing) else x == missing
    out = np.where(mask, step.statistics_, x)
    kept = ~np.isnan(step.statistics_)
    if not kept.all() and not getattr(step, "keep_empty_features", False):
        out = out[:, kept]  # scikit-learn drops the columns that were empty at fit
    return out


# --- One-hot encoding --------------------------------------------------------------------------


def _check_one_hot(encoder: OneHotEncoder) -> None:
    if encoder.drop is not None or encoder.max_categories is not None or encoder.min_frequency is not None:
        raise UnsupportedTransformer("no numpy path for OneHotEncoder with drop or infrequent categories")
    for categories in encoder.categories_:
        last = categories[-1]  # scikit-learn sorts a missing-value category last
        if last is None or (isinstance(last, float) and last != last):
            raise UnsupportedTransformer("no numpy path for OneHotEncoder with a missing-value category")


def _one_hot(encoder: OneHotEncoder, columns: list[np.ndarray]) -> np.ndarray:
    _check_one_hot(encoder)
    blocks = []
    for k, (column, categories) in enumerate(zip(columns, encoder.categories_, strict=True)):
        match = np.asarray(column)[:, None] == categories[None, :]
        if encoder.handle_unknown == "error" and not match.any(axis=1).all():
            raise ValueError(f"Found unknown categories in column {k} during transform")
        blocks.append(match.astype(np.float64))
    return np.hstack(blocks)


def _coefficient_lookup(
    encoder: OneHotEncoder, column: np.ndarray, categories: np.ndarray, coefficients: np.ndarray
) -> np.ndarray:
    """Per value, the coefficient of its category (0.0 for an unknown value)."""
    column = np.asarray(column)
    try:
        if not (isinstance(encoder.categories, str) and encoder.categories == "auto"):  # "auto" ones are sorted
            order = np.argsort(categories, kind="stable")
            categories, coefficients = categories[order], coefficients[order]
        position = np.minimum(np.searchsorted(categories, column), len(categories) - 1)
        match = categories[position] == column
        values = np.where(match, coefficients[position], 0.0)
    except TypeError:  # values of another type than the categories: compare them one by one
        equal = column[:, None] == categories[None, :]
        match = equal.any(axis=1)
        values = equal.astype(np.float64) @ coefficients
    if encoder.handle_unknown == "error" and not match.all():
        raise ValueError("Found unknown categories during transform")
    return values


# --- Linear models -----------------------------------------------------------------------------


def _coefficients(estimator: Any) -> tuple[np.ndarray, Any]:
    """``coef_`` and ``intercept_``, a single output flattened to a vector and a scalar."""
    if not isinstance(estimator, (LinearModel, LinearClassifierMixin)):
        raise UnsupportedTransformer(f"no numpy path for {type(estimator).__name__}: not a linear model")
    coef, intercept = np.asarray(estimator.coef_), estimator.intercept_
    if coef.ndim == 2 and coef.shape[0] == 1:
        coef = coef[0]
        intercept = intercept[0] if np.ndim(intercept) else intercept
    return coef, intercept
