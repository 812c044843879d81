"""Fitted preprocessing and linear models, evaluated with plain numpy.

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

Every function takes the exported steps the registry serves (``compiled.py``) or, in the
processes that train, the fitted scikit-learn objects themselves, exported on the spot.

``data`` is a DataFrame or, cheaper, a mapping of column name to 1-D array (what
``frame_columns`` returns). Supported steps: ``StandardScaler``, ``FunctionTransformer``,
``SplineTransformer`` (extrapolation "constant" or "continue"), ``PolynomialFeatures``,
``SimpleImputer`` (numeric, without indicator), ``OneHotEncoder`` (no ``drop``, no infrequent
categories, no missing value among the categories), "passthrough", "drop", and ``Pipeline``s
of these, and ``EmpiricalCovariance``/``LedoitWolf`` as their location and precision; any other
raises ``UnsupportedTransformer`` (at export) rather than guess. Output is always a
dense float64 array. Input validation is not repeated: values are expected to be what the
feature schema accepts (finite numbers; categories as the values the encoder saw). An
unknown category encodes as zeros, as ``handle_unknown="ignore"`` does, or raises
``ValueError`` under ``handle_unknown="error"``.

Pure numpy and pandas: no Django, and no scikit-learn unless it is handed a scikit-learn object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from predictions.catalog import compiled
from predictions.catalog.compiled import (
    ColumnTransformer,
    FunctionTransformer,
    LinearModel,
    OneHotEncoder,
    Pipeline,
    PolynomialFeatures,
    SimpleImputer,
    SplineTransformer,
    StandardScaler,
    UnsupportedTransformer,
)

Columns = Mapping[str, np.ndarray]


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


def encode(column_transformer: Any, data: pd.DataFrame | Columns) -> np.ndarray:
    """``column_transformer.transform(data)`` (dense), from its fitted parameters."""
    column_transformer: ColumnTransformer = compiled.of(column_transformer)
    columns = _as_columns(data)
    weights = column_transformer.transformer_weights or {}
    blocks = []
    for name, step, names in column_transformer.transformers_:
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
    step = compiled.of(step)
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


def decision_function(pipeline: Any, data: pd.DataFrame | Columns) -> np.ndarray:
    """``pipeline.decision_function(data)`` (or ``predict``, for a linear regressor) of a
    ``Pipeline``: a ``ColumnTransformer``, then transformers, then a linear model."""
    pipeline: Pipeline = compiled.of(pipeline)
    steps = [step for _, step in pipeline.steps if step is not None and not _is_passthrough(step)]
    first, *middle, last = steps
    if not isinstance(first, ColumnTransformer):
        raise UnsupportedTransformer(f"the pipeline starts with {type(first).__name__}, not a ColumnTransformer")
    x = encode(first, data)
    for step in middle:
        x = transform(step, x)
    return linear(last, x)


def linear_from_columns(column_transformer: Any, estimator: Any, data: pd.DataFrame | Columns) -> np.ndarray:
    """``linear(estimator, encode(column_transformer, data))`` for a single-output model,
    without building the one-hot columns: each category adds its coefficient (an unknown
    one adds nothing), so the cost does not grow with the number of categories."""
    column_transformer: ColumnTransformer = compiled.of(column_transformer)
    coef, intercept = _coefficients(estimator)
    if coef.ndim != 1:
        raise UnsupportedTransformer("linear_from_columns needs a single-output linear model")
    columns = _as_columns(data)
    weights = column_transformer.transformer_weights or {}
    total = np.full(_rows(columns), float(intercept))
    offset = 0
    for name, step, names in column_transformer.transformers_:
        weight = weights.get(name)
        if isinstance(step, OneHotEncoder):
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


def _numbers(columns: Columns, names: list[str]) -> np.ndarray:
    """The named columns side by side as floats, C-ordered as scikit-learn's input is (the
    memory order decides how BLAS sums a product, hence its last bits)."""
    return np.ascontiguousarray(np.array([columns[name] for name in names], dtype=np.float64).T)


# --- Steps -------------------------------------------------------------------------------------


def _splines(step: SplineTransformer, x: np.ndarray) -> np.ndarray:
    knots, degree = step.knots, step.degree
    values = x
    if step.extrapolation == "constant":
        # Beyond a boundary knot scikit-learn keeps the basis at that knot, in the first (or
        # last) ``degree`` functions only: the others are zero there unless knots repeat.
        low, high = knots[:, degree], knots[:, -degree - 1]
        values = np.clip(x, low, high)
        basis = _bspline_basis(knots, degree, values)
        basis[..., degree:][x < low] = 0.0
        basis[..., : basis.shape[-1] - degree][x > high] = 0.0
    else:
        basis = _bspline_basis(knots, degree, values)
    if step.handle_missing == "zeros":
        basis[np.isnan(x)] = 0.0
    if not step.include_bias:
        basis = basis[:, :, :-1]
    return basis.reshape(len(x), basis.shape[1] * basis.shape[2])  # (-1 cannot size an empty batch)


def _bspline_basis(knots: np.ndarray, degree: int, x: np.ndarray) -> np.ndarray:
    """Every B-spline basis function at ``x`` (rows x columns x basis functions), column ``c``
    on the knots ``knots[c]``, as scipy's ``BSpline`` evaluates it with extrapolation: outside
    the base interval, the polynomial piece of the nearest span continues.

    Cox-de Boor's recursion over the ``degree + 1`` functions that are not zero on each
    value's span (Piegl and Tiller, The NURBS Book, algorithm A2.2), vectorised over rows and
    columns at once: a one-row answer costs a few dozen small numpy operations whatever the
    number of columns. Written here because scipy.interpolate costs a serving process ~45 MB.
    """
    n_columns, n_knots = knots.shape
    n_basis = n_knots - degree - 1
    # The span of each value: the last knot at or below it (knots are sorted), kept in the base interval.
    span = np.clip((x[..., None] >= knots).sum(axis=-1) - 1, degree, n_basis - 1)  # rows x columns
    # left[..., k] = x - t[span - k], right[..., k] = t[span + 1 + k] - x, for k < degree.
    column, offsets = np.arange(n_columns)[:, None], np.arange(degree)
    left = x[..., None] - knots[column, span[..., None] - offsets]
    right = knots[column, span[..., None] + 1 + offsets] - x[..., None]
    values = np.ones((*span.shape, 1))
    for j in range(1, degree + 1):  # the degree-j functions from the degree-(j - 1) ones
        # Repeated knots (quantile knots on tied values) make empty spans: 0 / 0 counts as 0, as in scipy.
        width = right[..., :j] + left[..., j - 1 :: -1]
        temp = np.divide(values, width, out=np.zeros_like(values), where=width != 0)
        higher = np.zeros((*span.shape, j + 1))
        higher[..., :j] = right[..., :j] * temp
        higher[..., 1:] += left[..., j - 1 :: -1] * temp
        values = higher
    out = np.zeros((span.size, n_basis))
    out[np.arange(span.size)[:, None], span.reshape(-1, 1) - degree + np.arange(degree + 1)] = values.reshape(
        span.size, degree + 1
    )
    return out.reshape(*span.shape, n_basis)


def _products(step: PolynomialFeatures, x: np.ndarray) -> np.ndarray:
    first, *others = step.factors
    extended = np.hstack([x, np.ones((x.shape[0], 1))])  # the last column stands for "no factor"
    out = extended[:, first]
    for factor in others:
        out = out * extended[:, factor]
    return out


def _impute(step: SimpleImputer, x: np.ndarray) -> np.ndarray:
    missing = step.missing_values
    mask = np.isnan(x) if np.isnan(missing) else x == missing
    out = np.where(mask, step.statistics_, x)
    kept = ~np.isnan(step.statistics_)
    if not kept.all() and not step.keep_empty_features:
        out = out[:, kept]  # scikit-learn drops the columns that were empty at fit
    return out


# --- One-hot encoding --------------------------------------------------------------------------


def _one_hot(encoder: OneHotEncoder, columns: list[np.ndarray]) -> np.ndarray:
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
        if not encoder.sorted_categories:
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
    estimator = compiled.of(estimator)
    if not isinstance(estimator, LinearModel):
        raise UnsupportedTransformer(f"no numpy path for {type(estimator).__name__}: not a linear model")
    coef, intercept = np.asarray(estimator.coef_), estimator.intercept_
    if coef.ndim == 2 and coef.shape[0] == 1:
        coef = coef[0]
        intercept = intercept[0] if np.ndim(intercept) else intercept
    return coef, intercept
